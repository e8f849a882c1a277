"""One JSON error body for every error the service returns, and the handlers that produce it.

Every 4xx/5xx answer has the shape of :class:`sparsearch.api.schemas.ErrorResponse`::

    {"error": {"code": "invalid_request", "message": "body.top_k: ...", "request_id": "...", "details": [...]}}

``message`` says what to fix; ``details`` lists each invalid field for validation errors. Stack
traces never reach clients: unexpected exceptions are logged with the request id and answered with a
generic 500 that quotes it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sparsearch.errors import (
    EncoderMismatchError,
    IndexFormatError,
    IndexNotFoundError,
    SparsearchError,
    UsageError,
)

log = logging.getLogger(__name__)

ERROR_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    502: "bad_gateway",
    503: "unavailable",
}

EXAMPLE_BODY = (
    'send a JSON object with Content-Type: application/json, such as {"query": "hypersonic heat transfer", "top_k": 10}'
)
# What FastAPI says when a body cannot be decoded at all; the exception behind it is its __cause__.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_SHOWN_METHOD_CHARS = 20
"""A made-up method is quoted in a 405's message up to this many characters."""


def _body_problem(cause: BaseException | None) -> str:
    """Why the JSON parser gave up on a body, for a person (the parser's own words mislead)."""
    if isinstance(cause, RecursionError):
        return (
            f"it nests arrays or objects deeper than the JSON parser allows (about {sys.getrecursionlimit()} "
            "levels); this API's bodies nest at most 3 levels"
        )
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return (
            f"it holds a number with more than {sys.get_int_max_str_digits()} digits, the most the JSON parser "
            "accepts; top_k is at most 1000"
        )
    if isinstance(cause, UnicodeDecodeError):
        return f"it is not UTF-8 (invalid byte at byte {cause.start}); send it encoded as UTF-8"
    return "it cannot be decoded as UTF-8 JSON"


class ApiError(Exception):
    """An error the service answers with ``status`` and the one error body.

    Args:
        status: HTTP status code.
        code: short machine-readable reason (``unknown_index``, ``engine_unavailable``...).
        message: what went wrong and how to fix it, for a person.
        details: per-field problems (``{"loc": [...], "message": ..., "type": ...}``).
        headers: extra response headers (``Retry-After``...).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Sequence[Mapping[str, object]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


class IndexUnavailableError(ApiError):
    """An index cannot be served right now: its engine is unreachable, or its directory or alias does not
    exist (yet). 503; clients should retry after a few seconds.

    Not :class:`sparsearch.errors.EngineUnavailableError` (the library's "engine unreachable"), which
    the registry turns into this one.
    """

    def __init__(self, index: str, reason: str) -> None:
        self.index = index
        super().__init__(
            503,
            "engine_unavailable",
            f"index {index!r} is unavailable: {reason}; retry shortly (the service reconnects by itself)",
            headers={"Retry-After": "5"},
        )


def request_id_of(request: Request) -> str:
    """The id the request middleware gave this request (``"-"`` outside the middleware)."""
    return str(getattr(request.state, "request_id", "-"))


def error_body(
    request_id: str, code: str, message: str, details: Sequence[Mapping[str, object]] = ()
) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "request_id": request_id, "details": list(details)}}


def error_response(
    request_id: str,
    status: int,
    code: str,
    message: str,
    *,
    details: Sequence[Mapping[str, object]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one error body as a response (the middleware adds the ``X-Request-ID`` header)."""
    return JSONResponse(error_body(request_id, code, message, details), status_code=status, headers=headers)


_UNCLEAR_MESSAGES = {
    # pydantic's words for a string holding a lone surrogate ("\ud800" in JSON)
    "string_unicode": "contains an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff escape); send valid Unicode text",
}
"""Clearer messages for pydantic error types whose own message does not say what to fix."""


def _loc(loc: Sequence[object]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_response(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = error.errors()
    request_id = request_id_of(request)
    for problem in problems:
        if problem.get("type") == "json_invalid":
            reason = (problem.get("ctx") or {}).get("error", "invalid JSON")
            return error_response(
                request_id,
                400,
                "malformed_json",
                f"the request body is not valid JSON ({reason}); {EXAMPLE_BODY}",
            )
    details = [
        {
            "loc": [str(part) for part in problem.get("loc", ())],
            "message": _UNCLEAR_MESSAGES.get(
                problem["type"], str(problem.get("msg", "")).removeprefix("Value error, ")
            ),
            "type": problem["type"],
        }
        for problem in problems
    ]
    if len(problems) == 1 and tuple(problems[0].get("loc", ())) == ("body",):
        message = f"the request body is missing or not a JSON object ({details[0]['message']}); {EXAMPLE_BODY}"
    else:
        message = "; ".join(f"{_loc(d['loc'])}: {d['message']}" for d in details[:5])
        if len(details) > 5:
            message += f"; and {len(details) - 5} more problem(s) listed in details"
    return error_response(request_id, 422, "invalid_request", message, details=details)


def _http_exception_response(request: Request, error: StarletteHTTPException) -> JSONResponse:
    status = error.status_code
    code = ERROR_CODES.get(status, "error")
    if status == 400 and error.detail == _FASTAPI_BODY_ERROR:
        code, message = "malformed_json", f"the request body is not valid JSON: {_body_problem(error.__cause__)}"
        message += f"; {EXAMPLE_BODY}"
    elif status == 404:
        message = f"no route {request.url.path}: see /docs for the endpoints"
    elif status == 405:
        method = request.method
        shown = method if len(method) <= _SHOWN_METHOD_CHARS else method[:_SHOWN_METHOD_CHARS] + "..."
        message = f"{shown} is not allowed on {request.url.path}: see /docs for the methods it accepts"
    elif isinstance(error.detail, str) and error.detail:
        message = error.detail
    else:
        message = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
    return error_response(request_id_of(request), status, code, message, headers=error.headers)


def _sparsearch_error_status(error: SparsearchError) -> tuple[int, str]:
    from sparsearch.errors import EngineError, EngineUnavailableError

    if isinstance(error, EngineUnavailableError):
        return 503, "engine_unavailable"
    if isinstance(error, EngineError):
        return 502, "engine_error"
    if isinstance(error, UsageError):
        return 400, "bad_request"
    if isinstance(error, EncoderMismatchError):
        return 409, "encoder_mismatch"
    if isinstance(error, IndexNotFoundError | IndexFormatError):
        return 503, "index_unavailable"
    return 500, "internal_error"


def install_error_handlers(app: FastAPI) -> None:
    """Route every error type the app can raise to the one error body."""

    async def on_api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        if isinstance(error, IndexUnavailableError):
            request.app.state.metrics.unavailable.labels(error.index).inc()
        return error_response(
            request_id_of(request),
            error.status,
            error.code,
            error.message,
            details=error.details,
            headers=error.headers,
        )

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _validation_response(request, error)

    async def on_http_exception(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        return _http_exception_response(request, error)

    async def on_sparsearch_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, SparsearchError)
        status, code = _sparsearch_error_status(error)
        request_id = request_id_of(request)
        if status >= 500:
            log.error("request %s failed: %s", request_id, error)
        return error_response(request_id, status, code, str(error))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(SparsearchError, on_sparsearch_error)
