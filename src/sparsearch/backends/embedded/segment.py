"""One segment of an embedded index: the postings, ids and stored text of a set of documents,
written once and never changed; deletions are recorded beside it as tombstones.

Files of a segment folder (every array a ``.npy`` file, memory-mapped where large; no pickle)::

    seg-000003/
      vocab.json             term_id -> token (the segment's own vocabulary)
      window_offsets.npy     uint32 (n_terms * n_windows + 1,) posting offsets per term and window of
                             65,536 documents (int64 past 2^32 - 1 postings)
      doc_low.npy            uint16 (nnz,)  postings, term-major, doc-ascending: doc_idx within the window
      impacts.npy            uint8 (nnz,)   weight / impact_scale[term], rounded (1..255)
      impact_scale.npy       float32 (n_terms,)
      weights.npy            float32 (nnz,) exact weights, read only to rescore candidates
      block_rows.npy         int32 (n_terms,) row of each term's block maxima, -1 for none
      block_max.npy          uint8 (n_rows, n_windows * 4096) a term's largest impact in each block of
                             16 documents (derived from the postings when missing: older segments)
      doc_ids.json           doc_idx -> external doc_id
      doc_id_rank.npy        int32 (n_docs,) rank of each doc_id in sorted order (tie-breaks)
      docs.jsonl, docs_offsets.npy   stored title and text
      dense.npy              float16 (n_windows, 384) dense-model window embeddings (``--dense`` indexes only)
      dense_indptr.npy       int64 (n_docs + 1,) document i owns windows dense_indptr[i]:dense_indptr[i+1]
      del-000007.npy         int32 sorted doc_idx of the deleted documents as of commit 7 (a new
                             file per commit that deletes in this segment; the manifest names the current one)

The postings layout is :mod:`sparsearch.backends.embedded.codec`'s: a search scans 3 bytes a posting
(``doc_low``, ``impacts``) and reads ``weights`` for the few candidates it rescores. Segments of index
formats 1-3 (``indptr.npy``, ``doc_idx.npy``, ``weights.npy``: scipy's CSC arrays) are still read; they are
encoded in memory when opened, and a merge (``sparsearch merge``) rewrites them in this layout.
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
from sparsearch.backends.embedded.codec import BLOCKS_PER_WINDOW, CompressedPostings, compress
from sparsearch.backends.embedded.docstore import DocStore, DocStoreWriter
from sparsearch.backends.embedded.postings import Postings, offsets_dtype
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


POSTINGS_FILES = (
    "window_offsets.npy", "doc_low.npy", "impacts.npy", "impact_scale.npy", "block_rows.npy", "block_max.npy"
)  # fmt: skip
"""The arrays a search scans (``weights.npy``, the exact weights, is read only for candidates)."""


def write_segment(
    directory: Path,
    postings: Postings | CompressedPostings,
    doc_ids: Sequence[str],
    rows: Iterable[tuple[str, str]] = (),
    dense: DenseWindows | None = None,
) -> None:
    """Write one segment's files into ``directory`` (which exists) and flush them to disk.

    Args:
        directory: the segment folder (a temporary one, renamed into place by the caller).
        postings: the documents' postings, ``n_docs == len(doc_ids)`` (compressed here when plain).
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
    packed = postings if isinstance(postings, CompressedPostings) else compress(postings)
    write_text_synced(directory / "vocab.json", json.dumps(packed.vocab, ensure_ascii=False))
    save_npy(directory / "window_offsets.npy", packed.window_offsets.astype(offsets_dtype(packed.nnz), copy=False))
    save_npy(directory / "doc_low.npy", np.asarray(packed.doc_low, dtype=np.uint16))
    save_npy(directory / "impacts.npy", np.asarray(packed.impacts, dtype=np.uint8))
    save_npy(directory / "impact_scale.npy", np.asarray(packed.impact_scale, dtype=np.float32))
    save_npy(directory / "weights.npy", np.asarray(packed.weights).astype(np.float32, copy=False))
    write_block_bounds(directory, *packed.block_bounds())
    write_ids(directory, doc_ids, dense)


def write_block_bounds(directory: Path, block_rows: np.ndarray, block_max: np.ndarray) -> None:
    """Write a segment's block maxima (see :mod:`sparsearch.backends.embedded.codec`), flushed."""
    save_npy(directory / "block_rows.npy", np.asarray(block_rows, dtype=np.int32))
    save_npy(directory / "block_max.npy", np.asarray(block_max, dtype=np.uint8))


def write_ids(directory: Path, doc_ids: Sequence[str], dense: DenseWindows | None = None) -> None:
    """Write a segment's ids (and, for ``--dense`` indexes, window embeddings), then flush the folder:
    the last step of writing a segment whose postings and stored text are in place."""
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
        self.compressed = _read_postings(directory, vocab, n_docs)
        """The postings the kernels scan (legacy segments are encoded in memory on open)."""
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
        return self.compressed.n_docs

    @property
    def postings(self) -> Postings:
        """The postings decoded to plain term-major arrays (int32 doc ids: 4 bytes a posting in memory,
        decoded at each call and not kept): merges and exports read them; searches do not."""
        return self.compressed.to_postings()

    @cached_property
    def doc_id_array(self) -> np.ndarray:
        """:attr:`doc_ids` as an object array (n_docs,): a batch's hits get their ids in one indexing."""
        array = np.empty(len(self.doc_ids), dtype=object)
        array[:] = self.doc_ids
        return array

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
        return self.compressed.doc_lengths()

    def read_deletes(self, name: str | None) -> np.ndarray:
        """The tombstones named by the manifest: int32 sorted doc_idx (empty for ``None``)."""
        if name is None:
            return np.zeros(0, dtype=np.int32)
        deleted = np.load(self.directory / name)
        if deleted.dtype.kind not in "iu" or (len(deleted) and (deleted.min() < 0 or deleted.max() >= self.n_docs)):
            raise ValueError(f"{name} holds no doc_idx of this segment")
        return deleted.astype(np.int32)


def _read_postings(directory: Path, vocab: list[str], n_docs: int) -> CompressedPostings:
    """The segment's postings: the compressed files, memory-mapped, or a legacy segment's CSC arrays
    encoded in memory (3 bytes a posting beside the mapped files)."""
    if not (directory / "doc_low.npy").is_file():
        indptr = np.load(directory / "indptr.npy")
        if indptr.dtype.kind not in "iu" or indptr.shape != (len(vocab) + 1,):
            raise ValueError(f"indptr.npy holds {indptr.dtype} {indptr.shape}, not integer offsets per term")
        doc_idx = np.load(directory / "doc_idx.npy", mmap_mode="r")
        weights = np.load(directory / "weights.npy", mmap_mode="r")
        if doc_idx.shape != weights.shape or len(doc_idx) != indptr[-1]:
            raise ValueError(f"doc_idx.npy and weights.npy do not hold the {indptr[-1]} postings of indptr.npy")
        plain = Postings(vocab, indptr.astype(np.int64), doc_idx, weights, n_docs)
        return compress(plain)
    packed = CompressedPostings(
        vocab=vocab,
        window_offsets=np.load(directory / "window_offsets.npy").astype(np.int64),  # one kernel signature
        doc_low=np.load(directory / "doc_low.npy", mmap_mode="r"),
        impacts=np.load(directory / "impacts.npy", mmap_mode="r"),
        impact_scale=np.load(directory / "impact_scale.npy"),
        weights=np.load(directory / "weights.npy", mmap_mode="r"),
        n_docs=n_docs,
    )
    if (directory / "block_max.npy").is_file():
        packed.block_rows = np.load(directory / "block_rows.npy")
        packed.block_max = np.load(directory / "block_max.npy", mmap_mode="r")
        if (
            packed.block_rows.shape != (len(vocab),) or packed.block_rows.dtype != np.int32
            or packed.block_max.dtype != np.uint8 or packed.block_max.ndim != 2
            or packed.block_max.shape[1] != packed.n_windows * BLOCKS_PER_WINDOW
            or int(packed.block_rows.max(initial=-1)) >= packed.block_max.shape[0]
        ):  # fmt: skip
            raise ValueError("block_rows.npy and block_max.npy do not agree with vocab.json and the postings")
    nnz = packed.nnz
    if (
        packed.window_offsets.shape != (len(vocab) * packed.n_windows + 1,)
        or packed.doc_low.shape != (nnz,) or packed.impacts.shape != (nnz,) or packed.weights.shape != (nnz,)
        or packed.impact_scale.shape != (len(vocab),)
        or packed.doc_low.dtype != np.uint16 or packed.impacts.dtype != np.uint8
    ):  # fmt: skip
        raise ValueError("the postings files do not agree with vocab.json and each other")
    return packed


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
