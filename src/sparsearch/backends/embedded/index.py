"""The embedded engine: an inverted index in a directory, searched in-process.

Directory layout::

    INDEX/
      manifest.json     the current commit: its segments, their tombstones, the encoder folder, counts
      encoder/          the encoder that built the index (config + IDF table)
      seg-000001/       immutable segments (:mod:`~sparsearch.backends.embedded.segment`), each with
      seg-000004/       its postings, ids, stored text and tombstone files
      .lock             the writer lock (:mod:`~sparsearch.backends.embedded.lock`)

**Builds** (:class:`~sparsearch.backends.embedded.writer.IndexWriter`) write one segment.

**Updates** work the way search engines do them (Lucene's segments, deletes and merges):
:meth:`EmbeddedIndex.upsert` writes the new documents as a small new segment and tombstones the old
copies of replaced ids; :meth:`EmbeddedIndex.delete` only writes tombstones. A merge
(:mod:`~sparsearch.backends.embedded.merge`) later rewrites small segments, or a segment with many
tombstones, into one, dropping deleted documents and the terms only they used; it runs in a
background thread after a commit (``auto_merge``), and :meth:`EmbeddedIndex.merge` forces one.

**Commits and refresh**: a writer holds the index's writer lock (one writer at a time, across
processes), writes and flushes its files, then replaces ``manifest.json`` atomically and flushes the
folder; the call returns only then, so an acknowledged update survives a crash or a power loss. The
updated object searches the new commit at once; other :class:`EmbeddedIndex` objects (another API
worker, another process) see it from their next :meth:`EmbeddedIndex.refresh` (the API calls it
before each request; it costs one read of the small manifest). Files no commit names any more are
removed by the next writer; leftovers of killed writers are removed at open and by every writer.

**Search** reads a :class:`~sparsearch.backends.embedded.snapshot.Snapshot` taken when the call
starts and never waits for a writer. It is exact: each segment's compiled kernels
(:mod:`sparsearch.backends.embedded.kernels`) give its exact top k of live documents, and the lists
are merged; order is score descending, then ``doc_id`` ascending.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from sparsearch._files import directory_bytes, fsync_dir
from sparsearch.backends.embedded.cleanup import remove_stale_builds, remove_unreferenced
from sparsearch.backends.embedded.commit import (
    MERGE_TMP,
    SEGMENT_TMP,
    Commit,
    SegmentEntry,
    build_manifest,
    missing_index_message,
    publish,
    read_commit,
    read_raw,
)
from sparsearch.backends.embedded.lock import LOCK_FILE, MERGE_LOCK_FILE, file_lock
from sparsearch.backends.embedded.merge import pick_all, pick_merge, write_merged
from sparsearch.backends.embedded.postings import PostingsBuilder, naming_bad_weights
from sparsearch.backends.embedded.segment import SegmentReader, SegmentView, segment_name, write_deletes, write_segment
from sparsearch.backends.embedded.snapshot import (
    ChunkRunner,
    ScratchBuffers,
    Snapshot,
    hit_lists,
    run_serially,
)
from sparsearch.encoders.dense import DenseWindows
from sparsearch.errors import IndexExistsError, IndexFormatError, IndexNotFoundError, UsageError
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, Hit, SparseVector

log = logging.getLogger(__name__)

_OPEN_ATTEMPTS = 20
"""A reader retries this many times when a writer removes files between its read of the manifest and
its opening of them (each retry reads the newer manifest)."""


def check_index_target(path: str | Path, *, overwrite: bool) -> None:
    """Raise :class:`IndexExistsError` if ``path`` exists and may not be replaced."""
    if Path(path).exists() and not overwrite:
        raise IndexExistsError(f"{path} already exists; pass --overwrite to replace it")


BATCH_CHUNK = 256
"""Most queries per compiled call in a threaded batch (a short batch is split evenly over the threads):
each thread maps its range's tokens, runs the kernel and looks up the hits' ids, so one thread's Python
part overlaps another's kernel (see docs/engines.md, "Batches"). Each range costs a hand-off to the
pool: at 10k synthetic documents on 2 cores (9 us a query in the kernel), 300 queries served 76-79k
queries/s in ranges of 32 and 88k in two of 150; in a batch of 3,000, ranges of 128, 256 and 1,500 were
within noise of each other (89-97k)."""


class EmbeddedIndex:
    """An opened embedded index (see the module docstring). Implements ``SearchBackend``.

    Args:
        path: the index directory.
        auto_merge: run the merge policy in a background thread after this object's commits.
    """

    name = "embedded"

    def __init__(self, path: Path, *, auto_merge: bool = True) -> None:
        self.path = path
        self.auto_merge = auto_merge
        self._scratch = ScratchBuffers()
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._readers: dict[tuple[str, int, int], SegmentReader] = {}
        self._swap_lock = threading.Lock()
        self._merge_thread: threading.Thread | None = None
        self._merge_guard = threading.Lock()
        self._snapshot = self._load()
        self._clean_if_idle()

    @classmethod
    def open(cls, path: str | Path, *, auto_merge: bool = True) -> EmbeddedIndex:
        """Open the index at ``path`` (arrays are memory-mapped)."""
        return cls(Path(path), auto_merge=auto_merge)

    # -- loading commits ---------------------------------------------------------------------------
    @staticmethod
    def _reader_key(directory: Path) -> tuple[str, int, int]:
        stat = os.stat(directory)
        return directory.name, stat.st_dev, stat.st_ino  # a rebuilt index may reuse a name: not its inode

    def _open_commit(self, commit: Commit) -> Snapshot:
        readers: dict[tuple[str, int, int], SegmentReader] = {}
        views = []
        for entry in commit.segments:
            key = self._reader_key(self.path / entry.name)
            reader = self._readers.get(key) or SegmentReader(self.path / entry.name, entry.n_docs)
            readers[key] = reader
            views.append(SegmentView.open(reader, entry.deletes))
        self._readers = readers  # readers of dropped segments live on in older snapshots only
        return Snapshot(commit, views)

    def _remember(self, views: Sequence[SegmentView]) -> None:
        """Keep the readers of ``views`` (a commit this object wrote) for the next commits."""
        self._readers = {self._reader_key(view.reader.directory): view.reader for view in views}

    def _load(self) -> Snapshot:
        """Open the current commit, retrying when a concurrent writer removes its files meanwhile."""
        for _ in range(_OPEN_ATTEMPTS):
            commit = read_commit(self.path)
            try:
                return self._open_commit(commit)
            except FileNotFoundError as error:
                try:
                    unchanged = read_raw(self.path) == commit.raw
                except IndexNotFoundError:
                    raise IndexNotFoundError(missing_index_message(self.path)) from error
                if unchanged:  # nobody moved it: the commit names a file that is not there
                    raise IndexFormatError(f"{self.path}: damaged index data ({error}); rebuild the index") from error
            except (OSError, ValueError, KeyError) as error:
                raise IndexFormatError(f"{self.path}: damaged index data ({error}); rebuild the index") from error
        raise IndexFormatError(f"{self.path} changed {_OPEN_ATTEMPTS} times while being opened; try again")

    def _install(self, snapshot: Snapshot) -> None:
        with self._swap_lock:
            self._snapshot = snapshot

    def refresh(self) -> bool:
        """Load the latest commit if another writer published one (Lucene's ``maybeRefresh``).

        Returns:
            Whether this object now searches a newer commit.

        Raises:
            IndexNotFoundError: the index is gone (its manifest is missing).
            IndexFormatError: the new commit cannot be read.
        """
        if read_raw(self.path) == self._snapshot.commit.raw:
            return False
        with self._swap_lock:  # read and install together, so a slow refresh never installs an older commit
            if read_raw(self.path) == self._snapshot.commit.raw:
                return False
            self._snapshot = self._load()
            return True

    def has_changed(self) -> bool:
        """Whether the index on disk holds a commit this object does not search yet (one read of the
        manifest). Raises :class:`IndexNotFoundError` when the index is gone."""
        return read_raw(self.path) != self._snapshot.commit.raw

    def pinned(self) -> EmbeddedIndex:
        """This index fixed at its current commit: reads (searches, documents, explanations) through the
        returned object all see that commit, whatever writers do meanwhile. For reading only."""
        pinned = copy.copy(self)
        pinned.refresh = lambda: False  # type: ignore[method-assign] - a pinned view never moves
        return pinned

    def snapshot(self) -> Snapshot:
        """The commit this object searches now (searches and reads take one and use only it)."""
        return self._snapshot

    def _clean_if_idle(self) -> None:
        """Remove crash leftovers when no writer is at work (a read-only index is left as it is)."""
        try:
            with file_lock(self.path / LOCK_FILE, blocking=False) as held:
                if held:
                    removed = remove_unreferenced(self.path, read_commit(self.path))
                    if removed:
                        log.info("%s: removed leftovers of interrupted writers: %s", self.path, ", ".join(removed))
            remove_stale_builds(self.path)
        except OSError as error:  # read-only, or owned by another user: searching still works
            log.debug("%s: leftovers not checked (%s)", self.path, error)

    # -- metadata ----------------------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        return self._snapshot.manifest

    @property
    def fingerprint(self) -> EncoderFingerprint:
        return self._snapshot.fingerprint

    @property
    def encoder_dir(self) -> Path:
        return self.path / self._snapshot.commit.encoder_dir

    @property
    def doc_ids(self) -> list[str]:
        """Live document ids."""
        return self._snapshot.doc_ids

    def _only_segment(self) -> SegmentReader:
        views = self._snapshot.views
        if len(views) != 1 or len(views[0].deleted):
            raise UsageError(f"{self.path} has {len(views)} segments or deletions; merge it first (index.merge())")
        return views[0].reader

    @property
    def postings(self):  # noqa: ANN201 - Postings of a single-segment index (tools and benchmarks)
        return self._only_segment().postings

    @property
    def term_index(self) -> dict[str, int]:
        return self._only_segment().term_index

    @property
    def doc_id_rank(self) -> np.ndarray:
        return self._only_segment().doc_id_rank

    def count(self) -> int:
        return self._snapshot.count()

    def health(self) -> dict[str, object]:
        snapshot = self._snapshot
        return {
            "engine": "embedded",
            "path": str(self.path),
            "documents": snapshot.count(),
            "generation": snapshot.commit.number,
        }

    def stats(self) -> dict[str, object]:
        """Manifest counts plus bytes on disk."""
        return {**self._snapshot.manifest, "bytes": directory_bytes(self.path)}

    # -- search ------------------------------------------------------------------------------------
    def _query_weights(self, query: EncodedQuery) -> dict[str, float]:
        self.fingerprint.check_compatible(query.encoder, where=f"index {self.path}")
        return {token: weight for token, weight in query.weights.items() if weight > 0}

    def search(self, query: EncodedQuery, top_k: int = 10) -> list[Hit]:
        """Exact top-``top_k`` by dot product; documents that share no token are never returned."""
        return self._search_chunk([query], top_k)[0]

    def warm_up(self) -> None:
        """Pay searching's one-time cost now rather than in the first query: compile the search kernel
        for this index's array types, or load it from numba's disk cache (under a second once cached;
        tens of seconds on a new install). An empty index has nothing to compile."""
        for view in self._snapshot.views:
            if view.reader.compressed.vocab and view.n_live:
                token = view.reader.compressed.vocab[0]
                self.search(EncodedQuery({token: 1.0}, self.fingerprint), 1)
                return

    def search_batch(self, queries: Sequence[EncodedQuery], top_k: int = 10, threads: int = 1) -> list[list[Hit]]:
        """One hit list per query, in order (see :meth:`search_batch_ids`)."""
        return hit_lists(*self.search_batch_ids(queries, top_k, threads))

    def search_batch_ids(
        self, queries: Sequence[EncodedQuery], top_k: int = 10, threads: int = 1
    ) -> tuple[list[list[str]], list[list[float]]]:
        """The exact top ``top_k`` of each query as two parallel lists, without :class:`Hit` objects:
        per query its doc ids and their scores, best first (for bulk readers that need no more).

        The batch is flattened once on the calling thread; with ``threads > 1``, ranges of at most
        :data:`BATCH_CHUNK` queries go to that many kept threads, each mapping its range's tokens to
        term ids, running the compiled kernel (which releases the GIL) and looking up its hits' ids.
        """
        snapshot = self._snapshot  # every range reads the same commit
        return self._ranked(queries, top_k, snapshot, self._runner(threads, len(queries)))

    def _runner(self, threads: int, n_queries: int) -> ChunkRunner:
        """How to run a batch of ``n_queries`` on ``threads`` threads (see :data:`ChunkRunner`)."""
        if threads <= 1 or n_queries < 2:
            return run_serially
        pool = self._pool(threads)
        size = max(1, min(BATCH_CHUNK, -(-n_queries // threads)))

        def run(search_range: Callable, n: int) -> Iterator:
            return pool.map(lambda lo: search_range(lo, min(lo + size, n)), range(0, n, size))

        return run

    def _pool(self, threads: int) -> ThreadPoolExecutor:
        """This index's search threads for batches on ``threads`` threads (created on first use: their
        scratch buffers and numba's per-thread state are then paid once, not per batch)."""
        with self._swap_lock:
            pool = self._pools.get(threads)
            if pool is None:
                pool = self._pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="sparsearch-search")
            return pool

    def _ranked(
        self, queries: Sequence[EncodedQuery], top_k: int, snapshot: Snapshot, run: ChunkRunner = run_serially
    ) -> tuple[list[list[str]], list[list[float]]]:
        if top_k < 1:
            raise UsageError(f"top_k must be at least 1 (got {top_k})")
        where = f"index {self.path}"
        for query in queries:
            snapshot.fingerprint.check_compatible(query.encoder, where=where)
        return snapshot.ranked([query.weights for query in queries], top_k, self._scratch, run)

    def _search_chunk(
        self, queries: Sequence[EncodedQuery], top_k: int, snapshot: Snapshot | None = None
    ) -> list[list[Hit]]:
        return hit_lists(*self._ranked(queries, top_k, snapshot or self._snapshot))

    @property
    def dense_identity(self) -> dict | None:
        """The dense model that embedded the documents (indexes built with ``--dense``), else ``None``."""
        return self._snapshot.manifest.get("dense")

    def search_candidates(
        self, queries: Sequence[EncodedQuery], top_k: int, dense_queries: np.ndarray | None = None
    ) -> list[list[tuple[Hit, np.ndarray]]]:
        """Hybrid search's first stage, all read from one commit: each query's candidates with their
        stored window embeddings, float16 (n_windows, 384).

        Args:
            queries: the encoded queries.
            top_k: N, candidates from each side.
            dense_queries: ``None``: the exact sparse top N (as :meth:`search_batch`). Else float32
                (n_queries, 384) L2-normalised query embeddings: the sparse top N, then the documents of
                the exact dense top N (:meth:`dense_search`) not among them, each with its exact sparse
                score (0 when it shares no token), so up to 2N candidates.

        Raises:
            UsageError: the index stores no dense vectors (built without ``--dense``).
        """
        snapshot = self._snapshot
        if "dense" not in snapshot.manifest:
            raise UsageError(f"index {self.path} stores no dense vectors: rebuild it with sparsearch index --dense")
        hit_lists = self._search_chunk(queries, top_k, snapshot)
        if dense_queries is not None:
            if len(dense_queries) != len(queries):
                raise ValueError(f"{len(queries)} queries but {len(dense_queries)} query embeddings")
            dense_lists = snapshot.dense_search(dense_queries, top_k)
            for query, hits, dense_hits in zip(queries, hit_lists, dense_lists, strict=True):
                seen = {hit.doc_id for hit in hits}
                extra = [hit.doc_id for hit in dense_hits if hit.doc_id not in seen]
                scores = snapshot.sparse_scores(self._query_weights(query), extra)
                hits.extend(Hit(doc_id, float(score)) for doc_id, score in zip(extra, scores, strict=True))
        return [[(hit, snapshot.dense_windows(hit.doc_id)) for hit in hits] for hits in hit_lists]

    def dense_search(self, embeddings: np.ndarray, top_k: int) -> list[list[Hit]]:
        """Exact exhaustive dense search over the live documents' stored windows (best window per
        document); see :meth:`Snapshot.dense_search` for shapes and memory.

        Raises:
            UsageError: the index stores no dense vectors.
        """
        snapshot = self._snapshot
        if "dense" not in snapshot.manifest:
            raise UsageError(f"index {self.path} stores no dense vectors: rebuild it with sparsearch index --dense")
        return snapshot.dense_search(embeddings, top_k)

    def postings_touched(self, query: EncodedQuery) -> int:
        """Number of postings the query reads (its cost on this index)."""
        return self._snapshot.postings_touched(self._query_weights(query))

    def explain(self, query: EncodedQuery, doc_id: str) -> dict[str, float]:
        """Per matched query token, its contribution ``q_weight x d_weight`` to ``doc_id``'s score."""
        return self._snapshot.explain(self._query_weights(query), doc_id)

    def document_vector(self, doc_id: str) -> SparseVector:
        """The stored ``token -> weight`` map of one document (a scan of its segment: for tests and tools)."""
        return self._snapshot.document_vector(doc_id)

    def get_documents(self, doc_ids: Sequence[str]) -> list[Document | None]:
        return self._snapshot.get_documents(doc_ids)

    # -- updates -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self) -> Iterator[Snapshot]:
        """Hold the writer lock, with this object on the latest commit and crash leftovers removed."""
        with file_lock(self.path / LOCK_FILE):
            with self._swap_lock:
                self._snapshot = self._load()
            remove_unreferenced(self.path, self._snapshot.commit)
            yield self._snapshot

    def _publish(
        self, base: Snapshot, entries: list[SegmentEntry], views: list[SegmentView], next_segment: int
    ) -> None:
        """Write the manifest of the commit after ``base`` (writer lock held) and search it."""
        draft = Snapshot(base.commit, views)
        n_terms, avg_terms, empty = draft.live_statistics()
        manifest = build_manifest(
            commit=base.commit.number + 1,
            created_at=base.manifest["created_at"],
            encoder=base.manifest["encoder"],
            encoder_dir=base.commit.encoder_dir,
            next_segment=next_segment,
            segments=entries,
            n_terms=n_terms,
            avg_terms_per_doc=avg_terms,
            empty_documents=empty,
            dense=base.manifest.get("dense"),
        )
        publish(self.path, manifest)
        commit = Commit(read_raw(self.path), manifest, tuple(entries))
        self._remember(views)
        self._install(Snapshot(commit, views))
        remove_unreferenced(self.path, commit)

    def _tombstone(
        self, base: Snapshot, entries: list[SegmentEntry], views: list[SegmentView], doc_ids: Sequence[str]
    ) -> int:
        """Mark the live copies of ``doc_ids`` deleted in ``entries``/``views`` (in place); returns how many."""
        found: dict[int, list[int]] = {}
        position = {view.reader.name: i for i, view in enumerate(views)}
        for doc_id in doc_ids:
            located = base.locate(doc_id)
            if located is not None:
                found.setdefault(position[located[0].reader.name], []).append(located[1])
        for i, docs in found.items():
            deleted = np.union1d(views[i].deleted, np.asarray(docs, dtype=np.int32))
            name = write_deletes(views[i].reader.directory, base.commit.number + 1, deleted)
            views[i] = SegmentView.open(views[i].reader, name)
            entries[i] = replace(entries[i], deletes=name, n_deleted=len(deleted))
        return sum(len(docs) for docs in found.values())

    def upsert(
        self,
        documents: Sequence[Document],
        vectors: Sequence[SparseVector],
        *,
        fingerprint: EncoderFingerprint | None = None,
        dense: DenseWindows | None = None,
    ) -> None:
        """Add documents; a document whose ``doc_id`` exists replaces the old one. Searchable by this
        object when the call returns, by others from their next :meth:`refresh`.

        Args:
            fingerprint: the encoder that made ``vectors``; checked against the commit the update
                applies to, under the writer lock (an ``--overwrite`` with another model may have
                committed since the vectors were encoded).
            dense: the documents' window embeddings (:func:`~sparsearch.encoders.dense.embed_documents`);
                required by an index that stores them (built with ``--dense``), refused by one that does not.

        Raises:
            UsageError: a repeated id in the batch, a weight that is not finite and > 0, or ``dense``
                missing (or given) where the index does (not) store dense vectors.
            EncoderMismatchError: ``fingerprint`` is not the index's encoder.
        """
        if len(documents) != len(vectors):
            raise ValueError(f"{len(documents)} documents but {len(vectors)} vectors")
        new_ids = [d.doc_id for d in documents]
        if len(set(new_ids)) != len(new_ids):
            raise UsageError("duplicate doc_id within one upsert batch")
        if not documents:
            return
        builder = PostingsBuilder()
        with naming_bad_weights(documents, 0):
            builder.add_documents(vectors)
        postings = builder.build()
        if dense is not None and dense.n_docs != len(documents):
            raise ValueError(f"{len(documents)} documents but dense windows for {dense.n_docs}")
        with self._writing() as base:
            if fingerprint is not None:
                self.fingerprint.check_compatible(fingerprint, where=f"index {self.path}")
            if (dense is None) != ("dense" not in base.manifest):
                raise UsageError(
                    f"index {self.path} stores dense vectors: upsert needs the documents' dense windows too"
                    if dense is None
                    else f"index {self.path} stores no dense vectors (built without --dense): upsert without dense"
                )
            entries, views = list(base.commit.segments), list(base.views)
            self._tombstone(base, entries, views, new_ids)
            tmp = self.path / SEGMENT_TMP
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            write_segment(tmp, postings, new_ids, [(d.title, d.text) for d in documents], dense=dense)
            name = segment_name(base.commit.next_segment)
            os.rename(tmp, self.path / name)
            fsync_dir(self.path)
            reader = SegmentReader(self.path / name, len(documents))
            views.append(SegmentView.open(reader, None))
            entries.append(SegmentEntry(name, len(documents), postings.nnz, len(postings.vocab)))
            self._publish(base, entries, views, base.commit.next_segment + 1)
        self._after_commit()

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents by id (tombstones); unknown ids are ignored. Returns the number deleted."""
        with self._writing() as base:
            entries, views = list(base.commit.segments), list(base.views)
            deleted = self._tombstone(base, entries, views, list(dict.fromkeys(doc_ids)))
            if deleted:
                self._publish(base, entries, views, base.commit.next_segment)
        if deleted:
            self._after_commit()
        return deleted

    # -- merges ------------------------------------------------------------------------------------
    def merge(self) -> bool:
        """Merge every segment into one, dropping deleted documents and their terms (Lucene's force
        merge); waits for a background merge in progress. Returns whether anything was merged."""
        return self._merge(pick_all, blocking=True)

    def maybe_merge(self) -> bool:
        """Run one merge the policy asks for (:func:`~sparsearch.backends.embedded.merge.pick_merge`),
        unless another merge is running. Returns whether one was committed."""
        return self._merge(pick_merge, blocking=False)

    def wait_for_merges(self) -> None:
        """Block until this object's background merges have finished."""
        thread = self._merge_thread
        if thread is not None:
            thread.join()

    def _merge(self, pick: Callable[[Sequence[SegmentEntry]], list[str]], *, blocking: bool) -> bool:
        with file_lock(self.path / MERGE_LOCK_FILE, blocking=blocking) as held:
            if not held:
                return False
            self.refresh()
            base = self._snapshot
            names = pick(base.commit.segments)
            if not names:
                return False
            chosen = [view for view in base.views if view.reader.name in names]
            tmp = self.path / MERGE_TMP
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                written, mappings = write_merged(tmp, chosen)  # the long part: no writer lock held
                return self._commit_merge(chosen, written.n_docs, written.nnz, written.n_terms, mappings)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def _commit_merge(
        self, chosen: list[SegmentView], n_docs: int, nnz: int, n_terms: int, mappings: list[np.ndarray]
    ) -> bool:
        with self._writing() as base:
            position = {view.reader.name: i for i, view in enumerate(base.views)}
            if any(
                view.reader.name not in position or base.views[position[view.reader.name]].reader is not view.reader
                for view in chosen
            ):
                return False  # an overwrite replaced the segments meanwhile
            # deletions committed while the merge ran, moved to the merged segment's numbering
            late = [
                mapping[np.setdiff1d(base.views[position[view.reader.name]].deleted, view.deleted)]
                for view, mapping in zip(chosen, mappings, strict=True)
            ]
            late_deleted = np.concatenate(late) if late else np.zeros(0, dtype=np.int64)
            first = min(position[view.reader.name] for view in chosen)
            merged_names = {view.reader.name for view in chosen}
            entries = [e for e in base.commit.segments if e.name not in merged_names]
            views = [v for v in base.views if v.reader.name not in merged_names]
            next_segment = base.commit.next_segment
            if n_docs:
                name = segment_name(next_segment)
                os.rename(self.path / MERGE_TMP, self.path / name)
                fsync_dir(self.path)
                reader = SegmentReader(self.path / name, n_docs)
                deletes = (
                    write_deletes(reader.directory, base.commit.number + 1, late_deleted) if len(late_deleted) else None
                )
                insert_at = sum(1 for e in base.commit.segments[:first] if e.name not in merged_names)
                entries.insert(insert_at, SegmentEntry(name, n_docs, nnz, n_terms, deletes, len(late_deleted)))
                views.insert(insert_at, SegmentView.open(reader, deletes))
                next_segment += 1
            self._publish(base, entries, views, next_segment)
        return True

    def _after_commit(self) -> None:
        """Start a background merge when the policy asks for one (at most one thread per object)."""
        if not self.auto_merge or not pick_merge(self._snapshot.commit.segments):
            return
        with self._merge_guard:
            if self._merge_thread is not None and self._merge_thread.is_alive():
                return
            self._merge_thread = threading.Thread(target=self._merge_loop, name=f"merge {self.path.name}", daemon=True)
            self._merge_thread.start()

    def _merge_loop(self) -> None:
        try:
            while self.maybe_merge():
                pass
        except Exception:  # a failed merge leaves the index as it was; the next commit tries again
            log.exception("background merge of %s failed", self.path)
