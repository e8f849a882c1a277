"""The plain baseline: scipy CSC arrays, scores = CSC^T-column sums by numpy (exact). Its arrays are
the size reference for the embedded engine's index ("no larger than the plain CSC arrays")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from harness import Engine, main


class CscNumpy(Engine):
    name = "numpy-csc"

    def build(self) -> None:
        import scipy.sparse as sp

        c = self.corpus
        rows = sp.csr_matrix((c.doc_weights, c.doc_terms, c.doc_indptr), shape=(c.n_docs, len(c.vocab)))
        csc = rows.tocsc()  # term-major: column t holds the postings of term t
        np.savez(self.index_dir / "csc.npz", indptr=csc.indptr.astype(np.int64), indices=csc.indices, data=csc.data)

    def open(self) -> None:
        z = np.load(self.index_dir / "csc.npz")
        self.indptr, self.indices, self.data = z["indptr"], z["indices"], z["data"]
        self.n_docs = self.corpus.n_docs

    def prepare_queries(self) -> list:
        return [self.corpus.query(i) for i in range(self.corpus.n_queries)]

    def search(self, query, k: int) -> list[int]:
        terms, weights = query
        starts, ends = self.indptr[terms], self.indptr[terms + 1]
        docs = np.concatenate([self.indices[s:e] for s, e in zip(starts, ends, strict=True)])
        values = np.concatenate([self.data[s:e] * q for s, e, q in zip(starts, ends, weights, strict=True)])
        scores = np.bincount(docs, weights=values, minlength=self.n_docs)
        k = min(k, int((scores > 0).sum()))
        if k == 0:
            return []
        kth = -np.partition(-scores, k - 1)[k - 1]
        top = np.flatnonzero(scores >= kth)  # every document tied with the k-th, then doc order decides
        return top[np.lexsort((top, -scores[top]))][:k].tolist()

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda q: self.search(q, k), queries))

    def describe(self) -> dict:
        return {"exact": True, "arrays": "indptr int64, indices int32, data float32"}


if __name__ == "__main__":
    main(CscNumpy)
