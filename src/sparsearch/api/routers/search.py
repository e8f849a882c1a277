"""``POST /v1/search`` and ``POST /v1/search/batch``.

Each request's cost (``queries x top_k`` hits) is checked against the settings before any work
(:func:`~sparsearch.api.limits.check_search_cost`). The routes are ``async`` only to watch the
connection: the search runs in a worker thread with a :class:`~sparsearch.api.limits.Deadline`, which
times it out and stops it when the client hangs up, and the same thread writes the JSON answer (a
20,000-hit answer is megabytes: serializing it on the event loop would stall every other request).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import BaseModel

from sparsearch.api import service
from sparsearch.api.deps import MetricsDep, RegistryDep, SettingsDep
from sparsearch.api.limits import Deadline, check_search_cost, run_until_disconnected
from sparsearch.api.memory import trim_memory
from sparsearch.api.metrics import Metrics
from sparsearch.api.registry import IndexHandle
from sparsearch.api.routers import COMMON_ERRORS, error_responses
from sparsearch.api.schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    QueryResult,
    SearchRequest,
    SearchResponse,
)
from sparsearch.api.settings import Settings

router = APIRouter(
    prefix="/v1/search", tags=["search"], responses=error_responses(*COMMON_ERRORS, 404, 409, 501, 503, 504)
)


async def _search(
    request: Request,
    background: BackgroundTasks,
    handle: IndexHandle,
    queries: Sequence[str],
    answer: Callable[[service.SearchOutcome], BaseModel],
    *,
    top_k: int,
    explain: bool,
    settings: Settings,
    metrics: Metrics,
    mode: str = "sparse",
) -> Response:
    """Check the cost, then in a worker thread and under the settings' deadline, search and write
    ``answer(outcome)`` as JSON; after a large request, hand freed memory back to the system (once the
    response is sent)."""
    cost = check_search_cost(len(queries), top_k, explain, settings)
    deadline = Deadline(settings.search_timeout_seconds)

    def work() -> bytes:
        outcome = service.search(
            handle,
            queries,
            top_k=top_k,
            explain=explain,
            snippet_chars=settings.snippet_chars,
            metrics=metrics,
            deadline=deadline,
            mode=mode,
        )
        return answer(outcome).model_dump_json(exclude_none=True).encode("utf-8")

    content = await run_until_disconnected(request.receive, work, deadline)
    if 0 < settings.trim_memory_after_hits <= cost:
        background.add_task(trim_memory)  # a sync task: runs in a worker thread after the response is sent
    return Response(content=content, media_type="application/json")


@router.post("", response_model=SearchResponse, summary="Search one query")
async def search(
    body: SearchRequest,
    request: Request,
    background: BackgroundTasks,
    registry: RegistryDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Response:
    """Encode the query with the index's encoder and return the top ``top_k`` documents.

    With ``explain``, each hit lists the query tokens it matched with their contribution (query
    weight x document weight; they add up to the score) and where they occur in title and snippet.
    ``top_k`` with ``explain`` is limited by ``SPARSEARCH_MAX_EXPLAINED_HITS_PER_REQUEST``.

    ``"mode": "hybrid"`` re-ranks the top 100 sparse candidates by fusing in the dense model's cosine
    (the query is embedded at request time): the index must be built with ``--dense`` and the server
    needs the ``neural`` extra, else 409 ``hybrid_unavailable``.
    """
    handle = registry.get(body.index)

    def answer(outcome: service.SearchOutcome) -> SearchResponse:
        return SearchResponse(hits=outcome.hits[0], took_ms=outcome.took_ms, model=outcome.model, index=handle.name)

    return await _search(
        request,
        background,
        handle,
        [body.query],
        answer,
        top_k=body.top_k,
        explain=body.explain,
        settings=settings,
        metrics=metrics,
        mode=body.mode,
    )


@router.post("/batch", response_model=BatchSearchResponse, summary="Search several queries at once")
async def search_batch(
    body: BatchSearchRequest,
    request: Request,
    background: BackgroundTasks,
    registry: RegistryDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Response:
    """Answer up to 100 queries against one index; results come back in request order.

    A batch asks for ``len(queries) x top_k`` hits: at most ``SPARSEARCH_MAX_HITS_PER_REQUEST``
    (20,000 by default), or ``SPARSEARCH_MAX_EXPLAINED_HITS_PER_REQUEST`` (2,000) with ``explain``.
    """
    handle = registry.get(body.index)

    def answer(outcome: service.SearchOutcome) -> BatchSearchResponse:
        results = [QueryResult(query=q, hits=hits) for q, hits in zip(body.queries, outcome.hits, strict=True)]
        return BatchSearchResponse(results=results, took_ms=outcome.took_ms, model=outcome.model, index=handle.name)

    return await _search(
        request,
        background,
        handle,
        body.queries,
        answer,
        top_k=body.top_k,
        explain=body.explain,
        settings=settings,
        metrics=metrics,
        mode=body.mode,
    )
