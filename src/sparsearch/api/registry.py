"""The indexes a running service answers for: one opened backend and one loaded encoder per name.

The registry is built once in the app's ``lifespan`` and shared by every request thread. Each
:class:`IndexHandle` hands out its backend for reading or for writing; neither waits for the other:

* an embedded index's request reads one snapshot (a commit, pinned for the whole request), so
  searches never wait for updates and never see half of one; updates take the index's writer lock
  (shared with other workers and ``sparsearch index --overwrite``) and run beside searches;
* engines (OpenSearch, Elasticsearch) handle concurrency themselves.

Embedded indexes follow commits made by other processes (another worker, ``sparsearch index
--overwrite``): before each request the handle refreshes the index
(:meth:`~sparsearch.backends.embedded.index.EmbeddedIndex.refresh`: one read of the small manifest)
and reloads the encoder when a rebuild changed it. A missing index directory answers 503 until it is back.

An index that does not exist yet when the service starts (an embedded directory nobody has built, an
engine alias nobody has created: a fresh ``docker compose up``) is not an error: the service starts,
``/ready`` and that index's requests answer 503, and the first request after it appears opens it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsearch.api.errors import ApiError, IndexUnavailableError
from sparsearch.api.settings import IndexSpec, Settings
from sparsearch.backends.base import SearchBackend
from sparsearch.errors import EncoderMismatchError, EngineUnavailableError, IndexNotFoundError, SparsearchError
from sparsearch.search import Searcher
from sparsearch.types import Encoder

if TYPE_CHECKING:
    from sparsearch.backends.embedded.index import EmbeddedIndex

log = logging.getLogger(__name__)

WARM_UP_TEXT = "warm up"
"""Encoded at start when an index has no stored text to take a warm-up query from."""


@dataclass(frozen=True)
class IndexInfo:
    """What ``GET /v1/indexes/{name}`` shows about one index."""

    name: str
    backend: str
    model: str
    encoder: dict[str, str]
    documents: int
    build: dict[str, Any]


class IndexHandle:
    """One served index: its name, its encoder and its backend."""

    kind = "backend"

    def __init__(self, name: str, backend: SearchBackend, encoder: Encoder | None) -> None:
        self.name = name
        self._backend = backend
        self._encoder = encoder

    @property
    def encoder(self) -> Encoder:
        """The encoder that built the index (queries and new documents are encoded with it)."""
        assert self._encoder is not None
        return self._encoder

    def _refresh(self) -> None:
        """Hook: make sure the backend is current before a request (embedded: follow other writers)."""

    @contextlib.contextmanager
    def engine_errors(self, what: str) -> Iterator[None]:
        """Within the block, an unreachable engine or a missing index becomes a 503 :class:`IndexUnavailableError`.

        Use: ``with handle.engine_errors("search"): hits = backend.search_batch(queries, top_k)``.

        Args:
            what: the operation, named in the message of a connection error or timeout.
        """
        try:
            yield
        except ApiError:
            raise
        except (EngineUnavailableError, IndexNotFoundError) as error:  # down, or not built yet: 503 until it is
            raise IndexUnavailableError(self.name, str(error)) from error
        except (ConnectionError, TimeoutError) as error:
            raise IndexUnavailableError(self.name, f"{what} failed ({type(error).__name__}: {error})") from error

    @contextlib.contextmanager
    def reading(self) -> Iterator[SearchBackend]:
        """The backend for searches and document reads."""
        self._refresh()
        yield self._backend

    @contextlib.contextmanager
    def writing(self) -> Iterator[SearchBackend]:
        """The backend for updates (they serialise on the engine's or the index's own lock)."""
        self._refresh()
        yield self._backend

    def warm_up(self) -> None:
        """Pay one-time costs before ``/ready`` says ready (engines: the encoder's first query, when
        the encoder is loaded; the engine itself is not called)."""
        if self._encoder is not None:
            self._encoder.encode_query(WARM_UP_TEXT)

    def health(self) -> dict[str, object]:
        """The backend's health (raises :class:`IndexUnavailableError` when unreachable)."""
        with self.reading() as backend, self.engine_errors("health check"):
            return dict(backend.health())

    def info(self) -> IndexInfo:
        with self.reading() as backend:
            with self.engine_errors("count"):
                count = backend.count()
            stats = getattr(backend, "stats", None)
            with self.engine_errors("stats"):
                build = dict(stats()) if stats is not None else {}
        return IndexInfo(
            name=self.name,
            backend=self.kind,
            model=self.encoder.fingerprint.name,
            encoder=self.encoder.fingerprint.to_dict(),
            documents=int(count),
            build=build,
        )

    def close(self) -> None:
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()


class EmbeddedHandle(IndexHandle):
    """An embedded index directory, refreshed to its latest commit before each request."""

    kind = "embedded"

    def __init__(self, name: str, path: Path) -> None:
        self.path = path
        self._reload_lock = threading.Lock()
        try:
            searcher = Searcher.open(path)
        except IndexNotFoundError as error:
            log.warning("%s; serving 503 for index %s until it exists", error, name)
            super().__init__(name, None, None)  # type: ignore[arg-type] - opened by the first _refresh that finds it
            return
        super().__init__(name, searcher.backend, searcher.encoder)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._refresh()  # opens the index if it appeared since; 503 while it is missing
        assert self._encoder is not None
        return self._encoder

    @contextlib.contextmanager
    def _unavailable_as_503(self) -> Iterator[None]:
        try:
            yield
        except IndexNotFoundError as error:  # not there (yet): 503 until it is
            raise IndexUnavailableError(self.name, str(error)) from error
        except (OSError, ValueError, SparsearchError) as error:
            raise IndexUnavailableError(self.name, f"reading {self.path} failed ({error})") from error

    def _refresh(self) -> None:
        """Open the index if it appeared, load the latest commit, and the encoder when a rebuild changed it."""
        from sparsearch.backends.embedded.index import EmbeddedIndex

        index: EmbeddedIndex | None = self._backend  # type: ignore[assignment]
        with self._unavailable_as_503():
            if index is not None:
                index.refresh()  # cheap when nothing changed: one read of the manifest
                if self._encoder is not None and index.fingerprint == self._encoder.fingerprint:
                    return
            with self._reload_lock:  # first opening, or a rebuild with another model
                index = self._backend if self._backend is not None else EmbeddedIndex.open(self.path)  # type: ignore[assignment]
                encoder = self._encoder
                if encoder is None or index.fingerprint != encoder.fingerprint:
                    encoder = Searcher(index).encoder
                    log.info("index %s opened with model %s", self.name, encoder.fingerprint.name)
                self._backend, self._encoder = index, encoder

    @contextlib.contextmanager
    def reading(self) -> Iterator[SearchBackend]:
        """The index pinned to its current commit: every read of the request sees the same documents."""
        self._refresh()
        index: EmbeddedIndex = self._backend  # type: ignore[assignment]
        yield index.pinned()

    def warm_up(self) -> None:
        """Compile (or load from numba's disk cache) the search kernel, then run one query the way a
        request does: encode the start of a stored document, search, fetch the hits, explain the best.

        An index that does not exist yet is skipped: the search that first finds it pays the compile
        (or the cache load)."""
        if self._backend is None:
            try:
                self._refresh()
            except IndexUnavailableError as error:
                log.info("%s: warmed up by its first search instead", error.message)
                return
        with self.reading() as backend:
            index: EmbeddedIndex = backend  # type: ignore[assignment]
            index.warm_up()
            documents = [document for document in index.get_documents(index.doc_ids[:8]) if document is not None]
            text = " ".join(documents[0].full_text.split()[:12]) if documents else WARM_UP_TEXT
            query = self.encoder.encode_query(text or WARM_UP_TEXT)
            if query.is_empty:
                return
            hits = index.search_batch([query], 10)[0]
            index.get_documents([hit.doc_id for hit in hits])
            if hits:
                index.explain(query, hits[0].doc_id)

    def info(self) -> IndexInfo:
        info = super().info()
        keys = (
            "created_at",
            "updated_at",
            "generation",
            "segments",
            "deleted_documents",
            "format_version",
            "sparsearch_version",
            "n_terms",
            "nnz",
            "avg_terms_per_doc",
            "empty_documents",
            "quantization",
            "bytes",
        )
        build = {key: info.build[key] for key in keys if key in info.build}
        build["segments"] = len(info.build.get("segments", ()))
        build["path"] = str(self.path)
        return IndexInfo(**{**info.__dict__, "build": build})


class EngineHandle(IndexHandle):
    """An index (an alias) on OpenSearch or Elasticsearch.

    The service starts even when the engine is down or the alias does not exist yet: the encoder is
    fetched from the engine (or loaded from ``--model``) on the first request that finds the index, and
    every request meanwhile gets 503. The clients reconnect by themselves, so nothing needs a restart
    when the engine returns.
    """

    def __init__(self, name: str, kind: str, alias: str, url: str | None, model: str | None) -> None:
        from sparsearch.backends.factory import open_engine

        self.kind = kind
        self._model = model
        self._encoder_lock = threading.Lock()
        self._engine = open_engine(kind, alias=alias, url=url)  # the same backend, with the engines' own methods
        super().__init__(name, self._engine, None)
        try:
            self._load_encoder()
        except IndexUnavailableError as error:
            log.warning("%s; serving 503 for it until the engine answers", error.message)

    def _load_encoder(self) -> Encoder:
        with self._encoder_lock:
            if self._encoder is None:
                searcher = Searcher(self._backend, model=self._model)  # loads the encoder on first use
                with self.engine_errors("load the encoder"):
                    self._encoder = searcher.encoder
            return self._encoder

    @property
    def encoder(self) -> Encoder:
        return self._encoder if self._encoder is not None else self._load_encoder()

    @contextlib.contextmanager
    def engine_errors(self, what: str) -> Iterator[None]:
        try:
            with super().engine_errors(what):
                yield
        except EncoderMismatchError:
            # the alias moved to an index built by another encoder: load that one for the next request
            self._encoder = None  # no lock: _load_encoder may hold it while this block runs inside it
            raise

    def info(self) -> IndexInfo:
        info = super().info()
        with self.reading():
            with self.engine_errors("read the index metadata"):
                meta = self._engine.meta()
            with self.engine_errors("read the index statistics"):
                stats = self._engine.index_stats()
        keys = ("format_version", "sparsearch_version", "field_type", "state", "updated_at")
        build = {key: meta[key] for key in keys if key in meta} | dict(stats)
        build["url"] = self._engine.url
        return IndexInfo(**{**info.__dict__, "build": build})


class IndexRegistry:
    """Every served index by name; the first one answers requests that name no index."""

    def __init__(self, handles: list[IndexHandle]) -> None:
        if not handles:
            raise ValueError("a registry needs at least one index")
        self.handles = {handle.name: handle for handle in handles}
        self.default = handles[0].name
        self._warm = threading.Event()

    @property
    def warm(self) -> bool:
        """Whether :meth:`warm_up` has finished: ``/ready`` answers 503 until then."""
        return self._warm.is_set()

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Block until :meth:`warm_up` has finished (or ``timeout`` seconds passed); returns :attr:`warm`."""
        return self._warm.wait(timeout)

    def warm_up(self) -> None:
        """Warm every index (:meth:`IndexHandle.warm_up`), then mark the registry warm.

        The app runs this in a background thread once the indexes are open, so the port listens at
        once and ``/ready`` turns 200 when the first search no longer compiles anything. An index that
        fails to warm is logged and skipped (``/ready`` still checks its health); searches that arrive
        meanwhile are answered, waiting for the compilation if they need it.
        """
        try:
            for handle in self.handles.values():
                started = time.perf_counter()
                try:
                    handle.warm_up()
                except Exception:  # a failed warm-up only makes the first search slow; never stop serving for it
                    log.exception("warming up index %s failed; its first search may be slow", handle.name)
                else:
                    log.info("index %s warm in %.2f s", handle.name, time.perf_counter() - started)
        finally:
            self._warm.set()

    @classmethod
    def open(cls, settings: Settings) -> IndexRegistry:
        """Open every index of ``settings`` and load its encoder (once, at start).

        An index that does not exist yet is opened later (its requests answer 503 meanwhile).

        Raises:
            IndexFormatError, ModelNotFoundError: an existing index or its model cannot be used.
        """
        handles: list[IndexHandle] = []
        try:
            for spec in settings.index_specs():
                handles.append(open_handle(spec, settings))
        except BaseException:
            for handle in handles:
                handle.close()
            raise
        return cls(handles)

    def get(self, name: str | None) -> IndexHandle:
        """The handle called ``name`` (``None``: the default index).

        Raises:
            ApiError: 404 ``unknown_index`` listing the served names.
        """
        handle = self.handles.get(self.default if name is None else name)
        if handle is None:
            raise ApiError(
                404,
                "unknown_index",
                f"no index named {name!r}; this service has: {', '.join(sorted(self.handles))}",
            )
        return handle

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def open_handle(spec: IndexSpec, settings: Settings) -> IndexHandle:
    """Open one index of ``settings`` (embedded directory or remote engine index)."""
    if settings.backend == "embedded":
        return EmbeddedHandle(spec.name, Path(spec.location))
    return EngineHandle(spec.name, settings.backend, spec.location, settings.engine_url, settings.model)
