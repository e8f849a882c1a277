"""What the OpenSearch and Elasticsearch backends share: one class over either official client.

Both clients expose the same REST calls with a ``body=`` argument (opensearch-py 2/3,
elasticsearch-py 8/9), and every body comes from the pure builders in
:mod:`sparsearch.backends.engines.bodies`; a subclass only says how to build its client, which bulk
helper to use and which exceptions mean "the engine is unreachable".

**Layout on the engine.** ``--index NAME`` names an *alias*; each build writes a new concrete
index ``NAME-v000001``, ``NAME-v000002``, ... and the alias is swapped to it atomically when it is
complete (zero-downtime reindex). The mapping's ``_meta`` records the encoder fingerprint, the
field type and the build state (``building`` or ``complete``).

**The encoder.** Searching needs the encoder that built the index (its vocabulary/analyzer and IDF
table). Encoders small enough (``MAX_STORED_ENCODER_BYTES``) are stored in the companion index
:data:`ENCODER_INDEX`, one document per fingerprint holding the files of the encoder's saved
directory (base64), and unpacked into a local cache on first use. A larger encoder (a neural model)
must be passed as a local ``--model`` directory, whose fingerprint must match the index's.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

from sparsearch._cache import cache_root
from sparsearch.backends.base import Hit
from sparsearch.backends.engines import bodies
from sparsearch.errors import (
    EngineUnavailableError,
    IndexFormatError,
    IndexNotFoundError,
    SparsearchError,
    UsageError,
    require,
)
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, SparseVector

log = logging.getLogger(__name__)

ENCODER_INDEX = "sparsearch-encoders"
"""Companion index holding the saved encoders, one document per encoder fingerprint."""

MAX_STORED_ENCODER_BYTES = 32 * 1024 * 1024
"""Encoders larger than this are not copied into the engine (pass ``--model`` when searching)."""

MAX_CHUNK_BYTES = 20 * 1024 * 1024
"""Bulk requests stay far below the engines' default ``http.max_content_length`` (100 MB)."""
POOL_SIZE = 16
"""HTTP connections kept per node (parallel bulk threads and concurrent searches share them)."""

DEFAULT_URL = "http://localhost:9200"
DEFAULT_TIMEOUT_S = 60.0


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``http://user:pass@host:9200`` -> (``http://host:9200``, ``("user", "pass")``).

    Raises:
        UsageError: the URL is not ``http(s)://host[:port][/path]``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {url!r} is not an http(s) URL such as {DEFAULT_URL}")
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), auth


def encoder_key(fingerprint: EncoderFingerprint) -> str:
    """The id of an encoder in :data:`ENCODER_INDEX` (what makes two encoders compatible)."""
    return f"{fingerprint.vocab_hash}-{fingerprint.idf_hash or 'none'}"


def default_cache_dir() -> Path:
    return cache_root()


class SearchEngineBackend:
    """A sparsearch index on an OpenSearch or Elasticsearch server (implements ``SearchBackend``).

    Create it with the subclass's :meth:`connect`. Reads go through the alias ``index``; the
    indexing job (:func:`sparsearch.jobs.build_engine.index_corpus`) writes versions behind it.

    Args:
        client: the official client of the engine.
        index: alias name (validated with :func:`engine_bodies.check_index_name`).
        url: the engine URL without credentials, for messages.
        pruning: Elasticsearch ``sparse_vector`` indexes only: query with token pruning on and this
            config (approximate scores). ``None`` (the default) sends ``"prune": false``: exact scores.
    """

    name: ClassVar[str] = "engine"
    product: ClassVar[str] = "engine"
    client_module: ClassVar[str] = ""

    def __init__(
        self, client: Any, index: str, *, url: str = DEFAULT_URL, pruning: bodies.TokenPruning | None = None
    ) -> None:
        self.client = client
        self.index = bodies.check_index_name(index)
        self.url = url
        self.pruning = pruning
        self._meta: dict[str, Any] | None = None
        self._meta_index: str | None = None
        self._server_info: dict[str, Any] | None = None

    # -- subclass hooks ----------------------------------------------------------------------------
    @classmethod
    def make_client(cls, url: str, auth: tuple[str, str] | None, timeout: float) -> Any:
        raise NotImplementedError

    def parallel_bulk(self, actions: Iterable[dict], *, threads: int, chunk_size: int) -> Iterator[tuple[bool, dict]]:
        """The client's ``helpers.parallel_bulk`` with per-item results (never raising on item errors).

        Both client packages ship the same ``helpers`` module (``<client_module>.helpers``).
        """
        helpers = require(f"{self.client_module}.helpers", "engines")
        return helpers.parallel_bulk(
            self.client,
            actions,
            thread_count=threads,
            chunk_size=chunk_size,
            max_chunk_bytes=MAX_CHUNK_BYTES,
            raise_on_error=False,
            raise_on_exception=False,
        )

    def scan(self, index: str, body: Mapping[str, object]) -> Iterator[dict]:
        """Every hit of ``body`` in ``index`` (the client's ``helpers.scan``)."""
        helpers = require(f"{self.client_module}.helpers", "engines")
        return helpers.scan(self.client, query=dict(body), index=index, size=5000)

    @property
    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions that mean the engine could not be reached (worth a retry)."""
        raise NotImplementedError

    @property
    def not_found_error(self) -> type[BaseException]:
        raise NotImplementedError

    @property
    def api_error(self) -> type[BaseException]:
        raise NotImplementedError

    def read_server_info(self) -> dict[str, Any]:
        """``GET /`` (a subclass turns its client's product errors into clear messages here)."""
        return dict(self.client.info())

    def check_server(self, info: Mapping[str, Any]) -> None:
        """Raise :class:`UsageError` when the server is not a supported version of this engine."""
        raise NotImplementedError

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        url: str | None,
        index: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        pruning: bodies.TokenPruning | None = None,
    ) -> SearchEngineBackend:
        """Build the client for ``url`` (credentials may be in the URL: ``https://user:pass@host:9200``).

        Nothing is sent until the first call. ``pruning``: see the class docstring.

        Raises:
            MissingExtraError: the engine's client package is not installed.
            UsageError: bad URL or index name.
        """
        clean, auth = split_credentials(url or DEFAULT_URL)
        return cls(cls.make_client(clean, auth, timeout), index, url=clean, pruning=pruning)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def __enter__(self) -> SearchEngineBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- error translation -------------------------------------------------------------------------
    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn client exceptions into one-line sparsearch errors naming the URL and the fix."""
        try:
            yield
        except SparsearchError:
            raise
        except Exception as error:
            translated = self.translate_error(error) or self._generic_error(error, action)
            if translated is None:
                raise
            raise translated from error

    def translate_error(self, error: Exception) -> SparsearchError | None:
        """Hook: a clearer error for an exception of this engine's client (``None``: the generic one)."""
        return None

    def _generic_error(self, error: Exception, action: str) -> SparsearchError | None:
        if isinstance(error, self.unavailable_errors):
            return EngineUnavailableError(
                f"cannot reach {self.product} at {self.url} while trying to {action} ({_short(error, 200)}); "
                "check that it is running and that --url is right"
            )
        if isinstance(error, self.api_error) and "maxClauseCount" in str(error):
            return UsageError(
                f"the query has more tokens than {self.product} accepts in one query ({_short(error, 200)}): "
                "shorten it, drop its lowest-weight tokens, or raise indices.query.bool.max_clause_count"
            )
        if isinstance(error, self.api_error):
            return bodies.EngineError(f"{self.product} at {self.url} refused to {action}: {_short(error)}")
        return None

    # -- server ------------------------------------------------------------------------------------
    def server_info(self) -> dict[str, Any]:
        """``GET /`` of the server (cached), checked with :meth:`check_server`."""
        if self._server_info is None:
            with self.errors("read the server version"):
                info = self.read_server_info()
            self.check_server(info)
            self._server_info = info
        return self._server_info

    @property
    def server_version(self) -> str:
        return str(self.server_info()["version"]["number"])

    def health(self) -> dict[str, object]:
        """Cluster status, engine version and, when the alias exists, its live index and document count."""
        info = self.server_info()
        with self.errors("read the cluster health"):
            health = self.client.cluster.health()
        result: dict[str, object] = {
            "engine": self.name,
            "url": self.url,
            "version": info["version"]["number"],
            "cluster_status": health["status"],
            "nodes": health["number_of_nodes"],
            "index": self.index,
        }
        live = self.live_indexes()
        if live:
            result["live_index"] = live[0]
            result["documents"] = self.count()
        return result

    def index_stats(self) -> dict[str, object]:
        """For evaluation reports: primary store bytes of the live index, its name and the engine version."""
        live = self.live_indexes()
        if not live:
            self.meta()  # raises IndexNotFoundError
        with self.errors(f"read the statistics of {self.index}"):
            stats = self.client.indices.stats(index=live[0], metric="store")
        return {
            "bytes": int(stats["_all"]["primaries"]["store"]["size_in_bytes"]),
            "live_index": live[0],
            "engine_version": self.server_version,
        }

    # -- versions and alias ------------------------------------------------------------------------
    def live_indexes(self) -> list[str]:
        """Concrete indexes the alias points at (one after a sparsearch build; empty if no alias).

        Raises:
            IndexFormatError: ``index`` is a concrete index, not an alias written by sparsearch.
        """
        self.server_info()  # the first call checks that the server is a supported version of this engine
        with self.errors(f"read alias {self.index}"):
            if self.client.indices.exists_alias(name=self.index):
                return sorted(self.client.indices.get_alias(name=self.index))
            if self.client.indices.exists(index=self.index):
                raise IndexFormatError(
                    f"{self.index} on {self.url} is a plain index, not an alias built by sparsearch; choose another "
                    "--index name (sparsearch builds versioned indexes behind an alias of that name)"
                )
        return []

    def versions(self) -> dict[str, dict[str, Any]]:
        """Every version index of this alias -> its sparsearch ``_meta`` entry (``{}`` if it has none)."""
        with self.errors(f"list the versions of {self.index}"):
            mappings = self.client.indices.get_mapping(index=f"{self.index}-v*")
        found = {}
        for name, value in dict(mappings).items():
            if bodies.parse_version(self.index, name) is not None:
                found[name] = dict(value.get("mappings", {}).get("_meta", {}).get(bodies.META_KEY, {}))
        return dict(sorted(found.items()))

    def next_version_name(self) -> str:
        numbers = [bodies.parse_version(self.index, name) or 0 for name in self.versions()]
        return bodies.version_name(self.index, max(numbers, default=0) + 1)

    def create_version(
        self,
        name: str,
        fingerprint: EncoderFingerprint,
        *,
        shards: int = 1,
        replicas: int | None = None,
        field_type: str = "rank_features",
        job: Mapping[str, object] | None = None,
        dense: Mapping[str, object] | None = None,
    ) -> None:
        """Create an empty version index for a bulk load (refresh disabled, state ``building``);
        ``dense``: the dense model's identity when documents carry window embeddings (hybrid search)."""
        self.check_field_type(field_type)
        extra: dict[str, object] = {"job": dict(job or {})}
        if dense is not None:
            extra["dense"] = dict(dense)
        meta = bodies.build_meta(fingerprint, field_type=field_type, extra=extra)
        body = bodies.build_index_body(
            meta, shards=shards, replicas=replicas, field_type=field_type, bulk_loading=True, dense=dense is not None
        )
        with self.errors(f"create index {name}"):
            self.client.indices.create(index=name, body=body)

    def read_meta(self, index: str) -> dict[str, Any]:
        """The sparsearch ``_meta`` entry of one concrete index."""
        with self.errors(f"read the mapping of {index}"):
            mappings = self.client.indices.get_mapping(index=index)
        value = next(iter(dict(mappings).values()))
        meta = value.get("mappings", {}).get("_meta", {}).get(bodies.META_KEY)
        if not meta:
            raise IndexFormatError(f"{index} on {self.url} has no sparsearch metadata in its mapping's _meta")
        if meta.get("format_version") != bodies.INDEX_FORMAT_VERSION:
            raise IndexFormatError(
                f"{index} has sparsearch index format {meta.get('format_version')!r}; this sparsearch reads format "
                f"{bodies.INDEX_FORMAT_VERSION}: rebuild it with sparsearch index --backend {self.name}"
            )
        return dict(meta)

    def write_meta(self, index: str, meta: Mapping[str, Any]) -> None:
        with self.errors(f"update the metadata of {index}"):
            self.client.indices.put_mapping(index=index, body={"_meta": {bodies.META_KEY: dict(meta)}})

    def finish_version(self, name: str) -> None:
        """Re-enable refreshes, refresh, and mark the version ``complete``."""
        with self.errors(f"finish index {name}"):
            self.client.indices.put_settings(index=name, body=bodies.build_live_settings())
            self.client.indices.refresh(index=name)
        meta = self.read_meta(name)
        meta["state"] = bodies.STATE_COMPLETE
        self.write_meta(name, meta)

    def swap_alias(self, new_index: str) -> list[str]:
        """Point the alias at ``new_index`` only, in one atomic ``_aliases`` request.

        Returns:
            The indexes the alias pointed at before.
        """
        old = [name for name in self.live_indexes() if name != new_index]
        with self.errors(f"move alias {self.index} to {new_index}"):
            self.client.indices.update_aliases(body=bodies.build_alias_swap(self.index, new_index, old))
        self._meta = None
        return old

    def prune_versions(self, keep_old: int) -> list[str]:
        """Delete versions not behind the alias, keeping the ``keep_old`` newest of them.

        A version that is still building is pruned like the others (a resumable build is found by
        :func:`sparsearch.jobs.build_engine.index_corpus` before it creates a new version, never after).

        Returns:
            The deleted index names.
        """
        if keep_old < 0:
            raise UsageError(f"--keep-old must be >= 0 (got {keep_old})")
        live = set(self.live_indexes())
        old = [name for name in self.versions() if name not in live]
        doomed = old[: max(len(old) - keep_old, 0)]
        for name in doomed:
            self.delete_index(name)
        return doomed

    def delete_index(self, name: str) -> None:
        with self.errors(f"delete index {name}"):
            self.client.indices.delete(index=name, ignore_unavailable=True)

    def drop(self) -> list[str]:
        """Delete the alias and every version behind it; returns the deleted indexes."""
        names = sorted(set(self.versions()) | set(self.live_indexes()))
        for name in names:
            self.delete_index(name)
        self._meta = None
        return names

    def refresh(self, index: str | None = None) -> None:
        with self.errors("refresh"):
            self.client.indices.refresh(index=index or self.index)

    def check_field_type(self, field_type: str) -> None:
        """Raise :class:`UsageError` unless this server can index and query ``field_type``."""
        if field_type != "rank_features":
            raise UsageError(f"{self.product} supports field type 'rank_features' only (got {field_type!r})")

    # -- metadata of the live index ----------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """The sparsearch ``_meta`` of the live index (cached until the alias moves).

        Raises:
            IndexNotFoundError: no alias of that name on the engine.
        """
        if self._meta is None:
            live = self.live_indexes()
            if not live:
                raise IndexNotFoundError(
                    f"no index {self.index!r} on {self.product} at {self.url}; build one with: sparsearch index "
                    f"--backend {self.name} --url {self.url} --index {self.index} --data PATH"
                )
            self._meta = self.read_meta(live[0])
            self._meta_index = live[0]
        return self._meta

    def _check_answered_by(self, query: EncodedQuery, response: Mapping[str, Any]) -> None:
        """Reindexing may move the alias to a version built by another encoder while this backend
        is open: hits name their concrete index, so a new one re-reads the metadata and refuses
        queries whose encoder no longer matches (instead of silently mixing vocabularies)."""
        answered = {hit.get("_index") for hit in response["hits"]["hits"]}  # type: ignore[index]
        if answered and answered != {self._meta_index}:
            self._meta = None
            self.fingerprint.check_compatible(
                query.encoder, where=f"{self.product} index {self.index} (now {sorted(answered)[0]})"
            )

    @property
    def fingerprint(self) -> EncoderFingerprint:
        return EncoderFingerprint.from_dict(self.meta()["encoder"])

    @property
    def field_type(self) -> str:
        return str(self.meta().get("field_type", "rank_features"))

    # -- search ------------------------------------------------------------------------------------
    def _query_body(self, query: EncodedQuery, top_k: int, *, with_dense: bool = False) -> dict[str, object] | None:
        self.fingerprint.check_compatible(query.encoder, where=f"{self.product} index {self.index}")
        if top_k < 1:
            raise UsageError(f"top_k must be at least 1 (got {top_k})")
        if not bodies.query_clauses(query.weights):
            return None
        return bodies.build_query(
            query.weights, top_k, field_type=self.field_type, pruning=self.pruning, with_dense=with_dense
        )

    def search(self, query: EncodedQuery, top_k: int = 10) -> list[Hit]:
        """Top-``top_k`` by the dot product of stored (9-significant-bit) weights; see :mod:`engine_bodies`."""
        body = self._query_body(query, top_k)
        if body is None:
            return []
        with self.errors(f"search {self.index}"):
            response = self.client.search(index=self.index, body=body)
        hits = [Hit(doc_id, score) for doc_id, score in bodies.parse_hits(response)]
        self._check_answered_by(query, response)
        return hits

    def search_batch(self, queries: Sequence[EncodedQuery], top_k: int = 10) -> list[list[Hit]]:
        """One ``_msearch`` request for all queries; hit lists in query order."""
        return [
            [Hit(doc_id, score) for doc_id, score in bodies.parse_hits(response)] if response is not None else []
            for response in self._msearch(queries, top_k)
        ]

    def _msearch(
        self, queries: Sequence[EncodedQuery], top_k: int, *, with_dense: bool = False
    ) -> list[Mapping[str, Any] | None]:
        """One ``_msearch`` request for all queries: each query's response, in query order (``None`` for a
        query without a token, which is not sent).

        Raises:
            EngineError: the engine refused one of the queries.
        """
        request_bodies = [self._query_body(query, top_k, with_dense=with_dense) for query in queries]
        sent = [body for body in request_bodies if body is not None]
        responses: list[Mapping[str, Any]] = []
        if sent:
            with self.errors(f"search {self.index}"):
                responses = list(self.client.msearch(body=bodies.build_msearch(self.index, sent))["responses"])
        answers = iter(responses)
        results: list[Mapping[str, Any] | None] = []
        for query, body in zip(queries, request_bodies, strict=True):
            if body is None:
                results.append(None)
                continue
            response = next(answers)
            if "error" in response:
                raise bodies.EngineError(f"{self.product} refused a query of the batch: {response['error']}")
            self._check_answered_by(query, response)
            results.append(response)
        return results

    # -- hybrid search (client-side fusion, docs/engines.md#hybrid-search) ---------------------------
    @property
    def dense_identity(self) -> dict | None:
        """The dense model that embedded the live index's documents (built with ``--dense``), else ``None``."""
        dense = self.meta().get("dense")
        return dict(dense) if dense else None

    def search_candidates(self, queries: Sequence[EncodedQuery], top_k: int) -> list[list[tuple[Hit, Any]]]:
        """Hybrid search's first stage: each query's sparse top ``top_k`` (one ``_msearch``), each hit
        with its window embeddings from ``_source``, float16 (n_windows, 384).

        The engine cannot fuse itself: its ``hybrid`` query and normalization processor come with the
        neural-search plugin (and a dense field with the k-NN plugin), which this deployment does not
        assume; the fusion runs in :class:`~sparsearch.hybrid.HybridBackend`.

        Raises:
            UsageError: the index stores no dense vectors.
        """
        if not self.dense_identity:
            raise UsageError(
                f"{self.product} index {self.index} stores no dense vectors: rebuild it with sparsearch index --dense"
            )
        return [
            [(Hit(doc_id, score), windows) for doc_id, score, windows in bodies.parse_dense_hits(response)]
            if response is not None
            else []
            for response in self._msearch(queries, top_k, with_dense=True)
        ]

    # -- documents ---------------------------------------------------------------------------------
    def count(self, index: str | None = None) -> int:
        """Documents in the live index (or in the concrete ``index``)."""
        with self.errors(f"count {index or self.index}"):
            return int(self.client.count(index=index or self.index)["count"])

    def get_documents(self, doc_ids: Sequence[str]) -> list[Document | None]:
        if not doc_ids:
            return []
        with self.errors(f"fetch documents from {self.index}"):
            response = self.client.mget(
                index=self.index,
                body={"docs": [{"_id": doc_id, "_source": ["doc_id", "title", "text"]} for doc_id in doc_ids]},
            )
        documents: list[Document | None] = []
        for found in response["docs"]:
            if not found.get("found"):
                documents.append(None)
                continue
            source = found["_source"]
            documents.append(Document(doc_id=source["doc_id"], title=source.get("title", ""), text=source["text"]))
        return documents

    def document_vector(self, doc_id: str) -> SparseVector:
        """The stored ``token -> weight`` map of one document as sent (the engine scores its 9-bit truncation)."""
        with self.errors(f"fetch document {doc_id}"):
            found = self.client.get(index=self.index, id=doc_id)
        return bodies.parse_features(found["_source"].get(bodies.FEATURES_FIELD, {}))

    def iter_doc_ids(self, index: str | None = None) -> Iterator[str]:
        """Every ``_id`` of an index (scroll, no sources)."""
        with self.errors(f"list the documents of {index or self.index}"):
            for hit in self.scan(index or self.index, {"query": {"match_all": {}}, "_source": False}):
                yield hit["_id"]

    def upsert(
        self,
        documents: Sequence[Document],
        vectors: Sequence[SparseVector],
        *,
        dense: Any = None,  # noqa: ANN401
    ) -> None:
        """Index documents into the live index (``_id`` = ``doc_id``: existing ones are replaced), then refresh.

        Args:
            dense: the documents' :class:`~sparsearch.encoders.dense.DenseWindows`; required by an
                index with dense vectors (built with ``--dense``), refused by one without.

        Raises:
            EngineError: some documents were rejected (their ids and reasons are in the message).
            UsageError: ``dense`` missing (or given) where the index does (not) store dense vectors.
        """
        from sparsearch.backends.engines.bulk import bulk_load

        if len(documents) != len(vectors):
            raise ValueError(f"{len(documents)} documents but {len(vectors)} vectors")
        ids = [d.doc_id for d in documents]
        if len(set(ids)) != len(ids):
            raise UsageError("duplicate doc_id within one upsert batch")
        target = self.live_indexes()
        if not target:
            self.meta()  # raises IndexNotFoundError
        if (dense is None) != (self.dense_identity is None):
            raise UsageError(
                f"{self.product} index {self.index} stores dense vectors: upsert needs the documents' dense windows"
                if dense is None
                else f"{self.product} index {self.index} stores no dense vectors: upsert without dense"
            )
        windows = [dense.document(row) for row in range(dense.n_docs)] if dense is not None else None
        actions = bodies.iter_bulk_actions(target[0], documents, vectors, windows)
        result = bulk_load(self, actions)
        self.refresh()
        if result.failures:
            shown = "; ".join(f"{f.doc_id}: {f.error}" for f in result.failures[:5])
            raise bodies.EngineError(f"{len(result.failures)} of {len(documents)} documents were rejected: {shown}")

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents by id from the live index; returns how many existed."""
        if not doc_ids:
            return 0
        target = self.live_indexes()
        if not target:
            self.meta()
        lines = [{"delete": {"_index": target[0], "_id": doc_id}} for doc_id in doc_ids]
        with self.errors(f"delete documents from {self.index}"):
            response = self.client.bulk(body=lines, refresh="wait_for")
        deleted = 0
        for item in response["items"]:
            status = item["delete"]["status"]
            if status == 200:
                deleted += 1
            elif status != 404:
                raise bodies.EngineError(f"deleting {item['delete']['_id']!r} failed: {item['delete'].get('error')}")
        return deleted

    # -- the encoder -------------------------------------------------------------------------------
    def store_encoder(self, directory: Path, fingerprint: EncoderFingerprint) -> bool:
        """Copy a saved encoder directory into :data:`ENCODER_INDEX` (idempotent).

        Returns:
            ``False`` when it is larger than :data:`MAX_STORED_ENCODER_BYTES` and was not stored.
        """
        files = sorted(p for p in Path(directory).rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in files)
        if size > MAX_STORED_ENCODER_BYTES:
            log.warning("encoder %s is %d bytes: not stored in the engine; search with --model", fingerprint.name, size)
            return False
        document = {
            "fingerprint": fingerprint.to_dict(),
            "bytes": size,
            "files": {p.relative_to(directory).as_posix(): base64.b64encode(p.read_bytes()).decode() for p in files},
        }
        with self.errors(f"store the encoder in {ENCODER_INDEX}"):
            if not self.client.indices.exists(index=ENCODER_INDEX):
                with contextlib.suppress(self.api_error):  # another job may create it at the same moment
                    self.client.indices.create(
                        index=ENCODER_INDEX,
                        body={
                            "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
                            "mappings": {"dynamic": False, "properties": {"fingerprint": {"type": "object"}}},
                        },
                    )
            self.client.index(index=ENCODER_INDEX, id=encoder_key(fingerprint), body=document, refresh="wait_for")
        return True

    def fetch_encoder(self, fingerprint: EncoderFingerprint, cache_dir: Path | None = None) -> Path | None:
        """The local directory of the stored encoder with this fingerprint (downloaded once into
        ``<cache>/encoders/<key>``), or ``None`` if the engine does not hold it."""
        key = encoder_key(fingerprint)
        target = (cache_dir or default_cache_dir()) / "encoders" / key
        if target.is_dir():
            return target
        with self.errors(f"read the encoder from {ENCODER_INDEX}"):
            try:
                found = self.client.get(index=ENCODER_INDEX, id=key)
            except self.not_found_error:  # no encoder index, or not this encoder
                return None
        tmp = target.with_name(f".{key}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for relative, data in found["_source"]["files"].items():
            path = tmp / relative
            if ".." in Path(relative).parts:
                raise IndexFormatError(f"stored encoder {key} has an unsafe file name {relative!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(data))
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
        return target


def _short(error: BaseException, limit: int = 400) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + " ..."


ClientFactory = Callable[[str, tuple[str, str] | None, float], Any]
