"""How ``sparsearch serve`` runs uvicorn: bounded connections, and a timeout on reading request heads.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits for a request head
forever: a client that opens a connection and sends part of a request line, or a header a minute, holds
it for good (slowloris; 4,000 such connections stayed open in a probe). :class:`HeadTimeoutH11Protocol`
closes a connection whose request head is not complete ``head_timeout`` seconds after the connection
opened or the previous response ended. :func:`uvicorn_options` adds uvicorn's own bounds: the
keep-alive timeout, a concurrency limit (503 past it) and the largest request head h11 buffers.

Written against uvicorn 0.55's ``H11Protocol`` (``connection_made``, ``data_received``,
``on_response_complete``, ``connection_lost``); any ASGI server runs the app itself without these.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from sparsearch.api.settings import Settings


class HeadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head is late.

    The timer starts when the connection opens, when a response ends (the next request's head is due)
    and when bytes of a head arrive with no timer running; it stops once h11 has parsed a complete
    request head. A slow request body is not
    bounded here (its size is: ``SPARSEARCH_MAX_BODY_BYTES``).

    Args:
        head_timeout: seconds a request head may take to arrive.
        *args, **kwargs: what uvicorn passes to :class:`H11Protocol`.
    """

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.debug("closing a connection whose request head took over %s s", self.head_timeout)
            self.transport.close()  # nothing was parsed, so there is no request to answer

    def _check_head(self) -> None:
        """Stop the timer once a request head was parsed (h11 has left IDLE for this request); start it
        when bytes of a new head arrive and none runs (a new cycle that began inside h11)."""
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_timer()
        elif self._head_timer is None:
            self._start_head_timer()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._check_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may parse a pipelined request head already received
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that bound connections as ``settings`` say.

    The protocol is a :func:`functools.partial` of a module-level class, so it pickles into the worker
    processes of ``--workers N``.
    """
    return {
        "http": functools.partial(HeadTimeoutH11Protocol, head_timeout=settings.request_head_timeout_seconds),
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "limit_concurrency": settings.max_concurrency,
        "h11_max_incomplete_event_size": settings.max_request_head_bytes,
    }
