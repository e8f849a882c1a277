"""splade-index (PyPI ``splade-index``, a bm25s-style embedded sparse index) with our vectors.

Its index is a CSC score matrix; ``SPLADE.index`` fills it by running a sentence-transformers model,
so here the matrix is filled from the corpus's vectors instead and saved with ``SPLADE.save``;
queries go to its numba retrieval function (``backend="numba"``) with the query vectors, skipping
only the query encoder. Exact (float32 scores).
"""

from __future__ import annotations

import numpy as np
from harness import Engine, main


class SpladeIndex(Engine):
    name = "splade-index"

    def build(self) -> None:
        import scipy.sparse as sp
        from splade_index import SPLADE

        c = self.corpus
        csc = sp.csr_matrix((c.doc_weights, c.doc_terms, c.doc_indptr), shape=(c.n_docs, len(c.vocab))).tocsc()
        retriever = SPLADE(backend="numba")
        retriever.scores = {
            "data": csc.data.astype(np.float32),
            "indices": csc.indices.astype(np.int32),
            "indptr": csc.indptr.astype(np.int32),
            "num_docs": c.n_docs,
        }
        retriever.vocab_dict = {token: i for i, token in enumerate(c.vocab)}
        retriever.corpus = None
        retriever.document_ids = np.arange(c.n_docs)
        retriever.save(str(self.index_dir))

    def open(self) -> None:
        from splade_index import SPLADE

        self.retriever = SPLADE.load(str(self.index_dir), model=None, load_corpus=False)
        self.scores = self.retriever.scores

    def prepare_queries(self) -> list:
        c = self.corpus
        return [(c.query(i)[0].astype(np.int32), c.query(i)[1].astype(np.float32)) for i in range(c.n_queries)]

    def _retrieve(self, queries: list, k: int, threads: int) -> list[list[int]]:
        from splade_index.numba.retrieve_utils import _retrieve_numba_functional

        docs, _ = _retrieve_numba_functional(
            query_tokens_ids=[q for q, _ in queries], query_tokens_weights=[w for _, w in queries],
            scores=self.scores, k=k, sorted=True, return_as="tuple", show_progress=False, leave_progress=False,
            n_threads=threads, chunksize=None, backend_selection="numba", dtype="float32", int_dtype="int32",
        )  # fmt: skip
        return [[int(d) for d in row] for row in np.asarray(docs)]

    def search(self, query, k: int) -> list[int]:
        return self._retrieve([query], k, 1)[0]

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        return self._retrieve(queries, k, threads)

    def describe(self) -> dict:
        from importlib.metadata import version

        return {"version": version("splade-index"), "backend": "numba", "scores": "float32"}


if __name__ == "__main__":
    main(SpladeIndex)
