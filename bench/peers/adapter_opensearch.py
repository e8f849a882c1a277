"""The real OpenSearch (``scripts/opensearch start``), through sparsearch's own OpenSearch backend:
``rank_features`` field, bool of linear ``rank_feature`` queries (the same dot product, weights
stored with 9 significant bits). Runs in the project interpreter; ``bench/run.py`` starts the
server on its own port before and stops it after.

Indexed with the backend's bulk job (2 threads), then force-merged to one segment, the usual
setting for a read-only benchmark. Single queries are single HTTP requests (client time included);
throughput sends ``threads`` concurrent requests. Peak RSS is the server JVM's high-water mark.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import Engine, main, vm_hwm_mb

INDEX = "bench"


class OpenSearch(Engine):
    name = "opensearch"

    def _backend(self):
        from sparsearch.backends.engines.opensearch import OpenSearchBackend

        return OpenSearchBackend.connect(self.options["url"], INDEX, timeout=600)

    def build(self) -> None:
        from sparsearch.jobs.build_engine import index_vectors
        from sparsearch.types import Document, EncoderFingerprint

        backend = self._backend()
        backend.drop()
        c = self.corpus
        fingerprint = EncoderFingerprint(name="bench", vocab_hash="bench", idf_hash="bench")
        documents, vectors = [], []
        for i in range(c.n_docs):
            terms, weights = c.doc(i)
            documents.append(Document(doc_id=f"{i:010d}", text=""))  # id order = row order (ties)
            vectors.append({c.vocab[t]: float(w) for t, w in zip(terms, weights, strict=True)})
        index_vectors(backend, documents, vectors, fingerprint, threads=2, chunk_size=500)
        live = backend.live_indexes()[0]
        backend.client.indices.forcemerge(index=live, max_num_segments=1, request_timeout=3600)
        backend.refresh()
        self.stats = backend.index_stats()
        (self.index_dir / "live_index.txt").write_text(live)
        backend.close()

    def index_bytes(self) -> int:
        return int(self.stats["bytes"])

    def open(self) -> None:
        self.backend = self._backend()
        self.backend.count()
        self.fingerprint = self.backend.fingerprint

    def prepare_queries(self) -> list:
        from sparsearch.types import EncodedQuery

        return [EncodedQuery(q, self.fingerprint) for q in self.corpus.query_dicts()]

    def search(self, query, k: int) -> list[int]:
        return [int(h.doc_id) for h in self.backend.search(query, k)]

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda q: self.search(q, k), queries))

    def peak_rss_mb(self) -> float:
        return vm_hwm_mb(Path(self.options["pid_file"]).read_text().strip())

    def describe(self) -> dict:
        return {
            "version": self.backend.server_version if hasattr(self, "backend") else None,
            "field": "rank_features (9 significant bits)",
            "segments": 1,
            "heap": self.options.get("heap"),
        }

    def close(self) -> None:
        if hasattr(self, "backend"):
            self.backend.close()


if __name__ == "__main__":
    main(OpenSearch)
