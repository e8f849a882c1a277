"""Done-when figure: BM25 on cranfield through the embedded engine and through a real OpenSearch.

The engine stores weights with 9 significant bits, so scores differ by < 0.4% and rankings may
swap near-ties; nDCG@10 must agree within 0.002 and the top-10 lists must overlap. The measured
numbers are in bench/results/engine_parity.json (bench/engine_parity.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sparsearch.backends.engines import bodies
from sparsearch.encoders.registry import load_encoder
from sparsearch.eval.beir_data import load_beir_topics
from sparsearch.eval.metrics import aggregate_metrics
from sparsearch.eval.runner import run_queries
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.jobs.build_engine import index_corpus
from tests.conftest import bundled_collection

from ._engines import connect


def test_cranfield_bm25_embedded_and_opensearch_agree(opensearch_url: str, tmp_path: Path) -> None:
    data = bundled_collection("cranfield")
    topics = load_beir_topics(data)
    encoder = load_encoder("bm25")
    embedded, _ = build_embedded_index(data, tmp_path / "index", encoder)  # fits the encoder once
    engine = connect(opensearch_url)
    try:
        summary = index_corpus(data, engine, encoder, failures_path=tmp_path / "f.jsonl")
        assert summary.swapped and summary.documents == embedded.count() == 1400
        local, _, _ = run_queries(embedded, encoder, topics.queries, depth=1000)
        remote, _, _ = run_queries(engine, encoder, topics.queries, depth=1000)
    finally:
        engine.drop()
    local_metrics = aggregate_metrics(topics.qrels, local)
    remote_metrics = aggregate_metrics(topics.qrels, remote)
    assert abs(local_metrics["ndcg@10"] - remote_metrics["ndcg@10"]) <= 0.002

    def top10(run: dict[str, dict[str, float]], query_id: str) -> list[str]:
        return sorted(run[query_id], key=lambda d: (-run[query_id][d], d))[:10]

    overlaps = [
        len(set(top10(local, q)) & set(top10(remote, q))) / max(1, len(top10(local, q))) for q in topics.queries
    ]
    assert float(np.mean(overlaps)) >= 0.97
    assert min(overlaps) >= 0.8
    # Where the engine's order differs from the exact one, the exact scores are near-ties.
    for query_id in topics.queries:
        order = top10(remote, query_id)
        for higher, lower in zip(order, order[1:], strict=False):
            exact_higher, exact_lower = local[query_id][higher], local[query_id][lower]
            assert exact_higher >= exact_lower * (1 - bodies.SCORE_RELATIVE_TOLERANCE), (query_id, higher, lower)
