"""Building an embedded index: :class:`IndexWriter` streams documents into one new segment.

A build writes into a temporary sibling folder ``.NAME.tmp-PID`` (it holds ``.building``'s lock
while it works, so a later build or an opening of the index can tell a killed build's folder from a
running one and remove it).
Then:

* a new index: the folder is renamed to ``NAME`` (atomic; the index appears whole or not at all);
* ``overwrite=True`` over an existing index: under the index's writer lock (the one every API worker
  and script takes to update it), the new segment and encoder are moved into the index folder and a
  new commit names them; the old ones are removed. The index is never absent, a reader sees the old
  index or the new one, and concurrent updates wait instead of being lost in a rename (they apply to
  whichever commit is current when they take the lock);
* ``overwrite=True`` over a folder that is not an index: it is replaced by renames, as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from sparsearch._files import fsync_dir
from sparsearch.backends.embedded.cleanup import BUILDING_FILE, remove_stale_builds, remove_unreferenced
from sparsearch.backends.embedded.codec import CompressedPostings, compress
from sparsearch.backends.embedded.commit import (
    ENCODER_DIR,
    MANIFEST_FILE,
    SegmentEntry,
    build_manifest,
    now,
    publish,
    read_commit,
)
from sparsearch.backends.embedded.concat import Part, Written, write_concatenated
from sparsearch.backends.embedded.docstore import DocStoreWriter
from sparsearch.backends.embedded.index import EmbeddedIndex, check_index_target
from sparsearch.backends.embedded.lock import LOCK_FILE, file_lock
from sparsearch.backends.embedded.postings import PostingsBuilder, naming_bad_weights
from sparsearch.backends.embedded.segment import segment_name, write_ids, write_segment
from sparsearch.encoders.dense import DenseWindows
from sparsearch.errors import IndexFormatError, IndexNotFoundError, UsageError
from sparsearch.types import Document, EncoderFingerprint

_FIRST_SEGMENT = segment_name(1)
_RUNS = ".runs"
RUN_POSTINGS = 32_000_000
"""Postings a build holds in memory before writing them out as a run (about 1 GB at the peak of
sorting them); the runs are concatenated into the segment at the end
(:mod:`sparsearch.backends.embedded.concat`), so a build's memory does not grow with its postings."""


_RUN_ARRAYS = ("window_offsets", "doc_low", "impacts", "impact_scale", "weights")


def _read_run(folder: Path, vocab: list[str], n_docs: int) -> CompressedPostings:
    """A run's postings, read into memory (not mapped: the concatenation lets each run go after use)."""
    arrays = {name: np.load(folder / f"{name}.npy") for name in _RUN_ARRAYS}
    return CompressedPostings(vocab, **arrays, n_docs=n_docs)


class IndexWriter:
    """Builds a new embedded index from a stream of ``(document, vector)`` batches.

    Use as a context manager; the index appears at ``path`` only when the block ends without error::

        with IndexWriter(path, encoder.fingerprint) as writer:
            encoder.save(writer.encoder_dir)
            writer.add(documents, encoder.encode_document([d.full_text for d in documents]))
        index = writer.index

    Args:
        path: target directory.
        fingerprint: the encoder's identity, stored in the manifest.
        overwrite: replace an existing index at ``path`` (else :class:`IndexExistsError`).
        dense: the dense model's identity (:func:`~sparsearch.encoders.dense.dense_model_identity`) when
            the index stores window embeddings for hybrid search; every ``add`` then passes ``dense``.
    """

    def __init__(
        self, path: str | Path, fingerprint: EncoderFingerprint, *, overwrite: bool = False, dense: dict | None = None
    ) -> None:
        self.path = Path(path)
        self.dense = dense
        self._dense_parts: list[DenseWindows] = []
        self.fingerprint = fingerprint
        self.overwrite = overwrite
        check_index_target(self.path, overwrite=overwrite)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}"
        self.index: EmbeddedIndex | None = None
        self._builder = PostingsBuilder()
        self._runs: list[tuple[Path, int, int]] = []  # (folder, documents, terms) of each written run
        self._doc_ids: list[str] = []
        self._seen: set[str] = set()
        self._store: DocStoreWriter | None = None
        self._building = contextlib.ExitStack()
        self.commit: int | None = None
        """The commit number the build was published as (1 for a new index)."""

    @property
    def encoder_dir(self) -> Path:
        return self.tmp / ENCODER_DIR

    def __enter__(self) -> IndexWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_builds(self.path)
        shutil.rmtree(self.tmp, ignore_errors=True)
        # The folder gets its name only once its lock is held, so a cleaner never sees it unlocked.
        staging = self.tmp.with_name(f"{self.tmp.name}.new")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / _FIRST_SEGMENT).mkdir(parents=True)
        self._building.enter_context(file_lock(staging / BUILDING_FILE))
        os.rename(staging, self.tmp)
        self._store = DocStoreWriter(self.tmp / _FIRST_SEGMENT)
        return self

    def add(
        self,
        documents: Sequence[Document],
        vectors: Sequence[Mapping[str, float]],
        dense: DenseWindows | None = None,
    ) -> None:
        """Append documents and their vectors (same length, same order), and with ``dense`` indexes
        their window embeddings (``dense.n_docs == len(documents)``)."""
        if len(documents) != len(vectors):
            raise ValueError(f"{len(documents)} documents but {len(vectors)} vectors")
        self._check_dense(len(documents), dense)
        with naming_bad_weights(documents, self._builder.n_docs):
            self._builder.add_documents(vectors)
        self._add_documents(documents, dense)

    def _check_dense(self, n_docs: int, dense: DenseWindows | None) -> None:
        if (dense is None) != (self.dense is None):
            raise UsageError(
                "this index stores dense vectors: pass dense= to add()"
                if self.dense is not None
                else "dense= given to an IndexWriter created without dense= (the model identity)"
            )
        if dense is not None and dense.n_docs != n_docs:
            raise ValueError(f"{n_docs} documents but dense windows for {dense.n_docs}")

    def add_csr(
        self,
        documents: Sequence[Document],
        indptr: np.ndarray,
        term_ids: np.ndarray,
        weights: np.ndarray,
        vocabulary: Sequence[str],
        dense: DenseWindows | None = None,
    ) -> None:
        """Append documents whose vectors come as CSR arrays (see :meth:`PostingsBuilder.add_csr`);
        the fast path for pre-encoded or generated vectors (no per-token Python objects)."""
        if len(documents) != len(indptr) - 1:
            raise ValueError(f"{len(documents)} documents but {len(indptr) - 1} rows")
        self._check_dense(len(documents), dense)
        with naming_bad_weights(documents, self._builder.n_docs):
            self._builder.add_csr(indptr, term_ids, weights, vocabulary)
        self._add_documents(documents, dense)

    def _add_documents(self, documents: Sequence[Document], dense: DenseWindows | None) -> None:
        if self._store is None:
            raise UsageError("use IndexWriter as a context manager: with IndexWriter(...) as writer: ...")
        for document in documents:
            if document.doc_id in self._seen:
                raise UsageError(f"duplicate doc_id {document.doc_id!r}: ids must be unique within an index")
            self._seen.add(document.doc_id)
            self._doc_ids.append(document.doc_id)
            self._store.add(document.title, document.text)
        if dense is not None:
            self._dense_parts.append(dense)
        if self._builder.n_postings >= RUN_POSTINGS:
            self._write_run()

    def _write_run(self) -> None:
        """Write the builder's rows as a run (compressed postings, its own row numbers) and reset it."""
        postings = self._builder.build()
        folder = self.tmp / _RUNS / f"run-{len(self._runs):06d}"
        folder.mkdir(parents=True)
        packed = compress(postings)
        for name in _RUN_ARRAYS:
            np.save(folder / f"{name}.npy", getattr(packed, name))
        self._runs.append((folder, postings.n_docs, len(postings.vocab)))
        self._builder.reset()

    def _concatenate_runs(self, directory: Path) -> Written:
        """Write the segment's postings from the runs (the builder's last rows written as one first)."""
        self._write_run()
        parts, first = [], 0
        vocab = self._builder.vocab
        for folder, n_docs, n_terms in self._runs:
            parts.append(Part(partial(_read_run, folder, vocab[:n_terms], n_docs), np.arange(n_terms, dtype=np.int64),
                              np.arange(first, first + n_docs)))  # fmt: skip
            first += n_docs
        written = write_concatenated(directory, parts, vocab, first)
        shutil.rmtree(self.tmp / _RUNS)
        return written

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._store is not None:
                self._store.close()
            if exc_type is not None:
                return
            dense = DenseWindows.concat(self._dense_parts) if self.dense is not None else None
            if dense is not None and not self._dense_parts:
                dense = DenseWindows.empty(len(self._doc_ids))
            segment = self.tmp / _FIRST_SEGMENT
            if self._runs:  # a large build: its postings went to disk run by run
                written = self._concatenate_runs(segment)
                write_ids(segment, self._doc_ids, dense)
                n_docs, nnz, n_terms, lengths = written.n_docs, written.nnz, written.n_terms, written.doc_lengths
            else:
                postings = self._builder.build()
                write_segment(segment, postings, self._doc_ids, dense=dense)
                n_docs, nnz, n_terms, lengths = (
                    postings.n_docs,
                    postings.nnz,
                    len(postings.vocab),
                    postings.doc_lengths(),
                )
            manifest = build_manifest(
                commit=1,
                created_at=now(),
                encoder=self.fingerprint.to_dict(),
                encoder_dir=ENCODER_DIR,
                next_segment=2,
                segments=[SegmentEntry(_FIRST_SEGMENT, n_docs, nnz, n_terms)],
                n_terms=n_terms,
                avg_terms_per_doc=float(lengths.mean()) if n_docs else 0.0,
                empty_documents=int((lengths == 0).sum()),
                dense=self.dense,
            )
            check_index_target(self.path, overwrite=self.overwrite)  # somebody may have created it meanwhile
            if (self.path / MANIFEST_FILE).is_file():
                self._install_over_index(manifest)
            else:
                self._install_new(manifest)
        finally:
            self._building.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.index = EmbeddedIndex.open(self.path)

    def _install_new(self, manifest: dict) -> None:
        """Rename the finished build into place (replacing a folder that is not an index)."""
        publish(self.tmp, manifest)
        self.commit = manifest["commit"]
        (self.tmp / BUILDING_FILE).unlink()  # the lock stays held through the open descriptor
        old = self.path.parent / f".{self.path.name}.old-{os.getpid()}"
        if self.path.exists():
            os.rename(self.path, old)
        os.rename(self.tmp, self.path)
        fsync_dir(self.path.parent)
        shutil.rmtree(old, ignore_errors=True)

    def _install_over_index(self, manifest: dict) -> None:
        """Commit the build as the next commit of the index at ``path``, under its writer lock."""
        with file_lock(self.path / LOCK_FILE):
            try:
                current = read_commit(self.path)
                number, next_segment = current.number + 1, current.next_segment
                remove_unreferenced(self.path, current)  # frees the names of a killed writer's files
            except (IndexNotFoundError, IndexFormatError):  # damaged: replaced all the same
                number, next_segment = 1, 1
            name, encoder_dir = segment_name(next_segment), f"{ENCODER_DIR}-{number:06d}"
            shutil.rmtree(self.path / name, ignore_errors=True)
            shutil.rmtree(self.path / encoder_dir, ignore_errors=True)
            os.rename(self.tmp / _FIRST_SEGMENT, self.path / name)
            if (self.tmp / ENCODER_DIR).is_dir():
                os.rename(self.tmp / ENCODER_DIR, self.path / encoder_dir)
            else:  # built without a saved encoder (tests, tools): the index has none
                encoder_dir = ENCODER_DIR
            fsync_dir(self.path)
            manifest.update(commit=number, generation=number, next_segment=next_segment + 1, encoder_dir=encoder_dir)
            manifest["segments"][0]["name"] = name
            publish(self.path, manifest)
            self.commit = number
            remove_unreferenced(self.path, read_commit(self.path))
