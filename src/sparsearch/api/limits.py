"""What one search request may cost: a hit budget checked up front, and a deadline checked as it runs.

* :func:`check_search_cost` refuses a request asking for more hits (``queries x top_k``) than the
  settings allow, before any work, with a message that says the limit, the request's cost and how to
  fit (fewer queries, a smaller ``top_k``, no ``explain``, or a higher ``SPARSEARCH_...`` limit).
* :class:`Deadline` is handed to the search work, which calls :meth:`Deadline.check` between chunks
  (queries, hits): past the timeout it raises a 504, and once the client has gone
  (:meth:`Deadline.cancel`) a 499, so the rest of the work is skipped. Python cannot stop a thread from
  outside; the work stops itself at its next check.
* :func:`run_until_disconnected` runs such work in a worker thread and cancels its deadline as soon
  as the client disconnects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sparsearch.api.errors import ApiError
from sparsearch.api.settings import Settings

T = TypeVar("T")

CLIENT_CLOSED_REQUEST = 499
"""Status recorded for requests whose client disconnected first (nginx's convention; nobody reads it)."""


def search_cost(n_queries: int, top_k: int) -> int:
    """The cost of a search request: the number of hits it may return (``n_queries x top_k``)."""
    return n_queries * top_k


def check_search_cost(n_queries: int, top_k: int, explain: bool, settings: Settings) -> int:
    """The request's cost (:func:`search_cost`), or a 422 when it is over the settings' limit.

    Raises:
        ApiError: 422 ``too_many_hits``, saying the limit, the cost and how to fit under it.
    """
    cost = search_cost(n_queries, top_k)
    if explain:
        limit, variable = settings.max_explained_hits_per_request, "SPARSEARCH_MAX_EXPLAINED_HITS_PER_REQUEST"
    else:
        limit, variable = settings.max_hits_per_request, "SPARSEARCH_MAX_HITS_PER_REQUEST"
    if cost <= limit:
        return cost
    what = "explained hits" if explain else "hits"
    ways = ["fewer queries" if n_queries > 1 else None, "a smaller top_k" if top_k > 1 else None]
    if explain and cost <= settings.max_hits_per_request:
        ways.append("no explain")
    how = ", ".join(way for way in ways if way)
    raise ApiError(
        422,
        "too_many_hits",
        f"this request asks for {n_queries} quer{'y' if n_queries == 1 else 'ies'} x top_k {top_k} = {cost:,} "
        f"{what}, over the limit of {limit:,} per request; send {how + ', ' if how else ''}or ask the operator "
        f"to raise {variable}",
        details=[{"loc": ["body", "top_k"], "message": f"{what} per request over {limit:,}", "type": "too_many_hits"}],
    )


class Deadline:
    """A search's time budget and its client's cancellation flag, checked by the work between chunks.

    Args:
        seconds: the time budget, from now.
        clock: monotonic seconds (tests pass a fake clock).
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._expires = clock() + seconds
        self._cancelled = threading.Event()
        self.checks = 0
        """How many times :meth:`check` ran (tests count the chunks done)."""

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called (the client went away)."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the work at its next :meth:`check` (thread-safe)."""
        self._cancelled.set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until :meth:`cancel` is called, or ``timeout`` seconds passed; returns :attr:`cancelled`."""
        return self._cancelled.wait(timeout)

    def check(self) -> None:
        """Return when the work may go on.

        Raises:
            ApiError: 499 ``client_disconnected`` once cancelled; 504 ``search_timeout`` past the budget.
        """
        self.checks += 1
        if self._cancelled.is_set():
            raise ApiError(CLIENT_CLOSED_REQUEST, "client_disconnected", "the client closed the connection")
        if self._clock() > self._expires:
            raise ApiError(
                504,
                "search_timeout",
                f"the search took longer than the {self.seconds:g} s this service allows and was stopped; send "
                "fewer queries or a smaller top_k, search without explain, or ask the operator to raise "
                "SPARSEARCH_SEARCH_TIMEOUT_SECONDS",
            )


async def run_until_disconnected(receive: Callable[[], Awaitable[Any]], work: Callable[[], T], deadline: Deadline) -> T:
    """Run ``work()`` in a worker thread; if the client disconnects meanwhile, cancel ``deadline``.

    Meant for routes whose body has been read already: the next ASGI message is then
    ``http.disconnect``, which the server sends when the client goes away (awaited, not polled).

    Args:
        receive: the request's ASGI receive channel (``request.receive``).
        work: the synchronous work; it calls ``deadline.check()`` between chunks.
        deadline: the work's deadline, cancelled on disconnect.

    Returns:
        What ``work()`` returned; its exception, if it raised one.
    """
    import anyio
    from starlette.concurrency import run_in_threadpool

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            await anyio.sleep(0.05)  # a trailing empty body message: listen again (never a busy loop)
        deadline.cancel()

    outcome: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:
            outcome.append(await run_in_threadpool(work))
        except Exception as error:  # noqa: BLE001 - re-raised below, unwrapped (a task group would wrap it)
            failure.append(error)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return outcome[0]
