"""The service in front of a real OpenSearch: the same answers as the embedded engine, document
updates, and 503 while the engine cannot be reached, with recovery once it can.

Needs ``SPARSEARCH_TEST_OPENSEARCH_URL`` (``scripts/test`` starts OpenSearch and sets it): unset,
these tests skip saying how to start one; set but unreachable, they fail.

"Engine down" is a network cut: the service talks to OpenSearch through a TCP relay that the test
closes and reopens, while the real engine keeps running for the other tests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.engines import bodies
from sparsearch.backends.engines.opensearch import OpenSearchBackend
from sparsearch.encoders.registry import load_encoder
from sparsearch.jobs.build_engine import index_corpus
from tests.api.conftest import LiveServer, app_client, make_settings
from tests.api.test_search import QUERIES, assert_error
from tests.conftest import TINY

pytestmark = pytest.mark.integration


class Relay:
    """A TCP relay ``127.0.0.1:port`` -> ``upstream`` that can be cut (``down``) and restored (``up``)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rstrip("/").split(":")
        self.upstream = (host, int(port))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and reset the open ones (what a dead engine looks like)."""
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):  # wakes the thread blocked in accept() (close alone does not)
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="module")
def engine_alias(opensearch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tiny collection indexed into the real OpenSearch with BM25 (dropped afterwards)."""
    backend = OpenSearchBackend.connect(opensearch_url, f"api-{uuid.uuid4().hex[:10]}")
    failures = tmp_path_factory.mktemp("engine") / "failures.jsonl"
    try:
        summary = index_corpus(TINY, backend, load_encoder("bm25"), failures_path=failures)
        assert summary.swapped
        yield backend.index
    finally:
        backend.drop()
        backend.close()


@pytest.fixture
def engine_server(opensearch_url: str, engine_alias: str) -> Iterator[LiveServer]:
    with LiveServer(make_settings(f"tiny={engine_alias}", backend="opensearch", engine_url=opensearch_url)) as server:
        yield server


@pytest.fixture
def http(engine_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=engine_server.url, timeout=60) as client:
        yield client


@pytest.mark.parametrize("query", QUERIES)
def test_answers_match_the_embedded_engine(http, _tiny_bm25_index: Path, query: str) -> None:
    index = EmbeddedIndex.open(_tiny_bm25_index)
    exact = {h.doc_id: h.score for h in index.search(load_encoder(index.encoder_dir).encode_query(query), 8)}
    response = http.post("/v1/search", json={"query": query, "top_k": 8, "explain": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["index"] == "tiny" and body["model"] == "bm25"
    hits = body["hits"]
    assert {h["id"] for h in hits} == set(exact)
    stored = {d.doc_id: d for d in index.get_documents(list(exact))}
    for hit in hits:
        # the engine scores weights kept to 9 significant bits: at most 2**-8 below the exact score
        assert exact[hit["id"]] * (1 - bodies.SCORE_RELATIVE_TOLERANCE) <= hit["score"] <= exact[hit["id"]] * 1.000001
        assert hit["title"] == stored[hit["id"]].title and stored[hit["id"]].text.startswith(hit["snippet"])
        contributions = [m["contribution"] for m in hit["explain"]["matched"]]
        assert sum(contributions) == pytest.approx(hit["score"], rel=1e-5)
        assert set(exact_explain := index.explain(load_encoder(index.encoder_dir).encode_query(query), hit["id"])) == {
            m["token"] for m in hit["explain"]["matched"]
        }, exact_explain
        assert hit["explain"]["highlights"]


def test_batch_indexes_and_readiness(http, opensearch_url: str, engine_alias: str) -> None:
    batch = http.post("/v1/search/batch", json={"queries": QUERIES, "top_k": 2}).json()
    assert [len(r["hits"]) for r in batch["results"]] == [2, 2, 1, 2]
    listed = http.get("/v1/indexes").json()["indexes"]
    assert listed == [{"name": "tiny", "backend": "opensearch", "model": "bm25", "documents": 8, "default": True}]
    detail = http.get("/v1/indexes/tiny").json()
    assert detail["build"]["live_index"].startswith(engine_alias) and detail["build"]["state"] == "complete"
    ready = http.get("/ready").json()["indexes"]["tiny"]
    assert ready["engine"]["engine"] == "opensearch" and ready["engine"]["documents"] == 8


def test_documents_are_added_replaced_and_deleted(http) -> None:
    document = {"id": "n1", "title": "Hypersonic gliders", "text": "Hypersonic glider heating at Mach twenty."}
    response = http.post("/v1/indexes/tiny/documents", json={"documents": [document]})
    assert response.status_code == 200, response.text
    assert response.json()["documents"] == 9
    hit = http.post("/v1/search", json={"query": "hypersonic glider"}).json()["hits"][0]
    assert (hit["id"], hit["title"]) == ("n1", "Hypersonic gliders")
    assert http.delete("/v1/indexes/tiny/documents/n1").json()["documents"] == 8
    assert http.post("/v1/search", json={"query": "glider"}).json()["hits"] == []
    assert_error(http.delete("/v1/indexes/tiny/documents/n1"), 404, "unknown_document")


def test_engine_down_gives_503_and_the_service_recovers(opensearch_url: str, engine_alias: str) -> None:
    relay = Relay(opensearch_url)
    relay.down()  # the engine is unreachable when the service starts
    with LiveServer(make_settings(f"tiny={engine_alias}", backend="opensearch", engine_url=relay.url)) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.get("/health").status_code == 200
            error = assert_error(http.post("/v1/search", json={"query": "wing"}), 503, "engine_unavailable", "tiny")
            assert "cannot reach OpenSearch" in error["message"] and "retry" in error["message"]
            assert_error(http.get("/ready"), 503, "not_ready")

            relay.up()  # the engine is back: no restart needed
            assert http.post("/v1/search", json={"query": "wing"}).status_code == 200
            assert http.get("/ready").status_code == 200

            relay.down()  # it goes away again while the service runs
            assert_error(http.post("/v1/search", json={"query": "wing"}), 503, "engine_unavailable")
            assert_error(
                http.post("/v1/indexes/tiny/documents", json={"documents": [{"id": "x", "text": "wing"}]}),
                503,
                "engine_unavailable",
            )
            relay.up()
            response = http.post("/v1/search", json={"query": "wing", "explain": True})
            assert response.status_code == 200 and response.json()["hits"][0]["explain"]["matched"]
    relay.down()


def test_a_missing_alias_is_not_ready_until_it_exists(opensearch_url: str, tmp_path: Path) -> None:
    """A fresh deployment: the service starts before anyone indexed, answers 503, then serves the alias."""
    backend = OpenSearchBackend.connect(opensearch_url, f"later-{uuid.uuid4().hex[:10]}")
    try:
        settings = make_settings(f"tiny={backend.index}", backend="opensearch", engine_url=opensearch_url)
        with app_client(settings) as http:
            not_ready = assert_error(http.get("/ready"), 503, "not_ready", "tiny")
            assert f"no index {backend.index!r}" in not_ready["details"][0]["message"]
            error = assert_error(http.post("/v1/search", json={"query": "wing"}), 503, "engine_unavailable", "tiny")
            assert "sparsearch index" in error["message"] and "retry" in error["message"]

            index_corpus(TINY, backend, load_encoder("bm25"), failures_path=tmp_path / "failures.jsonl")
            assert http.get("/ready").status_code == 200
            assert http.post("/v1/search", json={"query": "wing"}).json()["hits"]
    finally:
        backend.drop()
        backend.close()
