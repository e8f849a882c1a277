"""Metrics come from pytrec_eval; queries without results count as 0; golden numbers on fixtures."""

from __future__ import annotations

import pytest

from sparsearch.encoders.registry import load_encoder
from sparsearch.eval.beir_data import load_beir_topics
from sparsearch.eval.metrics import aggregate_metrics, per_query_metrics
from sparsearch.eval.runner import run_queries
from sparsearch.eval.trec import read_trec_run, write_trec_run
from sparsearch.jobs.build_embedded import build_embedded_index
from tests.conftest import bundled_collection


def test_query_without_results_counts_as_zero() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 3.0, "d9": 1.0}}  # q2 retrieved nothing
    metrics = aggregate_metrics(qrels, run)
    assert metrics["ndcg@10"] == pytest.approx(0.5)
    assert metrics["mrr@10"] == pytest.approx(0.5)
    assert per_query_metrics(qrels, run)["recall@100"] == {"q1": 1.0, "q2": 0.0}


def test_mrr_is_cut_at_10() -> None:
    qrels = {"q": {"rel": 1}}
    run = {"q": {**{f"d{i:02d}": 100.0 - i for i in range(10)}, "rel": 1.0}}  # relevant at rank 11
    metrics = aggregate_metrics(qrels, run)
    assert metrics["mrr@10"] == 0.0 and metrics["recall@100"] == 1.0


def test_trec_run_round_trip(tmp_path) -> None:
    run = {"q1": {"b": 1.0, "a": 1.0, "c": 2.5}}
    write_trec_run(run, tmp_path / "run.trec", tag="t")
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert lines == ["q1 Q0 c 1 2.500000 t", "q1 Q0 a 2 1.000000 t", "q1 Q0 b 3 1.000000 t"]
    assert read_trec_run(tmp_path / "run.trec") == run


def evaluate_model(data, model, tmp_path):
    topics = load_beir_topics(data)
    encoder = load_encoder(model)
    index, _ = build_embedded_index(data, tmp_path / model, encoder)
    run, _, _ = run_queries(index, encoder, topics.queries, 1000)
    return aggregate_metrics(topics.qrels, run)


def test_golden_metrics_on_the_tiny_fixture(tiny_data, tmp_path) -> None:
    metrics = evaluate_model(tiny_data, "bm25", tmp_path)
    assert {k: round(v, 4) for k, v in metrics.items()} == {
        "ndcg@10": 0.7848,
        "recall@100": 0.8,
        "recall@1000": 0.8,
        "mrr@10": 0.8,
        "map": 0.75,
    }


@pytest.mark.parametrize(
    ("collection", "model", "ndcg"),
    [("cranfield", "bm25", 0.3730), ("cranfield", "bm25-wordpiece", 0.3451), ("cisi", "bm25", 0.3956)],
)
def test_golden_bm25_on_bundled_collections(collection, model, ndcg, tmp_path) -> None:
    metrics = evaluate_model(bundled_collection(collection), model, tmp_path)
    assert metrics["ndcg@10"] == pytest.approx(ndcg, abs=5e-5)


def test_bm25_matches_bm25s_on_cranfield(tmp_path) -> None:
    """The done-when check of the spine: within 0.005 nDCG@10 of bm25s with the same analyzer."""
    import numpy as np

    bm25s = pytest.importorskip("bm25s", reason="bm25s comes with the bench extra")
    from sparsearch.corpus import iter_corpus
    from sparsearch.encoders.analyzers import WordAnalyzer

    data = bundled_collection("cranfield")
    topics = load_beir_topics(data)
    analyzer = WordAnalyzer()
    documents = list(iter_corpus(data))
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index([analyzer.tokenize(d.full_text) for d in documents], show_progress=False)
    run = {}
    for query_id, text in topics.queries.items():
        tokens = [t for t in analyzer.tokenize(text) if t in retriever.vocab_dict]
        scores = retriever.get_scores(tokens) if tokens else np.zeros(len(documents))
        top = np.argsort(-scores, kind="stable")[:1000]
        run[query_id] = {documents[i].doc_id: float(scores[i]) for i in top if scores[i] > 0}
    reference = aggregate_metrics(topics.qrels, run)["ndcg@10"]
    ours = evaluate_model(data, "bm25", tmp_path)["ndcg@10"]
    assert abs(ours - reference) < 0.005
