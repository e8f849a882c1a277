"""Batch indexing into OpenSearch/Elasticsearch: streaming bulk loads that survive crashes and reruns.

:func:`bulk_load` sends bulk actions with the client's ``parallel_bulk`` helper (parallel chunks),
retries what the engine could not take (HTTP 429, 5xx, connection errors) with exponential backoff,
and reports every document the engine rejected (mapping errors, invalid values) by id without
stopping the others.

:func:`index_corpus` is the indexing job behind ``sparsearch index --backend opensearch|elasticsearch``:

1. fit the encoder's corpus statistics if it needs them and store the encoder in the engine;
2. find an unfinished version of the same build (same encoder, field type and corpus file) and
   resume it, or create a new version index ``<alias>-v00000N``;
3. stream the corpus: skip documents the version already holds, encode the rest and bulk-load
   them (``_id`` = ``doc_id``, so anything sent twice overwrites instead of duplicating);
4. on failures, write the failed documents to the failures file and stop before the alias swap: a
   rerun of the same command resumes the version, retries them (and whatever a crash left unsent)
   and rewrites or deletes the file;
5. otherwise delete documents the corpus no longer has, re-enable refreshes, check the count, mark
   the version complete, swap the alias atomically and prune old versions.
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsearch.errors import EngineUnavailableError, UsageError
from sparsearch.indexer import engine_bodies as bodies
from sparsearch.indexer.corpus import iter_corpus, resolve_corpus_file
from sparsearch.retrieval.contract import Document, Encoder, EncoderFingerprint, iter_batches

if TYPE_CHECKING:
    from sparsearch.indexer._search_engine import SearchEngineBackend

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Item or request statuses worth another try (plus connection errors, which have no status)."""

ProgressCallback = Callable[[int], None]


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
@dataclass
class EngineIndexSummary:
    """What :func:`index_corpus` did, for the CLI's summary and for logs."""

    alias: str
    index: str
    engine_version: str
    documents: int
    sent: int
    skipped: int
    removed: int
    resumed: bool
    swapped: bool
    previous: list[str]
    pruned: list[str]
    seconds: float
    failures: list[BulkFailure] = field(default_factory=list)
    failures_file: str | None = None
    retried_from_file: int = 0
    empty_documents: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["failures"] = [f.to_record() for f in self.failures]
        return data


def corpus_signature(corpus: str | Path) -> dict[str, object]:
    """Identity of the corpus file (path, size, mtime): a build resumes only on the same file."""
    path = resolve_corpus_file(Path(corpus)).resolve()
    stat = path.stat()
    return {"corpus": str(path), "corpus_bytes": stat.st_size, "corpus_mtime_ns": stat.st_mtime_ns}


def read_failures_file(path: Path) -> list[str]:
    """Document ids listed in a failures file (empty when it does not exist)."""
    if not path.is_file():
        return []
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            ids.append(str(json.loads(line)["_id"]))
    return ids


def write_failures_file(path: Path, failures: list[BulkFailure]) -> None:
    """Write failures as JSONL (``_id``, ``title``, ``text``, ``status``, ``error``), or delete the file if none."""
    if not failures:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for failure in failures:
            handle.write(json.dumps(failure.to_record(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def _find_resumable(
    backend: SearchEngineBackend, live: list[str], fingerprint: dict, field_type: str, job: dict
) -> str | None:
    candidates = [
        name
        for name, meta in backend.versions().items()
        if name not in live
        and meta.get("state") == bodies.STATE_BUILDING
        and meta.get("format_version") == bodies.INDEX_FORMAT_VERSION
        and meta.get("encoder") == fingerprint
        and meta.get("field_type") == field_type
        and meta.get("job") == job
    ]
    return candidates[-1] if candidates else None


def index_corpus(
    corpus: str | Path,
    backend: SearchEngineBackend,
    encoder: Encoder,
    *,
    batch_size: int = 256,
    threads: int = 2,
    chunk_size: int = 500,
    shards: int = 1,
    replicas: int | None = None,
    field_type: str = "rank_features",
    keep_old: int = 1,
    failures_path: str | Path | None = None,
    retry: RetryPolicy | None = None,
    on_progress: ProgressCallback | None = None,
) -> EngineIndexSummary:
    """Encode ``corpus`` into a new (or resumed) version behind ``backend.index`` and swap the alias.

    See the module docstring for the steps. Documents are counted by ``on_progress`` when they are
    written, skipped (already in a resumed version) or failed.

    Args:
        corpus: BEIR folder or corpus ``.jsonl``.
        backend: an :class:`~sparsearch.indexer.opensearch.OpenSearchBackend` or
            :class:`~sparsearch.indexer.elasticsearch.ElasticsearchBackend`; its ``index`` is the alias.
        encoder: fitted here if it needs corpus statistics (BM25).
        batch_size: documents encoded per batch.
        threads, chunk_size, retry: see :func:`bulk_load`.
        shards, replicas: of the new version (``replicas=None``: 0 on one node, 1 on a cluster).
        field_type: ``rank_features`` (default) or ``sparse_vector`` (Elasticsearch 8.15+).
        keep_old: old versions kept after the swap (the newest ones); the rest are deleted.
        failures_path: JSONL of documents that failed (default ``<alias>.failures.jsonl`` in the
            working directory); read and rewritten by every run.

    Returns:
        The summary; ``swapped`` is false when documents failed (they are in ``failures_file``).

    Raises:
        EngineUnavailableError: the engine went away and retries ran out (rerun to resume).
        CorpusFormatError, UsageError: bad corpus, duplicate ids, bad options.
    """
    started = time.perf_counter()
    from sparsearch.indexer.pipeline import fit_if_needed

    alias = backend.index
    failures_file = Path(failures_path) if failures_path is not None else Path(f"{alias}.failures.jsonl")
    engine_version = backend.server_version
    backend.check_field_type(field_type)
    live = backend.live_indexes()
    job = corpus_signature(corpus)
    fit_if_needed(encoder, corpus)
    fingerprint = encoder.fingerprint

    # 1. the version to write: resume an unfinished build of the same job, or start a new one
    version = _find_resumable(backend, live, fingerprint.to_dict(), field_type, job)
    present: set[str] = set()
    if version is not None:
        backend.refresh(version)  # refreshes are off while building: make every written document visible
        present = set(backend.iter_doc_ids(version))
        log.info("resuming %s: %d documents already written", version, len(present))
    else:
        version = backend.next_version_name()
        backend.create_version(version, fingerprint, shards=shards, replicas=replicas, field_type=field_type, job=job)
    retried_from_file = len(read_failures_file(failures_file))
    with tempfile.TemporaryDirectory(prefix="sparsearch-encoder-") as tmp:
        encoder.save(Path(tmp))  # type: ignore[attr-defined]
        backend.store_encoder(Path(tmp), fingerprint)

    # 2. stream the corpus
    seen: set[str] = set()
    failures: list[BulkFailure] = []
    empty: list[str] = []
    counts = {"skipped": 0}

    def actions() -> Iterator[dict[str, Any]]:
        for batch in iter_batches(iter_corpus(corpus), batch_size):
            todo = []
            for document in batch:
                if document.doc_id in seen:
                    raise UsageError(f"duplicate doc_id {document.doc_id!r}: ids must be unique within an index")
                seen.add(document.doc_id)
                if document.doc_id in present:
                    counts["skipped"] += 1
                else:
                    todo.append(document)
            if on_progress is not None and len(todo) < len(batch):
                on_progress(len(batch) - len(todo))
            vectors = encoder.encode_documents([d.full_text for d in todo])
            for document, vector in zip(todo, vectors, strict=True):
                if not vector:
                    empty.append(document.doc_id)
                try:
                    yield bodies.build_index_action(version, document, vector)
                except ValueError as error:
                    failures.append(BulkFailure(document.doc_id, "invalid", str(error), document.title, document.text))
                    if on_progress is not None:
                        on_progress(1)

    try:
        loaded = bulk_load(backend, actions(), threads=threads, chunk_size=chunk_size, retry=retry, on_done=on_progress)
    except EngineUnavailableError as error:
        write_failures_file(failures_file, failures + error.unsent)
        raise EngineUnavailableError(
            f"{error}. The build of {version} stopped (unsent documents listed in {failures_file}); rerun the "
            "same command to resume it: documents already written are kept and skipped",
            unsent=error.unsent,
        ) from error
    failures.extend(loaded.failures)

    summary = EngineIndexSummary(
        alias=alias,
        index=version,
        engine_version=engine_version,
        documents=0,
        sent=loaded.succeeded,
        skipped=counts["skipped"],
        removed=0,
        resumed=bool(present),
        swapped=False,
        previous=[],
        pruned=[],
        seconds=0.0,
        failures=failures,
        failures_file=str(failures_file) if failures else None,
        retried_from_file=retried_from_file,
        empty_documents=empty,
    )
    write_failures_file(failures_file, failures)
    if failures:  # leave the version unfinished: a rerun resumes it and retries exactly these
        backend.refresh(version)
        summary.documents = backend.count(version)
        summary.seconds = time.perf_counter() - started
        return summary

    # 3. documents a resumed version holds but the corpus no longer has
    extra = present - seen
    if extra:
        removed = bulk_load(
            backend, (bodies.build_delete_action(version, doc_id) for doc_id in sorted(extra)), retry=retry
        )
        summary.removed = removed.succeeded

    # 4. finish, verify, swap, prune
    backend.finish_version(version)
    summary.documents = backend.count(version)
    if summary.documents != len(seen):
        raise bodies.EngineError(
            f"{version} holds {summary.documents} documents but the corpus has {len(seen)}; the alias was not "
            "moved: rerun the command"
        )
    summary.previous = backend.swap_alias(version)
    summary.swapped = True
    summary.pruned = backend.prune_versions(keep_old)
    summary.seconds = time.perf_counter() - started
    return summary


def index_vectors(
    backend: SearchEngineBackend,
    documents: Sequence[Document],
    vectors: Sequence[Mapping[str, float]],
    fingerprint: EncoderFingerprint,
    *,
    shards: int = 1,
    replicas: int | None = None,
    field_type: str = "rank_features",
    keep_old: int = 1,
    threads: int = 2,
    chunk_size: int = 500,
) -> str:
    """Build a new version from already encoded documents and swap the alias to it (no resume).

    For vectors that come from elsewhere (tests, experiments, another encoder's output).

    Returns:
        The new version's index name.

    Raises:
        EngineError: a document was rejected (nothing is swapped).
    """
    if len(documents) != len(vectors):
        raise ValueError(f"{len(documents)} documents but {len(vectors)} vectors")
    version = backend.next_version_name()
    backend.create_version(version, fingerprint, shards=shards, replicas=replicas, field_type=field_type)
    loaded = bulk_load(
        backend, bodies.iter_bulk_actions(version, documents, vectors), threads=threads, chunk_size=chunk_size
    )
    if loaded.failures:
        shown = "; ".join(f"{f.doc_id}: {f.error}" for f in loaded.failures[:5])
        raise bodies.EngineError(
            f"{len(loaded.failures)} documents were rejected ({shown}); {version} was not made live"
        )
    backend.finish_version(version)
    backend.swap_alias(version)
    backend.prune_versions(keep_old)
    return version
