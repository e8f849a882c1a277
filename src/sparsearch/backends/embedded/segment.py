"""One segment of an embedded index: the postings, ids and stored text of a set of documents,
written once and never changed; deletions are recorded beside it as tombstones.

Files of a segment folder (every array a ``.npy`` file, memory-mapped where large; no pickle)::

    seg-000003/
      vocab.json             term_id -> token (the segment's own vocabulary)
      indptr.npy             uint32 (n_terms + 1,) posting offsets (int64 past 2^32 - 1 postings)
      doc_idx.npy            int32 (nnz,)   postings, term-major, doc-ascending per term
      weights.npy            float32 (nnz,)
      doc_ids.json           doc_idx -> external doc_id
      doc_id_rank.npy        int32 (n_docs,) rank of each doc_id in sorted order (tie-breaks)
      docs.jsonl, docs_offsets.npy   stored title and text
      dense.npy              float16 (n_windows, 384) dense-model window embeddings (``--dense`` indexes only)
      dense_indptr.npy       int64 (n_docs + 1,) document i owns windows dense_indptr[i]:dense_indptr[i+1]
      del-000007.npy         int32 sorted doc_idx of the deleted documents as of commit 7 (a new
                             file per commit that deletes in this segment; the manifest names the current one)

The three posting arrays are scipy's CSC arrays of the (n_docs x n_terms) matrix at the same widths.
A :class:`SegmentReader` opens every file once (arrays mapped, the text file kept open), so a reader
keeps working after a writer removed the segment: POSIX frees the data when the last mapping or
descriptor closes, which is when the last snapshot using the reader is collected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from sparsearch._files import fsync_dir, save_npy, write_text_synced
from sparsearch.backends.embedded.docstore import DocStore, DocStoreWriter
from sparsearch.backends.embedded.postings import Postings, offsets_dtype, unknown_max_weights
from sparsearch.encoders.dense import DenseWindows

SEGMENT_PREFIX = "seg-"
DENSE_FILE = "dense.npy"
DENSE_INDPTR_FILE = "dense_indptr.npy"
LEGACY_PREFIX = "gen-"
"""Formats 1 and 2 kept all documents in one ``gen-NNNNNN`` folder: read as one segment."""


def segment_name(number: int) -> str:
    return f"{SEGMENT_PREFIX}{number:06d}"


def deletes_name(commit: int) -> str:
    return f"del-{commit:06d}.npy"


def write_segment(
    directory: Path,
    postings: Postings,
    doc_ids: Sequence[str],
    rows: Iterable[tuple[str, str]] = (),
    dense: DenseWindows | None = None,
) -> None:
    """Write one segment's files into ``directory`` (which exists) and flush them to disk.

    Args:
        directory: the segment folder (a temporary one, renamed into place by the caller).
        postings: the documents' postings, ``n_docs == len(doc_ids)``.
        doc_ids: external id of each row.
        rows: ``(title, text)`` of each row, or empty when the caller wrote the doc store itself
            (:class:`~sparsearch.backends.embedded.docstore.DocStoreWriter`, streaming builds).
        dense: the rows' window embeddings (indexes built with ``--dense``), ``dense.n_docs == len(doc_ids)``.
    """
    if rows:
        store = DocStoreWriter(directory)
        for title, text in rows:
            store.add(title, text)
        store.close()
    write_text_synced(directory / "vocab.json", json.dumps(postings.vocab, ensure_ascii=False))
    save_npy(directory / "indptr.npy", postings.indptr.astype(offsets_dtype(postings.nnz), copy=False))
    save_npy(directory / "doc_idx.npy", np.asarray(postings.doc_idx).astype(np.int32, copy=False))
    save_npy(directory / "weights.npy", np.asarray(postings.weights).astype(np.float32, copy=False))
    write_text_synced(directory / "doc_ids.json", json.dumps(list(doc_ids), ensure_ascii=False))
    rank = np.empty(len(doc_ids), dtype=np.int32)
    rank[np.argsort(np.asarray(doc_ids, dtype=object), kind="stable")] = np.arange(len(doc_ids), dtype=np.int32)
    save_npy(directory / "doc_id_rank.npy", rank)
    if dense is not None:
        if dense.n_docs != len(doc_ids):
            raise ValueError(f"dense windows for {dense.n_docs} documents, {len(doc_ids)} ids")
        save_npy(directory / DENSE_FILE, np.asarray(dense.embeddings, dtype=np.float16))
        save_npy(directory / DENSE_INDPTR_FILE, np.asarray(dense.indptr, dtype=np.int64))
    fsync_dir(directory)


def write_deletes(segment_dir: Path, commit: int, deleted: np.ndarray) -> str:
    """Write a tombstone file (int32 sorted doc_idx) into ``segment_dir``; returns its file name."""
    name = deletes_name(commit)
    save_npy(segment_dir / name, np.unique(deleted).astype(np.int32))
    fsync_dir(segment_dir)
    return name


class SegmentReader:
    """An opened segment: postings (memory-mapped), ids, stored text. Immutable; shared by snapshots.

    Raises:
        OSError, ValueError, KeyError: missing or damaged files (the caller names the index).
    """

    def __init__(self, directory: Path, n_docs: int) -> None:
        self.directory = directory
        self.name = directory.name
        vocab: list[str] = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        indptr = np.load(directory / "indptr.npy")
        if indptr.dtype.kind not in "iu" or indptr.shape != (len(vocab) + 1,):
            raise ValueError(f"indptr.npy holds {indptr.dtype} {indptr.shape}, not integer offsets per term")
        bounds = directory / "max_weight.npy"  # format 1 stored the bounds
        self.postings = Postings(
            vocab=vocab,
            indptr=indptr.astype(np.int64),  # in memory 8 bytes per term: one kernel signature
            doc_idx=np.load(directory / "doc_idx.npy", mmap_mode="r"),
            weights=np.load(directory / "weights.npy", mmap_mode="r"),
            max_weight=np.load(bounds) if bounds.is_file() else unknown_max_weights(len(vocab)),  # writable
            n_docs=n_docs,
        )
        self.doc_ids: list[str] = json.loads((directory / "doc_ids.json").read_text(encoding="utf-8"))
        self.doc_id_rank: np.ndarray = np.load(directory / "doc_id_rank.npy")
        if len(self.doc_ids) != n_docs or self.doc_id_rank.shape != (n_docs,):
            raise ValueError(f"{len(self.doc_ids)} doc ids for {n_docs} documents")
        self.store = DocStore(directory)
        self.dense: DenseWindows | None = None
        """Window embeddings (memory-mapped) when the index was built with ``--dense``, else ``None``."""
        if (directory / DENSE_INDPTR_FILE).is_file():
            self.dense = DenseWindows(
                np.load(directory / DENSE_FILE, mmap_mode="r"), np.load(directory / DENSE_INDPTR_FILE)
            )
            if self.dense.n_docs != n_docs:
                raise ValueError(f"{DENSE_INDPTR_FILE} covers {self.dense.n_docs} documents, not {n_docs}")
        self.term_index: dict[str, int] = {token: i for i, token in enumerate(vocab)}

    @property
    def n_docs(self) -> int:
        return self.postings.n_docs

    @cached_property
    def doc_index(self) -> dict[str, int]:
        """external doc_id -> doc_idx (built on first use: only updates and document reads need it)."""
        return {doc_id: i for i, doc_id in enumerate(self.doc_ids)}

    @cached_property
    def dense_float64(self) -> np.ndarray | None:
        """The window embeddings as float64 (n_windows, 384), built on the first exhaustive dense search
        and kept while the segment is open: 3 KB a window (4x ``dense.npy``; 35 MB for npl's 11,458
        windows). Converting float16 is the slow part (about 80 ms a query for npl on the 2-core
        machine, against a few ms for the product), so it is paid once; float64 keeps the scores
        independent of how the product is blocked or batched. ``None`` without dense vectors."""
        if self.dense is None:
            return None
        return np.asarray(self.dense.embeddings, dtype=np.float64)

    @cached_property
    def doc_lengths(self) -> np.ndarray:
        """Terms of each document, int64 (n_docs,)."""
        return self.postings.doc_lengths()

    def read_deletes(self, name: str | None) -> np.ndarray:
        """The tombstones named by the manifest: int32 sorted doc_idx (empty for ``None``)."""
        if name is None:
            return np.zeros(0, dtype=np.int32)
        deleted = np.load(self.directory / name)
        if deleted.dtype.kind not in "iu" or (len(deleted) and (deleted.min() < 0 or deleted.max() >= self.n_docs)):
            raise ValueError(f"{name} holds no doc_idx of this segment")
        return deleted.astype(np.int32)


@dataclass(frozen=True)
class SegmentView:
    """A segment as one snapshot sees it: the reader plus the deletions of that commit.

    ``live_rank`` is the reader's ``doc_id_rank`` with -1 at deleted documents: the kernels skip
    documents of negative rank (see :mod:`sparsearch.backends.embedded.kernels`).
    """

    reader: SegmentReader
    deletes: str | None
    deleted: np.ndarray
    live_rank: np.ndarray

    @classmethod
    def open(cls, reader: SegmentReader, deletes: str | None) -> SegmentView:
        deleted = reader.read_deletes(deletes)
        if not len(deleted):
            return cls(reader, None, deleted, reader.doc_id_rank)
        live_rank = reader.doc_id_rank.copy()
        live_rank[deleted] = -1
        return cls(reader, deletes, deleted, live_rank)

    @property
    def n_live(self) -> int:
        return self.reader.n_docs - len(self.deleted)

    def is_live(self, doc: int) -> bool:
        return bool(self.live_rank[doc] >= 0)

    def locate(self, doc_id: str) -> int | None:
        """The live ``doc_idx`` of ``doc_id`` in this segment, or ``None``."""
        doc = self.reader.doc_index.get(doc_id)
        return doc if doc is not None and self.is_live(doc) else None

    def live_doc_ids(self) -> list[str]:
        if not len(self.deleted):
            return list(self.reader.doc_ids)
        return [d for d, rank in zip(self.reader.doc_ids, self.live_rank.tolist(), strict=True) if rank >= 0]
