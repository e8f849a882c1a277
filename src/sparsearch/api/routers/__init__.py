"""The API's routers, one per area: search, indexes (documents), operations, the search page."""

from __future__ import annotations

from typing import Any

from sparsearch.api.schemas import ErrorResponse

_ERROR_DESCRIPTIONS = {
    400: "Malformed request (a body that is not valid JSON, a Host the service does not serve).",
    401: "Missing or wrong API key (only when the service has API keys).",
    404: "Unknown index, document or route.",
    409: "Conflicting update (the index changed meanwhile): send the request again. Search: hybrid_unavailable, "
    "mode hybrid on an index built without --dense or on a server without the neural extra.",
    413: "Request body larger than the service accepts.",
    415: "Request body not encoded as UTF-8 (or a charset other than utf-8 declared).",
    422: "A field is missing, of the wrong type or out of bounds, or the request asks for more hits than "
    "allowed (too_many_hits); details names each field.",
    501: "The backend cannot do this (explain on a backend without it).",
    503: "The index's engine is unreachable; retry after the Retry-After seconds.",
    504: "The search took longer than SPARSEARCH_SEARCH_TIMEOUT_SECONDS and was stopped.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the one error body for ``statuses``."""
    return {status: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[status]} for status in statuses}


COMMON_ERRORS = (400, 401, 413, 415, 422)
