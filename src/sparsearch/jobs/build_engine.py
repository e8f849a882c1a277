"""Batch indexing into OpenSearch/Elasticsearch: streaming bulk loads that survive crashes and reruns.

:func:`index_corpus` is the indexing job behind ``sparsearch index --backend opensearch|elasticsearch``
(a corpus without documents is refused before the engine is contacted, unless ``allow_empty``):

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

import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsearch.backends.engines import bodies
from sparsearch.backends.engines.bulk import BulkFailure, RetryPolicy, bulk_load
from sparsearch.corpus import iter_corpus, resolve_corpus_file
from sparsearch.errors import EngineUnavailableError, UsageError
from sparsearch.types import Document, Encoder, EncoderFingerprint, ProgressCallback, iter_batches

if TYPE_CHECKING:
    from sparsearch.backends.engines.client import SearchEngineBackend

log = logging.getLogger(__name__)


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
    backend: SearchEngineBackend, live: list[str], fingerprint: dict, field_type: str, job: dict, dense: dict | None
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
        and meta.get("dense") == dense
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
    allow_empty: bool = False,
    on_progress: ProgressCallback | None = None,
    dense: bool = False,
) -> EngineIndexSummary:
    """Encode ``corpus`` into a new (or resumed) version behind ``backend.index`` and swap the alias.

    See the module docstring for the steps. Documents are counted by ``on_progress`` when they are
    written, skipped (already in a resumed version) or failed.

    Args:
        corpus: BEIR folder or corpus ``.jsonl``.
        backend: an :class:`~sparsearch.backends.engines.opensearch.OpenSearchBackend` or
            :class:`~sparsearch.backends.engines.elasticsearch.ElasticsearchBackend`; its ``index`` is the alias.
        encoder: fitted here if it needs corpus statistics (BM25).
        batch_size: documents encoded per batch.
        threads, chunk_size, retry: see :func:`bulk_load`.
        shards, replicas: of the new version (``replicas=None``: 0 on one node, 1 on a cluster).
        field_type: ``rank_features`` (default) or ``sparse_vector`` (Elasticsearch 8.15+).
        keep_old: old versions kept after the swap (the newest ones); the rest are deleted.
        failures_path: JSONL of documents that failed (default ``<alias>.failures.jsonl`` in the
            working directory); read and rewritten by every run.
        allow_empty: build (and make live) a version even when the corpus has no documents; refused
            otherwise, before the engine is contacted, since the alias swap would empty a served index.
        dense: also store each document's dense window embeddings (``binary`` field) for hybrid search.

    Returns:
        The summary; ``swapped`` is false when documents failed (they are in ``failures_file``).

    Raises:
        EngineUnavailableError: the engine went away and retries ran out (rerun to resume).
        CorpusFormatError, UsageError: bad corpus (an empty one without ``allow_empty``), duplicate ids, bad options.
    """
    started = time.perf_counter()
    from sparsearch.jobs.build_embedded import fit_if_needed
    from sparsearch.jobs.source import check_not_empty, open_source

    # 0. refuse an empty corpus before touching the engine: the alias swap would empty the served index
    check_not_empty(open_source(corpus), allow_empty=allow_empty)
    alias = backend.index
    failures_file = Path(failures_path) if failures_path is not None else Path(f"{alias}.failures.jsonl")
    engine_version = backend.server_version
    backend.check_field_type(field_type)
    live = backend.live_indexes()
    job = corpus_signature(corpus)
    identity = None
    if dense:
        from sparsearch.encoders.dense import dense_model_identity

        identity = dense_model_identity()
    fit_if_needed(encoder, corpus)
    fingerprint = encoder.fingerprint

    # 1. the version to write: resume an unfinished build of the same job, or start a new one
    version = _find_resumable(backend, live, fingerprint.to_dict(), field_type, job, identity)
    present: set[str] = set()
    if version is not None:
        backend.refresh(version)  # refreshes are off while building: make every written document visible
        present = set(backend.iter_doc_ids(version))
        log.info("resuming %s: %d documents already written", version, len(present))
    else:
        version = backend.next_version_name()
        backend.create_version(
            version, fingerprint, shards=shards, replicas=replicas, field_type=field_type, job=job, dense=identity
        )
    retried_from_file = len(read_failures_file(failures_file))
    with tempfile.TemporaryDirectory(prefix="sparsearch-encoder-") as tmp:
        encoder.save(Path(tmp))
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
            texts = [d.full_text for d in todo]
            if dense:
                from sparsearch.encoders.dense import encode_with_windows

                vectors, windows = encode_with_windows(encoder, texts)
                rows = [windows.document(row) for row in range(windows.n_docs)]
            else:
                vectors, rows = encoder.encode_document(texts), [None] * len(todo)
            for document, vector, dense_rows in zip(todo, vectors, rows, strict=True):
                if not vector:
                    empty.append(document.doc_id)
                try:
                    yield bodies.build_index_action(version, document, vector, dense_rows)
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
