"""Tests that start their own OpenSearch (scripts/opensearch): a killed engine, a three-node cluster.

They run whenever the engine tests run (``SPARSEARCH_TEST_OPENSEARCH_URL`` set, as scripts/test
does); each starts a separate instance on free ports and stops it at the end.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from sparsearch.backends.engines.bulk import RetryPolicy
from sparsearch.backends.engines.client import default_cache_dir
from sparsearch.backends.engines.opensearch import OpenSearchBackend
from sparsearch.corpus import iter_corpus
from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import EngineUnavailableError
from sparsearch.jobs.build_engine import index_corpus, index_vectors
from tests.conftest import bundled_collection

from ._engines import RANDOM_FINGERPRINT, connect, dropped_after, free_port_block, opensearch, random_collection


class _KillAt:
    """Progress callback that SIGKILLs the engine once ``at`` documents are written (mid bulk load)."""

    def __init__(self, port: int, at: int, restart: bool = False) -> None:
        self.port, self.at, self.restart = port, at, restart
        self.done = 0
        self.killed_at: int | None = None
        self.restarter: threading.Thread | None = None

    def __call__(self, n: int) -> None:
        self.done += n
        if self.killed_at is None and self.done >= self.at:
            opensearch("kill", "--port", str(self.port))
            self.killed_at = self.done
            if self.restart:  # bring it back while the job is still retrying
                self.restarter = threading.Thread(
                    target=opensearch, args=("start", "--port", str(self.port), "--keep-data")
                )
                self.restarter.start()


@pytest.mark.integration  # three engine starts: ~50 s alone, over 60 s on a busy machine
def test_killed_engine_mid_load_retries_or_resumes_to_the_exact_corpus(opensearch_url: str, tmp_path: Path) -> None:
    corpus = bundled_collection("cranfield")
    corpus_ids = {d.doc_id for d in iter_corpus(corpus)}
    port = free_port_block(1)
    opensearch("start", "--port", str(port), "--keep-data")
    backend = OpenSearchBackend.connect(f"http://127.0.0.1:{port}", "cranfield")
    failures = tmp_path / "failures.jsonl"
    options = {"chunk_size": 50, "threads": 1, "failures_path": failures}
    try:
        # 1. killed mid load and restarted while the job backs off: the same run finishes.
        kill = _KillAt(port, at=400, restart=True)
        patient = RetryPolicy(max_retries=90, initial_backoff_s=0.25, max_backoff_s=2)  # up to ~3 min down
        first = index_corpus(corpus, backend, load_encoder("bm25"), retry=patient, on_progress=kill, **options)
        assert kill.restarter is not None
        kill.restarter.join()
        assert kill.killed_at is not None and kill.killed_at < len(corpus_ids)
        assert first.swapped and not first.resumed and first.documents == len(corpus_ids)

        # 2. killed mid load with few retries: the run stops; after a restart the rerun resumes it.
        kill = _KillAt(port, at=400)
        impatient = RetryPolicy(max_retries=2, initial_backoff_s=0.1)
        with pytest.raises(EngineUnavailableError, match="rerun the same command"):
            index_corpus(corpus, backend, load_encoder("bm25"), retry=impatient, on_progress=kill, **options)
        assert failures.is_file()  # the undelivered documents are listed for the rerun
        opensearch("start", "--port", str(port), "--keep-data")
        second = index_corpus(corpus, backend, load_encoder("bm25"), **options)
        assert second.resumed and second.index == "cranfield-v000002"
        assert second.skipped >= kill.at and second.skipped + second.sent == len(corpus_ids)
        assert second.swapped and second.documents == len(corpus_ids)
        ids = list(backend.iter_doc_ids())
        assert len(ids) == len(set(ids)) and set(ids) == corpus_ids  # nothing lost, nothing duplicated
        assert not failures.exists()
    finally:
        backend.close()
        opensearch("stop", "--port", str(port))
        shutil.rmtree(default_cache_dir() / "opensearch" / str(port) / "data", ignore_errors=True)


def test_three_node_cluster_answers_like_a_single_node(opensearch_url: str) -> None:
    port = free_port_block(3)
    opensearch("start", "--nodes", "3", "--port", str(port))
    documents, vectors, queries = random_collection(seed=11, n_docs=400)
    try:
        cluster = connect(f"http://127.0.0.1:{port}")
        single = connect(opensearch_url, cluster.index)
        cluster_gen, single_gen = dropped_after(cluster), dropped_after(single)
        next(cluster_gen), next(single_gen)
        assert cluster.health()["nodes"] == 3
        version = index_vectors(cluster, documents, vectors, RANDOM_FINGERPRINT, shards=3, replicas=1)
        index_vectors(single, documents, vectors, RANDOM_FINGERPRINT, shards=1)
        shards = cluster.client.cat.shards(index=version, format="json")
        assert len({s["node"] for s in shards}) == 3 and len(shards) == 6  # 3 primaries + 3 replicas, spread
        for query in queries:
            assert cluster.search(query, 20) == single.search(query, 20)
        assert cluster.count() == single.count() == len(documents)
        for generator in (cluster_gen, single_gen):
            with pytest.raises(StopIteration):
                next(generator)  # drops the test indexes
    finally:
        opensearch("stop", "--port", str(port))
