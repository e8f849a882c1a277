"""Seismic (pyseismic-lsr): approximate; its recall@10 against exact search is reported per setting.

Documents go in by integer component id (CSR, ``add_documents_by_id``); queries address component
``t`` as the string ``"t"``. Built with the library's defaults (n_postings 3500, centroid_fraction 0.1,
summary_energy 0.4) unless the job says otherwise; searched at several heap factors (query_cut = the
whole query), from fastest to most accurate.
"""

from __future__ import annotations

import numpy as np
from harness import Engine, main

HEAP_FACTORS = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


class Seismic(Engine):
    name = "seismic"

    def build(self) -> None:
        import seismic

        c = self.corpus
        dataset = seismic.SeismicDataset()
        dataset.add_documents_by_id(
            [str(i) for i in range(c.n_docs)], c.doc_terms.astype(np.int64), c.doc_weights.astype(np.float32),
            c.doc_indptr.astype(np.int64),
        )  # fmt: skip
        params = {"n_postings": 3500, "centroid_fraction": 0.1, "summary_energy": 0.4, **self.options.get("build", {})}
        index = seismic.SeismicIndex.build_from_dataset(dataset, **params, num_threads=self.options.get("threads", 2))
        index.save(str(self.index_dir / "index"))

    def open(self) -> None:
        import seismic

        self.index = seismic.SeismicIndex.load(str(self.index_dir / "index.index.seismic"))
        self.string = seismic.get_seismic_string()
        self.heap_factor = HEAP_FACTORS[-1]

    def variants(self) -> list[dict]:
        return [{"heap_factor": h} for h in self.options.get("heap_factors", HEAP_FACTORS)]

    def set_variant(self, variant: dict) -> None:
        self.heap_factor = variant["heap_factor"]

    def prepare_queries(self) -> list:
        c = self.corpus
        queries = []
        for i in range(c.n_queries):
            terms, weights = c.query(i)
            queries.append((np.array([str(t) for t in terms], dtype=self.string), weights.astype(np.float32)))
        self.query_cut = max(len(t) for t, _ in queries)
        return queries

    def search(self, query, k: int) -> list[int]:
        components, values = query
        hits = self.index.search("q", components, values, k=k, query_cut=self.query_cut, heap_factor=self.heap_factor)
        return [int(doc) for _, _, doc in hits]

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        results = self.index.batch_search(
            np.array([str(i) for i in range(len(queries))], dtype=self.string),
            [c for c, _ in queries], [v for _, v in queries], k=k, query_cut=self.query_cut,
            heap_factor=self.heap_factor, num_threads=threads,
        )  # fmt: skip
        return [[int(doc) for _, _, doc in hits] for hits in results]

    def describe(self) -> dict:
        from importlib.metadata import version

        params = {"n_postings": 3500, "centroid_fraction": 0.1, "summary_energy": 0.4, **self.options.get("build", {})}
        return {"version": version("pyseismic-lsr"), "build": params, "query_cut": "whole query"}


if __name__ == "__main__":
    main(Seismic)
