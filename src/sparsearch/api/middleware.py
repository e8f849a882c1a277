"""The ASGI middleware every request passes first: request id, host, API key, body checks, metrics, last resort.

In order, for each HTTP request:

1. a request id: the client's ``X-Request-ID`` when it is a short token (letters, digits, ``._-``,
   at most 64), else a new one; it is on every response and in every error body;
2. the ``Host`` header, when the settings name trusted hosts: another host gets 400 (``/health``
   excepted, for probes that call the service by address);
3. the API key, when the service has keys: every path but ``/health`` and the search page's static
   shell (``/``, ``/static/...``, which hold no data) needs a known key in the configured header,
   compared in constant time (:func:`hmac.compare_digest`);
4. the body: a ``Content-Length`` above the limit is refused with 413 before anything is read, and
   a body that streams past it (chunked uploads) is cut off with 413 as soon as it does; a declared
   charset other than UTF-8 gets 415 before reading, and so does a body that turns out not to be UTF-8
   (JSON decoders would otherwise guess UTF-16 or UTF-32 from its NUL bytes and accept it);
5. any exception the app did not handle becomes a logged 500 with the one error body, never a trace.

Metrics are labelled with the route template and a standard method name, never with client text
(see :func:`sparsearch.api.metrics.method_label`).

Written as plain ASGI (not ``BaseHTTPMiddleware``) so it adds little per request and never buffers.
"""

from __future__ import annotations

import codecs
import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException

from sparsearch.api.errors import error_body
from sparsearch.api.metrics import Metrics

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
PUBLIC_PATHS = frozenset({"/health", "/"})
PUBLIC_PREFIXES = ("/static/",)


HOST_CHECK_EXEMPT = frozenset({"/health"})
NOT_UTF8 = "the request body is not UTF-8 ({reason}); send JSON encoded as UTF-8 with Content-Type: application/json"


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def host_name(header: str) -> str:
    """The host of a ``Host`` header value, lower-cased, without its port (``[::1]`` keeps brackets)."""
    if header.startswith("["):
        return header[: header.find("]") + 1].lower()
    name, colon, port = header.rpartition(":")
    return (name if colon and port.isdigit() else header).lower()


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` is one of ``patterns``: ``*`` (any), a host name, or ``*.example.com`` (its subdomains)."""
    return any(
        pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
        for pattern in patterns
    )


def _declared_charset(content_type: bytes) -> str | None:
    """The ``charset`` parameter of a Content-Type header, lower-cased (``None`` when absent)."""
    for parameter in content_type.decode("latin-1").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


class RequestContextMiddleware:
    """See the module docstring.

    Args:
        app: the wrapped ASGI app.
        metrics: where request counts and latencies go.
        max_body_bytes: largest request body accepted, in bytes.
        api_keys: accepted keys (empty: no authentication).
        api_key_header: the header carrying the key.
        trusted_hosts: ``Host`` values served (see :func:`host_allowed`); ``("*",)``: any.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        api_keys: Sequence[str] = (),
        api_key_header: str = "X-API-Key",
        trusted_hosts: Sequence[str] = ("*",),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.trusted_hosts = None if "*" in trusted_hosts else [host.lower() for host in trusted_hosts]
        self.api_keys = [key.encode("utf-8") for key in api_keys]
        self.api_key_header_name = api_key_header
        self.api_key_header = api_key_header.lower().encode("latin-1")

    def _key_accepted(self, headers: list[tuple[bytes, bytes]]) -> bool:
        given = next((value for name, value in headers if name == self.api_key_header), None)
        if given is None:
            return False
        accepted = False
        for key in self.api_keys:  # compare with every key, so timing says nothing about which matched
            accepted |= hmac.compare_digest(given, key)
        return accepted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        incoming = next((v for n, v in headers if n == b"x-request-id"), b"").decode("latin-1")
        request_id = incoming if _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        response_started = False
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal response_started, status
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        async def refuse(code_status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
            from fastapi.responses import JSONResponse

            response = JSONResponse(error_body(request_id, code, message), status_code=code_status, headers=extra)
            await response(scope, receive, send_with_id)

        try:
            if self.trusted_hosts is not None and scope["path"] not in HOST_CHECK_EXEMPT:
                host = next((v for n, v in headers if n == b"host"), b"").decode("latin-1")
                if not host_allowed(host_name(host), self.trusted_hosts):
                    await refuse(
                        400,
                        "untrusted_host",
                        "this service does not answer for the host named in the Host header; call it by one "
                        "of the host names in SPARSEARCH_TRUSTED_HOSTS",
                    )
                    return
            if self.api_keys and not _is_public(scope["path"]) and not self._key_accepted(headers):
                header = self.api_key_header_name
                await refuse(
                    401, "unauthorized", f"missing or unknown API key: send a valid key in the {header} header"
                )
                return
            declared = next((v for n, v in headers if n == b"content-length"), None)
            if declared is not None:
                if not declared.isdigit():
                    await refuse(400, "bad_request", "the Content-Length header is not a number")
                    return
                if int(declared) > self.max_body_bytes:
                    await refuse(413, "payload_too_large", self._too_large(f"{int(declared)} bytes"))
                    return
            content_type = next((v for n, v in headers if n == b"content-type"), b"")
            charset = _declared_charset(content_type)
            if charset is not None and charset not in ("utf-8", "utf8"):
                reason = f"Content-Type declares charset={charset[:40]}"
                await refuse(415, "unsupported_media_type", NOT_UTF8.format(reason=reason))
                return
            await self.app(scope, self._checked(receive), send_with_id)
        except Exception as error:  # noqa: BLE001 - the last line of defence: no trace reaches the client
            log.exception("request %s (%s %s) failed", request_id, scope.get("method"), scope.get("path"))
            self.metrics.unhandled.labels(type(error).__name__).inc()
            if not response_started:
                await refuse(500, "internal_error", f"internal error; quote request id {request_id} when reporting it")
        finally:
            template = getattr(scope.get("route"), "path", None)  # the route's template, never the raw path
            self.metrics.observe_request(scope.get("method", "-"), template, status, time.perf_counter() - started)

    def _too_large(self, size: str) -> str:
        return (
            f"the request body ({size}) is larger than the {self.max_body_bytes} bytes this service accepts; "
            "send fewer queries or documents per request (limit: SPARSEARCH_MAX_BODY_BYTES)"
        )

    def _checked(self, receive: Receive) -> Receive:
        """``receive``, cutting the body off past the size limit and refusing bytes that are not UTF-8.

        The errors are raised inside the app's body read; FastAPI re-raises an HTTPException, and the
        app's handler answers it with the one error body.
        """
        received = 0
        decoder = codecs.getincrementaldecoder("utf-8")("strict")

        async def receive_checked() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if received + len(body) > self.max_body_bytes:
                    raise HTTPException(413, self._too_large(f"more than {self.max_body_bytes} bytes"))
                # A raw NUL byte is valid UTF-8 but never valid JSON: it means UTF-16 or UTF-32 text.
                nul = body.find(b"\x00")
                if nul >= 0:
                    reason = f"a NUL byte at byte {received + nul}: UTF-16 or UTF-32?"
                    raise HTTPException(415, NOT_UTF8.format(reason=reason))
                pending = len(decoder.getstate()[0])  # bytes of a character split across chunks
                try:
                    decoder.decode(body, final=not message.get("more_body", False))
                except UnicodeDecodeError as error:
                    reason = f"invalid byte at byte {received - pending + error.start}"
                    raise HTTPException(415, NOT_UTF8.format(reason=reason)) from None
                received += len(body)
            return message

        return receive_checked
