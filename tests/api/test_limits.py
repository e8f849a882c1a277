"""What one search request may cost: hit limits, the deadline, cancellation on disconnect, memory trim."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparsearch.api.errors import ApiError
from sparsearch.api.limits import Deadline, check_search_cost
from tests.api.conftest import app_client, make_settings
from tests.api.test_search import QUERIES, assert_error

WORDS = "wing heat shells flutter boundary layer lift speed".split()


def batch(n: int) -> list[str]:
    """``n`` distinct queries that all match something in the tiny index."""
    return [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 3 + 1) % len(WORDS)]} {i}" for i in range(n)]


# -- hit limits ------------------------------------------------------------------------------------------
def test_normal_use_fits_the_default_limits(http) -> None:
    plain = http.post("/v1/search/batch", json={"queries": batch(100), "top_k": 100})
    assert plain.status_code == 200, plain.text
    explained = http.post("/v1/search/batch", json={"queries": batch(10), "top_k": 100, "explain": True})
    assert explained.status_code == 200, explained.text
    assert all(hit["explain"]["matched"] for r in explained.json()["results"] for hit in r["hits"])
    single = http.post("/v1/search", json={"query": "wing", "top_k": 1000, "explain": True})
    assert single.status_code == 200, single.text


def test_a_batch_over_the_hit_limit_says_limit_cost_and_how_to_fit(http) -> None:
    response = http.post("/v1/search/batch", json={"queries": batch(100), "top_k": 1000})
    error = assert_error(
        response,
        422,
        "too_many_hits",
        "100 queries x top_k 1000 = 100,000 hits",
        "limit of 20,000",
        "fewer queries",
        "a smaller top_k",
        "SPARSEARCH_MAX_HITS_PER_REQUEST",
    )
    assert error["details"][0]["type"] == "too_many_hits"


def test_explain_has_a_lower_limit_and_suggests_dropping_it(http) -> None:
    response = http.post("/v1/search/batch", json={"queries": batch(20), "top_k": 200, "explain": True})
    assert_error(
        response,
        422,
        "too_many_hits",
        "4,000 explained hits",
        "limit of 2,000",
        "no explain",
        "SPARSEARCH_MAX_EXPLAINED_HITS_PER_REQUEST",
    )
    # the same request without explain is answered
    assert http.post("/v1/search/batch", json={"queries": batch(20), "top_k": 200}).status_code == 200


def test_limits_come_from_the_settings(tiny_bm25_index: Path) -> None:
    settings = make_settings(f"tiny={tiny_bm25_index}", max_hits_per_request=50, max_explained_hits_per_request=5)
    with app_client(settings) as client:
        assert client.post("/v1/search", json={"query": "wing", "top_k": 50}).status_code == 200
        error = assert_error(
            client.post("/v1/search", json={"query": "wing", "top_k": 51}), 422, "too_many_hits", "limit of 50"
        )
        assert "fewer queries" not in error["message"]  # a single query: only a smaller top_k helps
        explained = client.post("/v1/search", json={"query": "wing", "top_k": 6, "explain": True})
        assert_error(explained, 422, "too_many_hits", "1 query x top_k 6 = 6 explained hits", "limit of 5")


def test_the_cost_rule() -> None:
    settings = make_settings("tiny=unused", max_hits_per_request=1000, max_explained_hits_per_request=100)
    assert check_search_cost(10, 100, False, settings) == 1000
    assert check_search_cost(1, 100, True, settings) == 100
    with pytest.raises(ApiError) as caught:
        check_search_cost(101, 10, False, settings)
    assert caught.value.status == 422 and "1,010 hits" in caught.value.message
    with pytest.raises(ApiError) as caught:
        check_search_cost(1, 1000, True, settings)  # 1000 plain hits would fit: dropping explain is a way out
    assert "no explain" in caught.value.message
    with pytest.raises(ApiError) as caught:
        check_search_cost(1, 1001, True, settings)  # would not fit without explain either
    assert "no explain" not in caught.value.message


def test_the_limits_are_validated() -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="max_hits_per_request"):
        make_settings("tiny=unused", max_hits_per_request=0)
    with pytest.raises(pydantic.ValidationError, match="search_timeout_seconds"):
        make_settings("tiny=unused", search_timeout_seconds=0)


# -- the deadline ----------------------------------------------------------------------------------------
class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadline_times_out_and_cancels() -> None:
    clock = FakeClock()
    deadline = Deadline(2.0, clock=clock)
    deadline.check()
    clock.now += 2.0
    deadline.check()  # exactly at the budget: still allowed
    clock.now += 0.001
    with pytest.raises(ApiError) as caught:
        deadline.check()
    assert caught.value.status == 504 and caught.value.code == "search_timeout"
    assert "2 s" in caught.value.message and "SPARSEARCH_SEARCH_TIMEOUT_SECONDS" in caught.value.message

    cancelled = Deadline(60.0, clock=clock)
    assert not cancelled.cancelled
    cancelled.cancel()
    assert cancelled.cancelled and cancelled.wait_cancelled(0)
    with pytest.raises(ApiError) as caught:
        cancelled.check()
    assert caught.value.status == 499 and caught.value.code == "client_disconnected"


class CountingEncoder:
    """Wraps an encoder, counting queries encoded; ``on_encode`` runs after each."""

    def __init__(self, encoder, on_encode) -> None:  # noqa: ANN001
        self._encoder = encoder
        self.on_encode = on_encode
        self.encoded = 0
        self.fingerprint = encoder.fingerprint

    def encode_query(self, text: str):  # noqa: ANN201
        self.encoded += 1
        encoded = self._encoder.encode_query(text)
        self.on_encode(self.encoded)
        return encoded


@pytest.fixture
def tiny_handle(client) -> Iterator:  # noqa: ANN001
    yield client.app.state.registry.get("tiny"), client.app.state.metrics


def _with_encoder(monkeypatch: pytest.MonkeyPatch, handle, encoder) -> None:  # noqa: ANN001
    monkeypatch.setattr(type(handle), "encoder", property(lambda self: encoder))


def test_a_cancelled_search_stops_between_queries(tiny_handle, monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.api import service

    handle, metrics = tiny_handle
    deadline = Deadline(60.0)
    encoder = CountingEncoder(handle.encoder, lambda n: deadline.cancel() if n == 3 else None)
    _with_encoder(monkeypatch, handle, encoder)
    with pytest.raises(ApiError) as caught:
        service.search(
            handle, batch(100), top_k=5, explain=False, snippet_chars=100, metrics=metrics, deadline=deadline
        )
    assert caught.value.code == "client_disconnected"
    assert encoder.encoded == 3  # the other 97 queries were never encoded


def test_a_timed_out_search_stops_between_hits_when_explaining(tiny_handle) -> None:
    from sparsearch.api import service

    handle, metrics = tiny_handle
    clock = FakeClock()

    class Expiring(Deadline):
        """Expires after a given number of checks (the work's chunks), whatever the time."""

        def check(self) -> None:
            if self.checks == self.allowed:
                clock.now += 10.0
            super().check()

    everything = Expiring(5.0, clock=clock)
    everything.allowed = 10_000
    outcome = service.search(
        handle, batch(3), top_k=5, explain=True, snippet_chars=100, metrics=metrics, deadline=everything
    )
    hits = sum(len(hits) for hits in outcome.hits)
    assert hits >= 6 and everything.checks >= 3 + hits  # one check per query encoded, one per explained hit

    cut = Expiring(5.0, clock=clock)
    cut.allowed = everything.checks - 2  # expires just before the last explained hits
    with pytest.raises(ApiError) as caught:
        service.search(handle, batch(3), top_k=5, explain=True, snippet_chars=100, metrics=metrics, deadline=cut)
    assert caught.value.status == 504
    assert cut.checks == cut.allowed + 1  # stopped at the first check past the deadline


def test_a_search_over_the_timeout_answers_504(tiny_bm25_index: Path) -> None:
    # a budget of a nanosecond is spent by the time the first query is encoded
    with app_client(make_settings(f"tiny={tiny_bm25_index}", search_timeout_seconds=1e-9)) as client:
        response = client.post("/v1/search/batch", json={"queries": batch(100), "top_k": 10})
        assert_error(response, 504, "search_timeout", "SPARSEARCH_SEARCH_TIMEOUT_SECONDS", "fewer queries")
        metrics = client.get("/metrics").text
    assert 'sparsearch_http_requests_total{method="POST",route="/v1/search/batch",status="504"} 1.0' in metrics


def test_a_client_that_hangs_up_stops_the_search(live_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end on uvicorn: the search is held until the route's watcher sees the disconnect and cancels
    its deadline; the real search then stops at its first check."""
    from sparsearch.api import service

    real_search = service.search
    started, finished = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def held_search(*args, deadline: Deadline, **kwargs):  # noqa: ANN002, ANN003, ANN202
        started.set()
        try:
            seen["cancelled"] = deadline.wait_cancelled(timeout=60)
            return real_search(*args, deadline=deadline, **kwargs)
        except ApiError as error:
            seen["error"] = error.code
            raise
        finally:
            finished.set()

    monkeypatch.setattr(service, "search", held_search)
    body = b'{"queries": ["wing", "heat", "shells"], "top_k": 5}'
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(
            b"POST /v1/search/batch HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert started.wait(timeout=60), "the search never started"
    assert finished.wait(timeout=60), "the search never finished"
    assert seen == {"cancelled": True, "error": "client_disconnected"}


# -- memory ----------------------------------------------------------------------------------------------
def test_memory_is_trimmed_after_large_requests_only(tiny_bm25_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.api.routers import search as search_routes

    trims: list[bool] = []
    monkeypatch.setattr(search_routes, "trim_memory", lambda: trims.append(True))
    with app_client(make_settings(f"tiny={tiny_bm25_index}", trim_memory_after_hits=20)) as client:
        assert client.post("/v1/search/batch", json={"queries": QUERIES, "top_k": 4}).status_code == 200
        assert trims == []  # 16 hits asked for
        assert client.post("/v1/search/batch", json={"queries": QUERIES, "top_k": 5}).status_code == 200
        assert trims == [True]  # 20 hits asked for
    with app_client(make_settings(f"tiny={tiny_bm25_index}", trim_memory_after_hits=0)) as client:
        assert client.post("/v1/search", json={"query": "wing", "top_k": 1000}).status_code == 200
        assert trims == [True]  # 0: never


def test_trim_memory_never_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.api import memory

    assert memory.trim_memory() in (True, False)  # glibc: malloc_trim ran; elsewhere: nothing to do
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    try:
        assert memory._malloc_trim() is None and memory.trim_memory() is False
    finally:
        memory._malloc_trim.cache_clear()
