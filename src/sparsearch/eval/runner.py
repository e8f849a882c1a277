"""An evaluation run: encode each judged query, search a backend, score the run, time both steps."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from sparsearch.backends.base import SearchBackend
from sparsearch.eval.beir_data import BeirTopics
from sparsearch.eval.metrics import Measure, Run, aggregate_metrics, drop_identical_ids, truncate_run
from sparsearch.types import Encoder


@dataclass
class EvalReport:
    """The JSON written by ``sparsearch eval --output``.

    ``latency_ms`` holds warm per-query milliseconds (one thread) over every judged query:
    ``query_encode_p50``, ``search_p50``, ``search_p95``, ``search_p99``, ``search_mean``.
    ``first_query_ms`` is the cold first query (encode + search) of the process, run once before them
    and never counted in them: it pays one-time costs (compiling or loading the search kernel, an
    encoder's lazy loading, an engine connection). ``index`` holds ``postings``, ``avg_terms_per_doc``
    and ``bytes`` of the searched index. ``mode`` is ``sparse`` or ``hybrid`` (:mod:`sparsearch.hybrid`:
    its search times include embedding the query with the dense model).
    """

    dataset: str
    model: str
    backend: str
    docs: int
    queries: int
    depth: int
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    index: dict[str, float]
    postings_touched_per_query: float | None = None
    first_query_ms: float | None = None
    ignore_identical_ids: bool = False
    mode: str = "sparse"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run_queries(
    backend: SearchBackend,
    encoder: Encoder,
    queries: dict[str, str],
    depth: int,
    on_progress: Callable[[int], None] | None = None,
    postings_touched: list[int] | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[Run, list[float], list[float]]:
    """Search every query; returns the run and per-query encode and search times in milliseconds.

    With a ``postings_touched`` list and a backend that counts them, each query's cost (postings
    of its terms) is appended to it, outside the timed part. ``clock`` (seconds) is for tests.
    """
    count_postings = getattr(backend, "postings_touched", None) if postings_touched is not None else None
    run: Run = {}
    encode_ms: list[float] = []
    search_ms: list[float] = []
    for query_id, text in queries.items():
        t0 = clock()
        encoded = encoder.encode_query(text)
        t1 = clock()
        hits = backend.search(encoded, depth) if not encoded.is_empty else []
        t2 = clock()
        encode_ms.append((t1 - t0) * 1e3)
        search_ms.append((t2 - t1) * 1e3)
        run[query_id] = {hit.doc_id: hit.score for hit in hits}
        if count_postings is not None:
            postings_touched.append(count_postings(encoded))  # type: ignore[union-attr]
        if on_progress is not None:
            on_progress(1)
    return run, encode_ms, search_ms


def first_query_ms(
    backend: SearchBackend,
    encoder: Encoder,
    queries: dict[str, str],
    depth: int,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> float | None:
    """Encode and search the first query once, before the timed run, so the process's one-time costs
    (the search kernel's compilation or cache load, lazy model loading) land here rather than in the
    latency percentiles. Queries that encode to no token are skipped (they search nothing).

    Returns:
        Milliseconds from the first encode to the end of the search, ``None`` without queries.
    """
    if not queries:
        return None
    started = clock()
    for text in queries.values():
        encoded = encoder.encode_query(text)
        if not encoded.is_empty:
            backend.search(encoded, depth)
            break
    return (clock() - started) * 1e3


def evaluate(
    backend: SearchBackend,
    encoder: Encoder,
    topics: BeirTopics,
    *,
    dataset: str,
    model: str,
    index_stats: dict[str, float],
    depth: int = 1000,
    metrics: Sequence[str | Measure] | None = None,
    ignore_identical_ids: bool = False,
    on_progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    check: Callable[[Run], None] | None = None,
    mode: str = "sparse",
) -> tuple[EvalReport, Run]:
    """Run every judged query through ``backend`` and score the run against the qrels.

    A first query runs once before the timed run (:func:`first_query_ms`), so the latency figures
    are warm; its own time is reported apart as ``first_query_ms``. ``clock`` (seconds) is for tests.

    Args:
        metrics: metric names (:func:`~sparsearch.eval.metrics.parse_metric`); default
            :data:`~sparsearch.eval.metrics.DEFAULT_METRICS`.
        ignore_identical_ids: drop hits whose doc id is the query id (BEIR's rule,
            :func:`~sparsearch.eval.metrics.drop_identical_ids`); each query then searches one hit
            deeper (at most 10,000), so ``depth`` hits remain, as BEIR does.
        check: called with the run before it is scored (e.g. to refuse a run that shares no id with
            the qrels).
        mode: recorded in the report (``backend`` is then a :class:`~sparsearch.hybrid.HybridBackend`).

    Returns:
        The report and the scored run (without identical ids when they are ignored).
    """
    # one hit deeper so that `depth` remain after the drop, as BEIR does; never past 10,000 (the
    # engines' default index.max_result_window)
    search_depth = min(depth + 1, 10_000) if ignore_identical_ids else depth
    first_ms = first_query_ms(backend, encoder, topics.queries, search_depth, clock=clock)
    costs: list[int] = []
    run, encode_ms, search_ms = run_queries(
        backend, encoder, topics.queries, search_depth, on_progress, costs, clock=clock
    )
    if ignore_identical_ids:
        run = truncate_run(drop_identical_ids(run), depth)
    if check is not None:
        check(run)
    touched = float(np.mean(costs)) if costs else None

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else 0.0

    report = EvalReport(
        dataset=dataset,
        model=model,
        backend=backend.name,
        docs=backend.count(),
        queries=len(topics.queries),
        depth=depth,
        metrics=aggregate_metrics(topics.qrels, run, metrics),
        latency_ms={
            "query_encode_p50": pct(encode_ms, 50),
            "search_p50": pct(search_ms, 50),
            "search_p95": pct(search_ms, 95),
            "search_p99": pct(search_ms, 99),
            "search_mean": float(np.mean(search_ms)) if search_ms else 0.0,
        },
        index=index_stats,
        postings_touched_per_query=touched,
        first_query_ms=first_ms,
        ignore_identical_ids=ignore_identical_ids,
        mode=mode,
    )
    return report, run
