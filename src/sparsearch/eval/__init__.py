"""BEIR evaluation: topic loading, metrics through pytrec_eval, TREC runs, evaluation runs."""

from sparsearch.eval.beir_data import BeirTopics, load_beir_topics
from sparsearch.eval.metrics import aggregate_metrics, per_query_metrics
from sparsearch.eval.runner import EvalReport, evaluate, run_queries
from sparsearch.eval.trec import read_trec_run, write_trec_run

__all__ = [
    "BeirTopics",
    "EvalReport",
    "aggregate_metrics",
    "evaluate",
    "load_beir_topics",
    "per_query_metrics",
    "read_trec_run",
    "run_queries",
    "write_trec_run",
]
