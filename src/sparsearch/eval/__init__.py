"""BEIR evaluation: topic loading, metrics through pytrec_eval, TREC runs, evaluation runs."""

from sparsearch.eval.beir_data import BeirTopics, load_beir_topics, load_qrels, read_topics
from sparsearch.eval.checks import RunQrelsMismatchError, check_run_against_qrels
from sparsearch.eval.metrics import (
    DEFAULT_METRICS,
    Measure,
    aggregate_metrics,
    drop_identical_ids,
    mean_metrics,
    parse_metric,
    parse_metrics,
    per_query_metrics,
    write_per_query,
)
from sparsearch.eval.runner import EvalReport, evaluate, run_queries
from sparsearch.eval.trec import TrecRunWriter, read_trec_run, write_trec_run

__all__ = [
    "DEFAULT_METRICS",
    "BeirTopics",
    "EvalReport",
    "Measure",
    "RunQrelsMismatchError",
    "TrecRunWriter",
    "aggregate_metrics",
    "check_run_against_qrels",
    "drop_identical_ids",
    "evaluate",
    "load_beir_topics",
    "load_qrels",
    "mean_metrics",
    "parse_metric",
    "parse_metrics",
    "per_query_metrics",
    "read_topics",
    "read_trec_run",
    "run_queries",
    "write_per_query",
    "write_trec_run",
]
