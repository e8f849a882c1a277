"""Bulk loading into OpenSearch/Elasticsearch: parallel chunks, retries with backoff, per-document failures.

:func:`bulk_load` sends bulk actions with the client's ``parallel_bulk`` helper (parallel chunks),
retries what the engine could not take (HTTP 429, 5xx, connection errors) with exponential backoff,
and reports every document the engine rejected (mapping errors, invalid values) by id without
stopping the others. The indexing job that uses it is :mod:`sparsearch.jobs.build_engine`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sparsearch.errors import EngineUnavailableError, UsageError
from sparsearch.types import ProgressCallback

if TYPE_CHECKING:
    from sparsearch.backends.engines.client import SearchEngineBackend

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Item or request statuses worth another try (plus connection errors, which have no status)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: attempt ``n`` (1-based) waits ``min(max_backoff_s, initial_backoff_s * 2**(n-1))``."""

    max_retries: int = 6
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempt - 1))


@dataclass(frozen=True)
class BulkFailure:
    """A document the engine did not take: its id, the HTTP status (or ``"invalid"``/``"unreachable"``)
    and the engine's reason; ``title``/``text`` let the failures file be read as a corpus."""

    doc_id: str
    status: int | str | None
    error: str
    title: str = ""
    text: str = ""

    def to_record(self) -> dict[str, object]:
        return {"_id": self.doc_id, "title": self.title, "text": self.text, "status": self.status, "error": self.error}


@dataclass
class BulkResult:
    """Outcome of :func:`bulk_load`: documents acknowledged, failures, and retry rounds used."""

    succeeded: int = 0
    failures: list[BulkFailure] = field(default_factory=list)
    retries: int = 0


def describe_error(error: object) -> str:
    """One line from a bulk item's ``error`` (a dict with type/reason/caused_by, or a string)."""
    if isinstance(error, Mapping):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
        cause = error.get("caused_by")
        if isinstance(cause, Mapping):
            text += f" (caused by {describe_error(cause)})"
        return text
    return " ".join(str(error).split())


def _failure(action: Mapping[str, Any], status: int | str | None, error: str) -> BulkFailure:
    source = action.get("_source") or {}
    return BulkFailure(
        doc_id=str(action["_id"]),
        status=status,
        error=error,
        title=str(source.get("title", "")),
        text=str(source.get("text", "")),
    )


def bulk_load(
    backend: SearchEngineBackend,
    actions: Iterable[dict[str, Any]],
    *,
    threads: int = 2,
    chunk_size: int = 500,
    retry: RetryPolicy | None = None,
    on_done: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BulkResult:
    """Send bulk actions in parallel chunks, retrying what the engine could not take yet.

    Actions are consumed in windows of ``threads * chunk_size * 2``; each window is sent with the
    client's ``parallel_bulk``; items answered 429/5xx and whole chunks lost to connection errors
    are re-sent (same ``_id``, so never duplicated) after ``retry.delay(attempt)`` seconds.

    Args:
        backend: the engine backend (its client and bulk helper).
        actions: from :func:`engine_bodies.build_index_action` / ``build_delete_action``; ``_id``
            must be unique within a window.
        threads: parallel bulk requests.
        chunk_size: actions per bulk request.
        retry: backoff policy (default :class:`RetryPolicy`).
        on_done: called with the number of actions just settled (succeeded or failed for good).

    Returns:
        Counts and the permanently failed documents (400-class rejections, with the engine's reason).

    Raises:
        EngineUnavailableError: retries ran out on connection errors, 429 or 5xx (the engine is
            down or overloaded); actions settled before that stay written.
    """
    if threads < 1 or chunk_size < 1:
        raise UsageError(f"threads and chunk size must be >= 1 (got {threads}, {chunk_size})")
    retry = retry or RetryPolicy()
    result = BulkResult()
    iterator = iter(actions)
    window_size = threads * chunk_size * 2
    while window := list(itertools.islice(iterator, window_size)):
        pending = {str(action["_id"]): action for action in window}
        if len(pending) != len(window):
            raise UsageError("duplicate _id within one bulk window: document ids must be unique")
        attempt = 0
        size = chunk_size
        while pending:
            again: dict[str, dict[str, Any]] = {}
            suspects: dict[str, dict[str, Any]] = {}
            last_problem = ""
            try:
                for ok, item in backend.parallel_bulk(list(pending.values()), threads=threads, chunk_size=size):
                    info = next(iter(item.values()))
                    doc_id = str(info.get("_id"))
                    action = pending.pop(doc_id, None)
                    if action is None:
                        continue
                    status = info.get("status")
                    if ok or (action.get("_op_type") == "delete" and status == 404):
                        result.succeeded += 1
                        if on_done is not None:
                            on_done(1)
                    elif status in RETRYABLE_STATUSES or not isinstance(status, int):
                        again[doc_id] = action
                        last_problem = f"status {status}: {describe_error(info.get('error'))}"
                    elif "exception" in info and size > 1:
                        # The whole request was refused (e.g. one _id over 512 bytes fails the bulk
                        # request's validation): send its documents one by one to find the culprits.
                        suspects[doc_id] = action
                    else:
                        result.failures.append(_failure(action, status, describe_error(info.get("error"))))
                        if on_done is not None:
                            on_done(1)
            except backend.unavailable_errors as error:  # elasticsearch-py raises these out of parallel_bulk
                last_problem = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
            again.update(pending)  # whatever got no answer at all
            if suspects and not again:
                pending, size = suspects, 1
                continue
            again.update(suspects)
            pending = again
            if pending:
                attempt += 1
                if attempt > retry.max_retries:
                    raise EngineUnavailableError(
                        f"{backend.product} at {backend.url} did not take {len(pending)} documents after "
                        f"{retry.max_retries} retries (last: {last_problem}); {result.succeeded} were written",
                        unsent=[_failure(action, "unreachable", last_problem) for action in pending.values()],
                    )
                result.retries += 1
                delay = retry.delay(attempt)
                log.warning("bulk: %d documents to retry in %.1fs (%s)", len(pending), delay, last_problem)
                sleep(delay)
    return result


# -- the indexing job ---------------------------------------------------------------------------------
