"""``/v1/indexes``: list and describe the served indexes, add, replace and delete documents."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path

from sparsearch.api import service
from sparsearch.api.deps import RegistryDep
from sparsearch.api.errors import ApiError
from sparsearch.api.registry import IndexInfo
from sparsearch.api.routers import COMMON_ERRORS, error_responses
from sparsearch.api.schemas import (
    MAX_DOC_ID_CHARS,
    MAX_INDEX_NAME_CHARS,
    DeleteResponse,
    IndexDetail,
    IndexList,
    IndexSummary,
    MergeResponse,
    UpsertRequest,
    UpsertResponse,
)
from sparsearch.types import Document

router = APIRouter(prefix="/v1/indexes", tags=["indexes"], responses=error_responses(*COMMON_ERRORS, 503))

IndexPath = Annotated[str, Path(max_length=MAX_INDEX_NAME_CHARS, description="Index name (see GET /v1/indexes).")]


def _summary(info: IndexInfo, default: str) -> IndexSummary:
    return IndexSummary(
        name=info.name, backend=info.backend, model=info.model, documents=info.documents, default=info.name == default
    )


@router.get("", summary="List the served indexes")
def list_indexes(registry: RegistryDep) -> IndexList:
    """Every index this service answers for, the default one first."""
    return IndexList(indexes=[_summary(handle.info(), registry.default) for handle in registry.handles.values()])


@router.get("/{name}", summary="Describe one index", responses=error_responses(404))
def get_index(name: IndexPath, registry: RegistryDep) -> IndexDetail:
    """Documents, model, encoder fingerprint and build information of one index."""
    info = registry.get(name).info()
    return IndexDetail(**_summary(info, registry.default).model_dump(), encoder=info.encoder, build=info.build)


@router.post("/{name}/documents", summary="Add or replace documents", responses=error_responses(404, 409))
def upsert_documents(name: IndexPath, body: UpsertRequest, registry: RegistryDep) -> UpsertResponse:
    """Encode up to 100 documents with the index's encoder and add them; an existing id is replaced.

    The embedded engine writes them as a small new segment (cost proportional to the batch, not the
    index) and acknowledges once they are on disk; every search that starts after the response, in
    any worker, finds them. Build large collections with ``sparsearch index``.
    """
    started = time.perf_counter()
    handle = registry.get(name)
    latest = {d.id: d for d in body.documents}  # a repeated id: the last one wins
    documents = [Document(doc_id=d.id, title=d.title, text=d.text) for d in latest.values()]
    count = service.upsert(handle, documents)
    took_ms = (time.perf_counter() - started) * 1000.0
    return UpsertResponse(index=handle.name, upserted=len(documents), documents=count, took_ms=took_ms)


@router.delete("/{name}/documents/{doc_id:path}", summary="Delete a document", responses=error_responses(404))
def delete_document(
    name: IndexPath,
    doc_id: Annotated[str, Path(min_length=1, max_length=MAX_DOC_ID_CHARS, description="The document's id.")],
    registry: RegistryDep,
) -> DeleteResponse:
    """Remove one document; 404 when the index has no document with that id."""
    handle = registry.get(name)
    count = service.delete(handle, doc_id)
    return DeleteResponse(index=handle.name, id=doc_id, deleted=True, documents=count)


@router.post("/{name}/merge", summary="Merge an embedded index's segments", responses=error_responses(404, 501))
def merge_index(name: IndexPath, registry: RegistryDep) -> MergeResponse:
    """Merge every segment of an embedded index into one, dropping deleted documents and the terms only
    they used (a force merge; background merges already keep the segment count small). Searches and
    updates continue while it runs; the merged segment is searchable when the call returns."""
    started = time.perf_counter()
    handle = registry.get(name)
    with handle.writing() as backend:
        merge = getattr(backend, "merge", None)
        if merge is None:
            raise ApiError(
                501,
                "not_supported",
                f"index {handle.name!r} is on {handle.kind}, which merges its own segments; use its force-merge API",
            )
        with handle.engine_errors("merge"):
            merged = bool(merge())
            stats = backend.stats()  # type: ignore[attr-defined] - EmbeddedIndex
    return MergeResponse(
        index=handle.name,
        merged=merged,
        segments=len(stats["segments"]),
        documents=int(stats["n_docs"]),
        terms=int(stats["n_terms"]),
        bytes=int(stats["bytes"]),
        took_ms=(time.perf_counter() - started) * 1000.0,
    )
