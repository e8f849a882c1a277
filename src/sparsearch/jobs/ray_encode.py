"""Batch encoding on a Ray cluster (``sparsearch encode --ray``, ``sparsearch index --ray``).

The work maps onto the on-disk format of :mod:`sparsearch.jobs.encode` (no second format):

1. the driver fits the corpus statistics once (the IDF table; BM25's too for the two-channel
   default), on the whole corpus (deterministic), and writes the output's
   manifest, vocabulary and encoder (:func:`~sparsearch.jobs.encode.prepare_encode_output`);
2. the corpus is split into N round-robin shards, the ``--shard I/N`` of ``sparsearch encode``
   (N = ``workers`` for a new output; a rerun keeps the N its manifest records);
3. ``workers`` actors (one model each, loaded from ``OUT/encoder`` and given the driver's encoding
   options) take shards from an :class:`ray.util.ActorPool`; each runs
   :func:`~sparsearch.jobs.encode.run_encode_job` for its shard, so chunks are committed with the same
   temp folder + rename + ``progress.json`` protocol. ``OUT`` must be a path every node sees (a shared
   filesystem: NFS, a mounted bucket, or one machine);
4. the driver reads the shards' ``progress.json`` to report documents per second across the cluster.

Failures: an actor whose process dies is restarted (``max_restarts``) and its shard call retried
(``max_task_retries``); ``OSError`` and :class:`~sparsearch.errors.EngineUnavailableError` raised
inside a call are retried too (``retry_exceptions``). A retried call resumes after the shard's last
committed chunk, so every document ends up exactly once. A killed driver takes its actors with it;
rerunning the same command resumes every shard.

For an OpenSearch/Elasticsearch target (:func:`run_ray_engine_index`) the actors also bulk-load their
shard into the new version index (``_id`` = ``doc_id``: a retried load overwrites, never duplicates);
the driver then checks the exact document count and swaps the alias.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsearch.errors import EngineUnavailableError, SparsearchError, UsageError, require
from sparsearch.jobs.encode import (
    ENCODER_DIR,
    MANIFEST_FILE,
    VOCAB_FILE,
    EncodeSummary,
    _read_json,
    prepare_encode_output,
    read_shard_docs,
)
from sparsearch.types import Encoder, ProgressCallback

if TYPE_CHECKING:
    from sparsearch.backends.engines.client import SearchEngineBackend
    from sparsearch.encoders.neural import EncodingOptions

log = logging.getLogger(__name__)

EXTRA = "distributed"
MAX_RESTARTS = 3
"""Restarts of a dead actor, and retries of the shard call it was running."""
POLL_SECONDS = 0.5


# -- the cluster ---------------------------------------------------------------------------------------
def connect(address: str) -> bool:
    """Connect this process to a Ray cluster.

    Args:
        address: ``auto`` (the cluster started on this machine with ``ray start --head``, or
            ``RAY_ADDRESS``), ``local`` (start an in-process cluster), ``HOST:PORT`` of a head node's
            GCS, or a ``ray://`` client address.

    Returns:
        Whether this call connected (the caller then calls :func:`disconnect`); ``False`` when the
        process was already connected (a test, a notebook).

    Raises:
        MissingExtraError: ray is not installed.
        UsageError: no cluster at that address (the message says how to start one).
    """
    ray = require("ray", EXTRA)
    if ray.is_initialized():
        return False
    how = "start one with `ray start --head` (and `ray start --address HEAD:6379` on the other machines)"
    if address not in ("auto", "local") and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--ray {address!r}: expected auto, local, HOST:PORT or ray://HOST:PORT")
        try:  # ray.init waits minutes on an address where nothing listens
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as error:
            raise UsageError(f"--ray {address}: no Ray cluster answers there ({error}); {how}") from None
    try:
        if address == "local":
            ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        else:  # workers' logs stay in the cluster's log folder: stdout carries results only
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise UsageError(f"--ray {address}: cannot connect to a Ray cluster ({error}); {how}") from None
    return True


def disconnect() -> None:
    require("ray", EXTRA).shutdown()


# -- the actors ----------------------------------------------------------------------------------------
@dataclass
class EngineTarget:
    """Where actors bulk-load their shards: an engine, the version index being built, bulk settings."""

    kind: str
    url: str | None
    alias: str
    version: str
    threads: int = 2
    chunk_size: int = 500


@dataclass
class LoadReport:
    """What one actor's bulk load of a shard did."""

    shard: int
    succeeded: int
    failures: list[dict[str, object]] = field(default_factory=list)


class ShardWorker:
    """One model; encodes (and bulk-loads) whole shards. Wrapped by ``ray.remote`` in :func:`_pool`."""

    def __init__(self, output: str, options: EncodingOptions) -> None:
        from sparsearch.encoders.registry import load_encoder
        from sparsearch.jobs.encode import check_neural

        self.output = output
        self.encoder = check_neural(load_encoder(str(Path(output) / ENCODER_DIR)))
        self.encoder.options = options  # what the driver encodes with (micro-batching included)

    def encode_shard(
        self, data: str, model_spec: str, shard: tuple[int, int], batch_size: int, chunk_size: int
    ) -> dict[str, Any]:
        from sparsearch.jobs.encode import run_encode_job

        summary = run_encode_job(
            data, self.output, self.encoder, model_spec=model_spec, shard=shard, batch_size=batch_size,
            chunk_size=chunk_size,
        )  # fmt: skip
        return asdict(summary)

    def load_shard(self, shard: tuple[int, int], target: EngineTarget) -> LoadReport:
        from sparsearch.backends.engines import bodies
        from sparsearch.backends.engines.bulk import BulkFailure, bulk_load
        from sparsearch.backends.factory import open_engine
        from sparsearch.jobs.encode import iter_shard

        vocabulary: list[str] = _read_json(Path(self.output) / VOCAB_FILE)
        failures: list[BulkFailure] = []

        def actions():  # noqa: ANN202
            for document, term_ids, weights in iter_shard(self.output, shard):
                vector = {vocabulary[t]: float(w) for t, w in zip(term_ids.tolist(), weights.tolist(), strict=True)}
                try:
                    yield bodies.build_index_action(target.version, document, vector)
                except ValueError as error:
                    failures.append(BulkFailure(document.doc_id, "invalid", str(error), document.title, document.text))

        backend = open_engine(target.kind, alias=target.alias, url=target.url)
        try:
            loaded = bulk_load(backend, actions(), threads=target.threads, chunk_size=target.chunk_size)
        finally:
            backend.close()
        failures.extend(loaded.failures)
        return LoadReport(shard=shard[0], succeeded=loaded.succeeded, failures=[f.to_record() for f in failures])


def _pool(output: Path, options: EncodingOptions, workers: int, num_gpus: float, num_cpus: float):  # noqa: ANN202
    ray = require("ray", EXTRA)
    from ray.util import ActorPool

    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(
        ShardWorker
    )
    return ActorPool([remote.remote(str(output), options) for _ in range(workers)])


def _run_pool(pool: Any, calls: list[tuple[str, tuple]], poll: Any = None) -> list[Any]:  # noqa: ANN401
    """Submit ``(method, args)`` calls to the pool's actors and collect their results, calling
    ``poll()`` every :data:`POLL_SECONDS` meanwhile. Remote errors come back as the original exception."""
    ray = require("ray", EXTRA)
    retried = (OSError, EngineUnavailableError)
    for method, args in calls:
        pool.submit(
            lambda actor, a, m=method: getattr(actor, m).options(retry_exceptions=list(retried)).remote(*a), args
        )
    results = []
    while pool.has_next():
        try:
            results.append(pool.get_next_unordered(timeout=POLL_SECONDS))
        except TimeoutError:
            pass
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            raise cause if isinstance(cause, SparsearchError) else error from None
        except ray.exceptions.RayActorError as error:
            raise SparsearchError(
                f"a Ray worker died {MAX_RESTARTS + 1} times ({error}); rerun the same command to resume: committed "
                "chunks are kept"
            ) from None
        if poll is not None:
            poll()
    if poll is not None:
        poll()
    return results


@dataclass
class RayEncodeSummary:
    """What one ``--ray`` encoding did, over all shards."""

    output: str
    num_shards: int
    workers: int
    documents: int
    encoded_now: int
    resumed_from: int
    postings: int
    avg_terms_per_doc: float
    seconds: float
    empty_documents: list[str] = field(default_factory=list)


def _num_shards(output: Path, workers: int) -> int:
    manifest = output / MANIFEST_FILE
    return int(_read_json(manifest)["num_shards"]) if manifest.is_file() else workers


def run_ray_encode_job(
    data: str | Path,
    output: str | Path,
    encoder: Encoder,
    *,
    model_spec: str,
    workers: int = 2,
    num_gpus: float = 0,
    num_cpus: float = 1,
    batch_size: int = 64,
    chunk_size: int = 1024,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RayEncodeSummary:
    """Encode ``data`` into ``output`` on the connected Ray cluster (see the module docstring).

    Args:
        data: BEIR folder or corpus ``.jsonl``, at a path every node can read.
        output: the output directory, on a filesystem every node shares.
        encoder: a learned encoder (:func:`~sparsearch.jobs.encode.check_neural`); fitted here
            (driver) when it is not fitted yet.
        model_spec: the ``--model`` value, recorded in the manifest.
        workers: actors (each loads one model).
        num_gpus, num_cpus: resources of each actor (``num_gpus=1``: a GPU per actor).
        batch_size, chunk_size, overwrite: as for :func:`~sparsearch.jobs.encode.run_encode_job`.
        on_progress: called with the number of documents newly committed across the cluster.

    Raises:
        UsageError, EncoderMismatchError, CorpusFormatError: as for a single-process job.
        SparsearchError: a worker kept dying (rerun to resume).
    """
    return _encode(data, output, encoder, model_spec, workers, num_gpus, num_cpus, batch_size, chunk_size, overwrite,
                   on_progress)[0]  # fmt: skip


def _encode(  # noqa: PLR0913 - run_ray_encode_job's arguments
    data: str | Path,
    output: str | Path,
    encoder: Encoder,
    model_spec: str,
    workers: int,
    num_gpus: float,
    num_cpus: float,
    batch_size: int,
    chunk_size: int,
    overwrite: bool,
    on_progress: ProgressCallback | None,
) -> tuple[RayEncodeSummary, Any]:
    """:func:`run_ray_encode_job`, also returning the actor pool (an engine load reuses its models)."""
    started = time.perf_counter()
    if workers < 1:
        raise UsageError("--workers must be >= 1")
    if batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    # absolute paths: the actors run in other working directories (on other machines: a shared filesystem)
    data, output = Path(data).resolve(), Path(output).resolve()
    if overwrite and output.exists():
        import shutil

        shutil.rmtree(output)
    num_shards = _num_shards(output, workers)
    # 1. the IDF table, fitted once, and the shared manifest + encoder
    neural = prepare_encode_output(
        data, output, encoder, model_spec=model_spec, num_shards=num_shards, chunk_size=chunk_size
    )
    shards = [(i, num_shards) for i in range(num_shards)]
    seen = {"docs": sum(read_shard_docs(output, s) for s in shards)}
    resumed_from = seen["docs"]
    if on_progress is not None and resumed_from:
        on_progress(resumed_from)

    def poll() -> None:
        done = sum(read_shard_docs(output, s) for s in shards)
        if done > seen["docs"] and on_progress is not None:
            on_progress(done - seen["docs"])
        seen["docs"] = max(done, seen["docs"])

    # 2. the actors, one shard call at a time each
    options = neural.options
    if not num_gpus and options.device is None:  # Ray hides no GPU from an actor that asked for none
        options = options.replace(device="cpu")
    pool = _pool(output, options, min(workers, num_shards), num_gpus, num_cpus)
    calls = [("encode_shard", (str(data), model_spec, shard, batch_size, chunk_size)) for shard in shards]
    summaries = [EncodeSummary(**s) for s in _run_pool(pool, calls, poll)]
    documents = sum(s.documents for s in summaries)
    postings = sum(s.postings for s in summaries)
    summary = RayEncodeSummary(
        output=str(output),
        num_shards=num_shards,
        workers=min(workers, num_shards),
        documents=documents,
        encoded_now=documents - resumed_from,
        resumed_from=resumed_from,
        postings=postings,
        avg_terms_per_doc=postings / documents if documents else 0.0,
        seconds=time.perf_counter() - started,
        empty_documents=sorted(d for s in summaries for d in s.empty_documents),
    )
    return summary, pool


# -- an engine target ----------------------------------------------------------------------------------
@dataclass
class RayEngineSummary:
    """What :func:`run_ray_engine_index` did."""

    alias: str
    index: str
    documents: int
    sent: int
    resumed: bool
    previous: list[str]
    pruned: list[str]
    seconds: float
    encoding: RayEncodeSummary


def run_ray_engine_index(
    data: str | Path,
    backend: SearchEngineBackend,
    backend_kind: str,
    url: str | None,
    encoder: Encoder,
    work_dir: str | Path,
    *,
    model_spec: str,
    workers: int = 2,
    num_gpus: float = 0,
    num_cpus: float = 1,
    batch_size: int = 64,
    encode_chunk_size: int = 1024,
    threads: int = 2,
    chunk_size: int = 500,
    shards: int = 1,
    replicas: int | None = None,
    field_type: str = "rank_features",
    keep_old: int = 1,
    on_progress: ProgressCallback | None = None,
) -> RayEngineSummary:
    """Encode ``data`` on Ray into ``work_dir`` (resumable), have the actors bulk-load their shards into a
    new (or resumed) version behind ``backend.index``, check the count and swap the alias.

    Raises:
        EngineError: documents were rejected, or the version's count differs from the corpus (the alias
            is not moved; a rerun resumes the version and reloads).
        EngineUnavailableError: the engine went away and retries ran out.
    """
    from sparsearch.backends.engines import bodies
    from sparsearch.jobs.build_engine import _find_resumable, corpus_signature

    started = time.perf_counter()
    backend.check_field_type(field_type)
    live = backend.live_indexes()
    job = corpus_signature(data) | {"encoded_on": "ray"}
    # 1. encode (resumable), 2. a version to fill, 3. the actors load their shards, 4. check and swap
    encoding, pool = _encode(
        data, work_dir, encoder, model_spec, workers, num_gpus, num_cpus, batch_size, encode_chunk_size, False,
        on_progress,
    )  # fmt: skip
    fingerprint = encoder.fingerprint
    version = _find_resumable(backend, live, fingerprint.to_dict(), field_type, job, None)
    resumed = version is not None
    if version is None:
        version = backend.next_version_name()
        backend.create_version(version, fingerprint, shards=shards, replicas=replicas, field_type=field_type, job=job)
    with tempfile.TemporaryDirectory(prefix="sparsearch-encoder-") as tmp:
        encoder.save(Path(tmp))
        backend.store_encoder(Path(tmp), fingerprint)
    target = EngineTarget(backend_kind, url, backend.index, version, threads=threads, chunk_size=chunk_size)
    calls = [("load_shard", ((i, encoding.num_shards), target)) for i in range(encoding.num_shards)]
    reports: list[LoadReport] = _run_pool(pool, calls)
    failures = [f for r in reports for f in r.failures]
    if failures:
        shown = "; ".join(f"{f['_id']}: {f['error']}" for f in failures[:5])
        raise bodies.EngineError(f"{len(failures)} documents were rejected ({shown}); {version} was not made live")
    backend.finish_version(version)
    documents = backend.count(version)
    if documents != encoding.documents:
        raise bodies.EngineError(
            f"{version} holds {documents} documents but the corpus has {encoding.documents}; the alias was not "
            "moved: rerun the command"
        )
    previous = backend.swap_alias(version)
    pruned = backend.prune_versions(keep_old)
    return RayEngineSummary(
        alias=backend.index,
        index=version,
        documents=documents,
        sent=sum(r.succeeded for r in reports),
        resumed=resumed,
        previous=previous,
        pruned=pruned,
        seconds=time.perf_counter() - started,
        encoding=encoding,
    )
