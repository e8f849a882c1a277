"""Operations: ``/health`` (liveness), ``/ready`` (readiness) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sparsearch.api.deps import MetricsDep, RegistryDep
from sparsearch.api.errors import ApiError
from sparsearch.api.routers import error_responses
from sparsearch.api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness")
def health() -> HealthResponse:
    """Answers as long as the process serves HTTP; touches no model, index or engine. Never needs a key."""
    return HealthResponse()


@router.get("/ready", summary="Readiness", responses=error_responses(401, 503))
def ready(registry: RegistryDep) -> ReadyResponse:
    """200 when every index's model is loaded, the search kernels are compiled and a first query has run
    (see :meth:`~sparsearch.api.registry.IndexRegistry.warm_up`), and every engine answers; 503
    ``warming_up`` while starting, ``not_ready`` naming the failing indexes."""
    if not registry.warm:
        raise ApiError(
            503,
            "warming_up",
            "the service is warming up (compiling or loading its search kernels); retry in a moment",
            headers={"Retry-After": "1"},
        )
    report: dict[str, dict[str, object]] = {}
    failures: list[dict[str, object]] = []
    for name, handle in registry.handles.items():
        try:
            report[name] = {"model": handle.encoder.fingerprint.name, "engine": handle.health()}
        except ApiError as error:
            failures.append({"loc": ["indexes", name], "message": error.message, "type": error.code})
    if failures:
        names = ", ".join(str(failure["loc"][1]) for failure in failures)  # type: ignore[index]
        raise ApiError(503, "not_ready", f"not ready: index(es) {names} unavailable", details=failures)
    return ReadyResponse(indexes=report)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format."},
        **error_responses(401),
    },
)
def metrics(metrics: MetricsDep, request: Request) -> Response:
    """Request counts and latency histograms per route, search stage timings, engine outages."""
    content, content_type = metrics.render()
    return Response(content=content, media_type=content_type)
