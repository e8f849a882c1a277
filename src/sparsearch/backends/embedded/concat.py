"""Writing one compressed segment from several compressed parts, in bounded memory.

Builds flush their documents as parts (a few tens of millions of postings each) and merges combine
segments; both end here. Each part comes with a map of its term ids to the output's and of its
documents to the output's (-1: dropped, a deleted document). The output's postings are written
without ever holding them whole:

1. one pass over every part counts the output postings per term and window and finds each term's
   largest weight (its impact scale);
2. each part is then re-encoded for the output (document offsets and windows moved, impacts
   requantised to the output's scales, exact weights copied) and each of its terms' postings is
   written at its place in the output files with ``os.pwrite``: memory holds one part at a time.

Plain writes rather than a memory map of the output: mapped pages written by the process count in its
resident set until the kernel writes them back, and the point is a build whose peak RSS does not grow
with the index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit  # noqa: E402,I001  (codec configured numba's cache before this import)

from sparsearch._files import save_npy, write_text_synced
from sparsearch.backends.embedded.codec import (
    WINDOW_BITS,
    WINDOW_DOCS,
    CompressedPostings,
    block_maxima_read,
    impact,
    impact_scales,
    n_windows_for,
)
from sparsearch.backends.embedded.postings import offsets_dtype
from sparsearch.backends.embedded.segment import write_block_bounds


@dataclass
class Part:
    """One input: its postings (or a function that reads them: a build's runs are read one at a time and
    let go, so their pages do not stay mapped), int64 (part n_terms,) output term of each term, and int64
    (part n_docs,) output document of each document (-1: left out)."""

    source: CompressedPostings | Callable[[], CompressedPostings]
    term_map: np.ndarray
    doc_map: np.ndarray

    def open(self) -> CompressedPostings:
        return self.source() if callable(self.source) else self.source


@dataclass
class Written:
    n_docs: int
    nnz: int
    n_terms: int
    doc_lengths: np.ndarray
    """int64 (n_docs,): terms of each output document."""


def write_concatenated(directory: Path, parts: Sequence[Part], vocab: Sequence[str], n_docs: int) -> Written:
    """Write the postings files of one segment (see :mod:`sparsearch.backends.embedded.segment`) into
    ``directory`` from ``parts`` (in output document order within each term: a part's documents must
    map above the previous parts' ones), over the output vocabulary ``vocab`` less the terms no kept
    posting uses (a merge drops deleted documents' tokens this way). Files are flushed to disk; the
    caller writes the rest of the segment (ids, text) and syncs the folder."""
    n_windows = n_windows_for(n_docs)
    counts = np.zeros(len(vocab) * n_windows, dtype=np.int64)
    top = np.zeros(len(vocab), dtype=np.float32)
    lengths = np.zeros(n_docs, dtype=np.int64)
    for part in parts:
        p = part.open()
        _count(p.window_offsets, p.doc_low, p.weights, p.n_windows, part.term_map, part.doc_map, n_windows,
               counts, top, lengths)  # fmt: skip
    used = counts.reshape(len(vocab), n_windows).sum(axis=1) > 0
    if not used.all():  # renumber the used terms
        renumber = np.cumsum(used) - 1
        parts = [Part(part.source, renumber[part.term_map], part.doc_map) for part in parts]
        vocab = [token for token, keep in zip(vocab, used.tolist(), strict=True) if keep]
        counts = counts.reshape(len(used), n_windows)[used].ravel()
        top = top[used]
    n_terms = len(vocab)
    window_offsets = np.zeros(n_terms * n_windows + 1, dtype=np.int64)
    np.cumsum(counts, out=window_offsets[1:])
    nnz = int(window_offsets[-1])
    scale = impact_scales(top)
    cursor = window_offsets[:-1:n_windows].copy() if n_terms else np.zeros(0, dtype=np.int64)

    outputs = {name: _create_npy(directory / f"{name}.npy", dtype, nnz) for name, dtype in _ARRAYS.items()}
    try:
        for part in parts:
            p = part.open()
            low = np.empty(p.nnz, dtype=np.uint16)
            impacts = np.empty(p.nnz, dtype=np.uint8)
            weights = np.empty(p.nnz, dtype=np.float32)
            kept = np.empty(len(p.vocab) + 1, dtype=np.int64)
            _recode(p.window_offsets, p.doc_low, p.weights, p.n_windows, part.doc_map, part.term_map, scale,
                    low, impacts, weights, kept)  # fmt: skip
            for t in np.flatnonzero(np.diff(kept)).tolist():  # terms of the part with kept postings
                out_t = int(part.term_map[t])
                lo, hi = int(kept[t]), int(kept[t + 1])
                for (fd, offset), array in zip(outputs.values(), (low, impacts, weights), strict=True):
                    _pwrite_all(fd, array[lo:hi], offset + int(cursor[out_t]) * array.itemsize)
                cursor[out_t] += hi - lo
        for fd, _ in outputs.values():
            os.fsync(fd)
        # read back term by term: mapping the files would add every frequent term's postings to the
        # process's resident memory (GBs at 10M documents)
        (low_fd, low_at), (impacts_fd, impacts_at) = outputs["doc_low"], outputs["impacts"]
        bounds = block_maxima_read(
            window_offsets, n_docs, lambda lo, hi: (
                np.frombuffer(_pread_all(low_fd, 2 * (hi - lo), low_at + 2 * lo), dtype=np.uint16),
                np.frombuffer(_pread_all(impacts_fd, hi - lo, impacts_at + lo), dtype=np.uint8),
            ),
        )  # fmt: skip
    finally:
        for fd, _ in outputs.values():
            os.close(fd)
    write_text_synced(directory / "vocab.json", json.dumps(list(vocab), ensure_ascii=False))
    save_npy(directory / "window_offsets.npy", window_offsets.astype(offsets_dtype(nnz), copy=False))
    save_npy(directory / "impact_scale.npy", scale)
    write_block_bounds(directory, *bounds)
    return Written(n_docs, nnz, n_terms, lengths)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` (``os.pread`` may return fewer: Linux stops at about 2 GB a call)."""
    parts = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            raise OSError(f"unexpected end of file reading {size} bytes at {offset}")
        parts.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


_ARRAYS = {"doc_low": np.uint16, "impacts": np.uint8, "weights": np.float32}


def _pwrite_all(fd: int, array: np.ndarray, offset: int) -> None:
    """Write ``array``'s bytes at ``offset`` (``os.pwrite`` may write less than asked: Linux stops at
    about 2 GB a call)."""
    view = memoryview(array).cast("B")
    while len(view):
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _create_npy(path: Path, dtype: type, length: int) -> tuple[int, int]:
    """Create an .npy file of ``length`` elements (contents written later); returns a descriptor open
    for reading and writing, and the byte offset of the data."""
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (length,)}
        )
        offset = handle.tell()
        handle.truncate(offset + length * np.dtype(dtype).itemsize)
    return os.open(path, os.O_RDWR), offset  # read back for the block maxima


@njit(cache=True, nogil=True)
def _count(window_offsets, doc_low, weights, n_windows, term_map, doc_map, out_windows, counts, top, lengths):
    """Add a part's kept postings to the output's per (term, window) ``counts``, per-term largest
    weight ``top`` and per-document ``lengths``."""
    for slot in range(window_offsets.shape[0] - 1):
        t = term_map[slot // n_windows]
        base = (slot % n_windows) << WINDOW_BITS
        for p in range(window_offsets[slot], window_offsets[slot + 1]):
            d = doc_map[base + np.int64(doc_low[p])]
            if d >= 0:
                counts[t * out_windows + (d >> WINDOW_BITS)] += 1
                top[t] = max(top[t], weights[p])
                lengths[d] += 1


@njit(cache=True, nogil=True)
def _recode(window_offsets, doc_low, weights, n_windows, doc_map, term_map, scale, low, impacts, exact, kept):
    """A part's kept postings re-encoded for the output, term-major in the part's term order: term
    ``t``'s are ``[kept[t], kept[t + 1])`` of ``low`` (output document offsets in their windows),
    ``impacts`` (at the output's scales) and ``exact`` (the weights)."""
    n_terms = (window_offsets.shape[0] - 1) // n_windows
    out = 0
    for t in range(n_terms):
        kept[t] = out
        step = np.float64(scale[term_map[t]])
        for slot in range(t * n_windows, (t + 1) * n_windows):
            base = (slot % n_windows) << WINDOW_BITS
            for p in range(window_offsets[slot], window_offsets[slot + 1]):
                d = doc_map[base + np.int64(doc_low[p])]
                if d >= 0:
                    low[out] = d & (WINDOW_DOCS - 1)
                    impacts[out] = impact(weights[p], step)
                    exact[out] = weights[p]
                    out += 1
    kept[n_terms] = out
