"""Retrieval metrics through pytrec_eval (no hand-written metric maths).

A run is ``query_id -> {doc_id: score}``. Every metric is averaged over **all judged queries**:
a query that retrieved nothing counts as 0.
"""

from __future__ import annotations

from collections.abc import Mapping

from sparsearch.errors import require

Run = dict[str, dict[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

# Our metric name -> (pytrec_eval measure, key in its output, rank cut-off applied to the run first).
MEASURES: dict[str, tuple[str, str, int | None]] = {
    "ndcg@10": ("ndcg_cut.10", "ndcg_cut_10", None),
    "recall@100": ("recall.100", "recall_100", None),
    "recall@1000": ("recall.1000", "recall_1000", None),
    "mrr@10": ("recip_rank", "recip_rank", 10),
    "map": ("map", "map", None),
}


def truncate_run(run: Run, depth: int) -> Run:
    """Keep the ``depth`` best documents per query (score descending, then doc_id ascending)."""
    return {q: dict(sorted(docs.items(), key=lambda item: (-item[1], item[0]))[:depth]) for q, docs in run.items()}


def per_query_metrics(qrels: Qrels, run: Run) -> dict[str, dict[str, float]]:
    """``metric -> {query_id: value}`` for every judged query (0.0 where the run has no results)."""
    pytrec_eval = require("pytrec_eval", "eval")
    judged = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    results: dict[str, dict[str, float]] = {name: dict.fromkeys(judged, 0.0) for name in MEASURES}
    by_depth: dict[int | None, list[str]] = {}
    for name, (_, _, depth) in MEASURES.items():
        by_depth.setdefault(depth, []).append(name)
    for depth, names in by_depth.items():
        depth_run = truncate_run(run, depth) if depth else run
        depth_run = {q: docs for q, docs in depth_run.items() if q in judged and docs}
        evaluator = pytrec_eval.RelevanceEvaluator(judged, {MEASURES[n][0] for n in names})
        for query_id, values in evaluator.evaluate(depth_run).items():
            for name in names:
                results[name][query_id] = float(values[MEASURES[name][1]])
    return results


def aggregate_metrics(qrels: Qrels, run: Run) -> dict[str, float]:
    """Mean of each metric over all judged queries."""
    per_query = per_query_metrics(qrels, run)
    return {name: (sum(values.values()) / len(values) if values else 0.0) for name, values in per_query.items()}
