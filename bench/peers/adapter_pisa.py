"""PISA through pyterrier-pisa: ``toks_indexer`` over integer impacts (weights x ``doc_scale``,
truncated as pyterrier-pisa does), the ``quantized`` (dot product) scorer; query weights are scaled
by ``query_scale`` (pyterrier-pisa's ``toks_scale``; PISA takes integer query weights).

Approximate only by the 8-bit quantisation of document weights. Single queries go straight to
pyterrier-pisa's compiled ``_pisathon.retrieve`` (the call its ``transform`` makes), without the
pandas frame around it, so the timing is the engine's, not the DataFrame's. Documents come from
``Corpus.iter_rows``, so it also runs on a streamed corpus (regenerated through sparsearch, which the
peers' venv imports from the project's site-packages).
"""

from __future__ import annotations

import numpy as np
from harness import Engine, main

ALGORITHMS = ["block_max_wand", "maxscore", "block_max_maxscore"]


class Pisa(Engine):
    name = "pisa"

    def build(self) -> None:
        import pyterrier_pisa

        scale = self.options["doc_scale"]
        c = self.corpus
        vocab = c.vocab

        def documents():  # row by row from CSR chunks: a streamed corpus (10M documents) is never whole
            row = 0
            for indptr, terms, weights in c.iter_rows(100_000):
                for s, e in zip(indptr[:-1], indptr[1:], strict=True):
                    toks = {vocab[t]: float(w) for t, w in zip(terms[s:e], weights[s:e], strict=True)}
                    yield {"docno": str(row), "toks": toks}
                    row += 1

        index = pyterrier_pisa.PisaIndex(str(self.index_dir), stemmer="none", stops="none", threads=1, overwrite=True)
        index.toks_indexer(mode="overwrite", scale=scale).index(documents())

    def open(self) -> None:
        import pyterrier_pisa

        self.index = pyterrier_pisa.PisaIndex(str(self.index_dir), stemmer="none", stops="none")
        self.retriever = self.index.quantized(num_results=10, threads=1, toks_scale=self.options["query_scale"])
        self.retriever.reset_retrieval_context()  # loads the index (timed as load)
        self.algorithm = ALGORITHMS[0]

    def variants(self) -> list[dict]:
        return [{"query_algorithm": a} for a in self.options.get("algorithms", ALGORITHMS)]

    def set_variant(self, variant: dict) -> None:
        self.algorithm = variant["query_algorithm"]

    def prepare_queries(self) -> list:
        scale = self.options["query_scale"]  # what PisaRetrieve.transform does with toks_scale
        return [{t: float(w * scale) for t, w in q.items()} for q in self.corpus.query_dicts()]

    def _retrieve(self, queries: list, k: int, threads: int) -> list[list[int]]:
        from pyterrier_pisa import _pisathon

        n = len(queries) * k
        qidx = np.empty(n, dtype=np.int32)
        docnos = np.empty(n, dtype=object)
        ranks = np.empty(n, dtype=np.int32)
        scores = np.empty(n, dtype=np.float32)
        size = _pisathon.retrieve(
            self.retriever._ctxt, self.algorithm, list(enumerate(queries)), k=k, threads=threads,
            query_weighted=1, pretokenised=True, result_qidxs=qidx, result_docnos=docnos,
            result_ranks=ranks, result_scores=scores,
        )  # fmt: skip
        out: list[list[tuple[int, int]]] = [[] for _ in queries]
        for q, d, r in zip(qidx[:size], docnos[:size], ranks[:size], strict=True):
            out[q].append((int(r), int(d)))
        return [[d for _, d in sorted(hits)] for hits in out]

    def search(self, query, k: int) -> list[int]:
        return self._retrieve([query], k, 1)[0]

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        return self._retrieve(queries, k, threads)

    def describe(self) -> dict:
        import pyterrier_pisa

        return {
            "version": pyterrier_pisa.__version__,
            "doc_scale": self.options["doc_scale"],
            "query_scale": self.options["query_scale"],
            "quantisation": "int(weight x doc_scale), postings with 0 dropped",
            "index_encoding": "block_simdbp",
        }


if __name__ == "__main__":
    main(Pisa)
