"""Evaluation runs report warm latency: the cold first query is timed apart, never in the percentiles."""

from __future__ import annotations

import pytest

from sparsearch.backends.base import Hit
from sparsearch.eval.beir_data import BeirTopics
from sparsearch.eval.runner import evaluate
from sparsearch.types import EncodedQuery, EncoderFingerprint

FINGERPRINT = EncoderFingerprint(name="fake", vocab_hash="v", idf_hash="")


class FakeClock:
    """Seconds that move only when the fake backend searches: its first search "compiles" (5 s), every
    later one takes 2 ms."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeEncoder:
    fingerprint = FINGERPRINT

    def encode_query(self, text: str) -> EncodedQuery:
        return EncodedQuery({word: 1.0 for word in text.split()}, self.fingerprint, text)


class FakeBackend:
    name = "fake"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.searched: list[str] = []

    def count(self) -> int:
        return 2

    def search(self, query: EncodedQuery, top_k: int) -> list[Hit]:
        self.clock.now += 5.0 if not self.searched else 0.002
        self.searched.append(query.text)
        return [Hit("d1", 2.0), Hit("d2", 1.0)][:top_k]


def test_the_first_query_is_timed_apart_and_the_percentiles_are_warm() -> None:
    clock = FakeClock()
    backend = FakeBackend(clock)
    queries = {f"q{i}": f"query {i}" for i in range(1, 6)}
    topics = BeirTopics(queries=queries, qrels={query_id: {"d1": 1} for query_id in queries})
    report, run = evaluate(
        backend,  # type: ignore[arg-type]
        FakeEncoder(),  # type: ignore[arg-type]
        topics,
        dataset="fake",
        model="fake",
        index_stats={},
        depth=10,
        clock=clock,
    )
    # one untimed warm-up search of the first query, then every query once
    assert backend.searched == ["query 1", "query 1", "query 2", "query 3", "query 4", "query 5"]
    assert report.first_query_ms == pytest.approx(5000.0)
    for name in ("search_p50", "search_p95", "search_p99", "search_mean"):
        assert report.latency_ms[name] == pytest.approx(2.0), name  # the 5 s search is in none of them
    assert set(run) == set(queries) and report.queries == 5
    payload = report.to_dict()
    assert payload["first_query_ms"] == pytest.approx(5000.0)
    assert payload["latency_ms"]["search_p99"] == pytest.approx(2.0)
