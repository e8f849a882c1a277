"""``POST /v1/search`` and ``POST /v1/search/batch``."""

from __future__ import annotations

from fastapi import APIRouter

from sparsearch.api import service
from sparsearch.api.deps import MetricsDep, RegistryDep, SettingsDep
from sparsearch.api.routers import COMMON_ERRORS, error_responses
from sparsearch.api.schemas import (
    BatchSearchRequest,
    BatchSearchResponse,
    QueryResult,
    SearchRequest,
    SearchResponse,
)

router = APIRouter(prefix="/v1/search", tags=["search"], responses=error_responses(*COMMON_ERRORS, 404, 501, 503))


@router.post("", response_model_exclude_none=True, summary="Search one query")
def search(body: SearchRequest, registry: RegistryDep, settings: SettingsDep, metrics: MetricsDep) -> SearchResponse:
    """Encode the query with the index's encoder and return the top ``top_k`` documents.

    With ``explain``, each hit lists the query tokens it matched with their contribution (query
    weight x document weight; they add up to the score) and where they occur in title and snippet.
    """
    handle = registry.get(body.index)
    outcome = service.search(
        handle,
        [body.query],
        top_k=body.top_k,
        explain=body.explain,
        snippet_chars=settings.snippet_chars,
        metrics=metrics,
    )
    return SearchResponse(hits=outcome.hits[0], took_ms=outcome.took_ms, model=outcome.model, index=handle.name)


@router.post("/batch", response_model_exclude_none=True, summary="Search several queries at once")
def search_batch(
    body: BatchSearchRequest, registry: RegistryDep, settings: SettingsDep, metrics: MetricsDep
) -> BatchSearchResponse:
    """Answer up to 100 queries against one index; results come back in request order."""
    handle = registry.get(body.index)
    outcome = service.search(
        handle,
        body.queries,
        top_k=body.top_k,
        explain=body.explain,
        snippet_chars=settings.snippet_chars,
        metrics=metrics,
    )
    results = [QueryResult(query=query, hits=hits) for query, hits in zip(body.queries, outcome.hits, strict=True)]
    return BatchSearchResponse(results=results, took_ms=outcome.took_ms, model=outcome.model, index=handle.name)
