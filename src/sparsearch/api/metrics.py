"""Prometheus metrics of one app: request counts and latency per route, search stage timings.

Each app owns a :class:`prometheus_client.CollectorRegistry` (several apps in one process, as in the
tests, never share counters). With several uvicorn workers, ``sparsearch serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a temporary folder so ``/metrics`` adds up every worker's values
(prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

from sparsearch.errors import require

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram bucket upper bounds, in seconds."""

STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
"""HTTP methods labelled by name (RFC 9110 and PATCH); any other method is labelled ``other``."""

OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"
"""The route label of requests that matched no route (404s, and requests refused before routing)."""


def method_label(method: str) -> str:
    """``method`` when it is a standard one, else ``other``.

    Clients choose the method freely (``FOO``, 8,000 characters of it); a label per value would let
    them grow ``/metrics`` without bound (500 such requests made it 77 MB), so labels never carry it.
    """
    return method if method in STANDARD_METHODS else OTHER_METHOD


class Metrics:
    """The service's metrics.

    Attributes:
        requests: ``sparsearch_http_requests_total{method, route, status}``; ``route`` is the route
            template (``/v1/indexes/{name}``) or ``unmatched``, never the raw path, and ``method`` a
            standard method or ``other`` (:func:`method_label`), so no label carries client text.
        latency: ``sparsearch_http_request_duration_seconds{method, route}`` histogram.
        unhandled: ``sparsearch_http_unhandled_exceptions_total{type}``: answered with a 500.
        queries: ``sparsearch_search_queries_total{index}``: queries answered (a batch counts each).
        stage: ``sparsearch_search_stage_seconds{index, stage}`` with stage ``encode`` (query
            encoding), ``engine`` (retrieval) or ``documents`` (titles, snippets, explanations).
        unavailable: ``sparsearch_engine_unavailable_total{index}``: requests refused with 503.
    """

    def __init__(self) -> None:
        prometheus = require("prometheus_client", "api")
        self._prometheus = prometheus
        self.registry = prometheus.CollectorRegistry(auto_describe=True)
        self.requests = prometheus.Counter(
            "sparsearch_http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = prometheus.Histogram(
            "sparsearch_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, in seconds.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.unhandled = prometheus.Counter(
            "sparsearch_http_unhandled_exceptions_total",
            "Requests that failed with an unexpected exception (answered with a 500).",
            ["type"],
            registry=self.registry,
        )
        self.queries = prometheus.Counter(
            "sparsearch_search_queries_total",
            "Queries answered, per index (each query of a batch counts).",
            ["index"],
            registry=self.registry,
        )
        self.stage = prometheus.Histogram(
            "sparsearch_search_stage_seconds",
            "Time spent per search stage (encode, engine, documents), in seconds.",
            ["index", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.unavailable = prometheus.Counter(
            "sparsearch_engine_unavailable_total",
            "Requests refused with 503 because an index's engine was unreachable.",
            ["index"],
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """Count one answered request.

        Args:
            method: the request's method, as the client sent it (labelled by :func:`method_label`).
            route: the matched route's template (``/v1/indexes/{name}``), ``None`` when none matched.
            status: the response status code.
            seconds: time from arrival to the end of the response.
        """
        method = method_label(method)
        route = route or UNMATCHED_ROUTE
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers' values in multiprocess mode)."""
        prometheus = self._prometheus
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = prometheus.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return prometheus.generate_latest(registry), prometheus.CONTENT_TYPE_LATEST
        return prometheus.generate_latest(self.registry), prometheus.CONTENT_TYPE_LATEST
