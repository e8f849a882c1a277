"""Retrieval metrics through pytrec_eval (no hand-written metric maths).

A run is ``query_id -> {doc_id: score}``. Every metric is averaged over **all judged queries**:
a query that retrieved nothing counts as 0.

Metrics are named the way ir_measures (https://ir-measur.es) or trec_eval name them:
``nDCG@10``, ``R@100``, ``RR@10``, ``AP``, ``P@10`` or ``ndcg_cut.10``, ``recall.100``, ``map``,
``recip_rank``, ``P.10``. Each name is translated to one trec_eval measure, which pytrec_eval
computes; ``RR@k`` (which trec_eval lacks) is ``recip_rank`` over the run cut at rank ``k``, as
ir_measures does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sparsearch.errors import UsageError, require

Run = dict[str, dict[str, float]]
Qrels = Mapping[str, Mapping[str, int]]

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "recall@1000", "mrr@10", "map")
"""What ``sparsearch eval`` reports without ``--metrics`` (the report's keys are these names)."""

METRIC_EXAMPLES = (
    "ir_measures names such as nDCG@10, R@100, RR@10, AP, P@10, Success@10, Rprec, Bpref, nDCG, AP@100, "
    "or trec_eval names such as ndcg_cut.10, recall.100, recip_rank, map, P.10"
)

# ir_measures family (lower case) -> (trec_eval measure without cut-off, with cut-off "{k}"; None: not allowed).
# RR@k has no trec_eval measure: recip_rank over the run cut at k.
_FAMILIES: dict[str, tuple[str | None, str | None]] = {
    "ndcg": ("ndcg", "ndcg_cut.{k}"),
    "p": (None, "P.{k}"),
    "r": (None, "recall.{k}"),
    "recall": (None, "recall.{k}"),
    "ap": ("map", "map_cut.{k}"),
    "map": ("map", "map_cut.{k}"),
    "rr": ("recip_rank", "recip_rank"),
    "mrr": ("recip_rank", "recip_rank"),
    "success": (None, "success.{k}"),
    "rprec": ("Rprec", None),
    "bpref": ("bpref", None),
    "infap": ("infAP", None),
    "numret": ("num_ret", None),
    "numrel": ("num_rel", None),
}


@dataclass(frozen=True)
class Measure:
    """One metric as pytrec_eval computes it.

    Attributes:
        name: the name asked for (the key of every result).
        trec_measure: the trec_eval measure handed to pytrec_eval (``ndcg_cut.10``).
        key: the key of its value in pytrec_eval's output (``ndcg_cut_10``).
        depth: rank cut-off applied to the run first (``RR@10``), ``None`` for none.
    """

    name: str
    trec_measure: str
    key: str
    depth: int | None = None


def _unknown(name: str, why: str = "unknown metric") -> UsageError:
    return UsageError(f"{why} {name!r}: use {METRIC_EXAMPLES}")


def _cutoff(name: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise _unknown(name, f"cut-off {text!r} is not a positive integer in metric")
    return int(text)


def _probe_key(name: str, trec_measure: str) -> str:
    """The one key pytrec_eval answers ``trec_measure`` with (refuses measures with several values)."""
    pytrec_eval = require("pytrec_eval", "eval")
    try:
        evaluator = pytrec_eval.RelevanceEvaluator({"q": {"d": 1}}, {trec_measure})
    except (ValueError, TypeError):
        raise _unknown(name) from None
    keys = list(evaluator.evaluate({"q": {"d": 1.0}})["q"])
    if len(keys) != 1:
        keys.sort()
        example = f"{trec_measure}.{keys[-1][len(trec_measure) + 1 :]}"
        raise UsageError(
            f"metric {name!r} gives {len(keys)} values ({', '.join(keys[:3])}, ...): name one, e.g. {example} "
            f"(or use {METRIC_EXAMPLES})"
        )
    return keys[0]


def parse_metric(name: str) -> Measure:
    """Translate an ir_measures or trec_eval metric name into the pytrec_eval measure that computes it.

    Names are matched without regard to case (``ndcg@10`` is ``nDCG@10``); ``ndcg_cut_10`` (the
    spelling of trec_eval's output) is accepted for ``ndcg_cut.10``.

    Examples:
        >>> parse_metric("nDCG@10")
        Measure(name='nDCG@10', trec_measure='ndcg_cut.10', key='ndcg_cut_10', depth=None)
        >>> parse_metric("RR@10")
        Measure(name='RR@10', trec_measure='recip_rank', key='recip_rank', depth=10)
        >>> parse_metric("recall.100").key
        'recall_100'

    Raises:
        UsageError: an unknown name, a missing or invalid cut-off, or parameters (``P(rel=2)@10``)
            this translation does not support; the message lists valid names.
    """
    text = name.strip()
    if not text:
        raise _unknown(name, "empty metric name")
    if "(" in text:
        raise _unknown(name, "measure parameters such as (rel=2) are not supported in metric")
    if "@" in text:  # ir_measures: Family@k
        family, _, k_text = text.partition("@")
        spec = _FAMILIES.get(family.lower())
        if spec is None or spec[1] is None:
            raise _unknown(name)
        k = _cutoff(name, k_text)
        if spec[1] == "recip_rank":
            return Measure(name, "recip_rank", "recip_rank", depth=k)
        trec_measure = spec[1].format(k=k)
        return Measure(name, trec_measure, _probe_key(name, trec_measure))
    pytrec_eval = require("pytrec_eval", "eval")
    by_lower = {measure.lower(): measure for measure in pytrec_eval.supported_measures}
    base, dot, param = text.partition(".")
    if not dot and (match := re.fullmatch(r"(.+)_(\d+)", text)) and match[1].lower() in by_lower:
        base, dot, param = match[1], ".", match[2]  # ndcg_cut_10, as trec_eval prints it
    if base.lower() in by_lower:  # a trec_eval measure
        trec_measure = by_lower[base.lower()] + (f".{param}" if dot else "")
        if base.lower() in ("p", "recall", "ndcg_cut", "map_cut", "success") and not dot:
            raise UsageError(
                f"metric {name!r} needs a cut-off, e.g. {by_lower[base.lower()]}.10 (or use {METRIC_EXAMPLES})"
            )
        return Measure(name, trec_measure, _probe_key(name, trec_measure))
    spec = _FAMILIES.get(text.lower())  # an ir_measures family without cut-off: AP, nDCG, RR, Rprec
    if spec is None:
        raise _unknown(name)
    if spec[0] is None:
        raise UsageError(f"metric {name!r} needs a cut-off, e.g. {name}@10 (or use {METRIC_EXAMPLES})")
    return Measure(name, spec[0], _probe_key(name, spec[0]))


def parse_metrics(names: Iterable[str]) -> list[Measure]:
    """:func:`parse_metric` for each name, in order, without repeats.

    Raises:
        UsageError: an unknown name (see :func:`parse_metric`) or no name at all.
    """
    measures: dict[str, Measure] = {}
    for name in names:
        measures.setdefault(name.strip(), parse_metric(name))
    if not measures:
        raise UsageError(f"no metric given: use {METRIC_EXAMPLES}")
    return list(measures.values())


def truncate_run(run: Run, depth: int) -> Run:
    """Keep the ``depth`` best documents per query (score descending, then doc_id ascending)."""
    return {q: dict(sorted(docs.items(), key=lambda item: (-item[1], item[0]))[:depth]) for q, docs in run.items()}


def drop_identical_ids(run: Run) -> Run:
    """The run without any hit whose doc id equals its query id.

    BEIR's ``ignore_identical_ids`` rule (on by default in ``EvaluateRetrieval.evaluate``): in
    ArguAna and Quora every query is also a document of the corpus, and finding itself is no answer.
    """
    return {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}


def _measures(metrics: Sequence[str | Measure] | None) -> list[Measure]:
    if metrics is None:
        metrics = DEFAULT_METRICS
    return [m if isinstance(m, Measure) else parse_metric(m) for m in metrics]


def per_query_metrics(
    qrels: Qrels, run: Run, metrics: Sequence[str | Measure] | None = None
) -> dict[str, dict[str, float]]:
    """``metric -> {query_id: value}`` for every judged query (0.0 where the run has no results).

    Args:
        qrels: ``query_id -> {doc_id: grade}``; its queries are the ones scored, in its order.
        run: ``query_id -> {doc_id: score}``; queries the qrels lack are ignored.
        metrics: metric names (see :func:`parse_metric`) or parsed measures; default
            :data:`DEFAULT_METRICS`.
    """
    pytrec_eval = require("pytrec_eval", "eval")
    measures = _measures(metrics)
    judged = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    results: dict[str, dict[str, float]] = {m.name: dict.fromkeys(judged, 0.0) for m in measures}
    by_depth: dict[int | None, list[Measure]] = {}
    for measure in measures:
        by_depth.setdefault(measure.depth, []).append(measure)
    for depth, group in by_depth.items():
        depth_run = truncate_run(run, depth) if depth else run
        depth_run = {q: docs for q, docs in depth_run.items() if q in judged and docs}
        evaluator = pytrec_eval.RelevanceEvaluator(judged, {m.trec_measure for m in group})
        for query_id, values in evaluator.evaluate(depth_run).items():
            for measure in group:
                results[measure.name][query_id] = float(values[measure.key])
    return results


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric of :func:`per_query_metrics` over its queries (0.0 without queries)."""
    return {name: (sum(values.values()) / len(values) if values else 0.0) for name, values in per_query.items()}


def aggregate_metrics(qrels: Qrels, run: Run, metrics: Sequence[str | Measure] | None = None) -> dict[str, float]:
    """Mean of each metric over all judged queries (see :func:`per_query_metrics`)."""
    return mean_metrics(per_query_metrics(qrels, run, metrics))


def write_per_query(per_query: Mapping[str, Mapping[str, float]], path: str | Path) -> None:
    """Write one ``(query_id, metric, value)`` row per judged query and metric, like ``trec_eval -q``
    (without its ``all`` rows: the means are in the report).

    A ``.jsonl`` path gets JSON lines ``{"query_id": ..., "metric": ..., "value": ...}``; any other
    path a TSV with a ``query_id<TAB>metric<TAB>value`` header. Rows go query by query (the qrels'
    order), metrics in the order asked for.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    query_ids = list(next(iter(per_query.values()), {}))
    as_json = path.suffix == ".jsonl"
    with path.open("w", encoding="utf-8") as handle:
        if not as_json:
            handle.write("query_id\tmetric\tvalue\n")
        for query_id in query_ids:
            for metric, values in per_query.items():
                value = values[query_id]
                if as_json:
                    handle.write(json.dumps({"query_id": query_id, "metric": metric, "value": value}) + "\n")
                else:
                    handle.write(f"{query_id}\t{metric}\t{value:.6f}\n")
