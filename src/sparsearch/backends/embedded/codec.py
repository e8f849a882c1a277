"""Compressed postings: what the search kernels scan, 3 bytes a posting, with exact weights beside them.

Documents are grouped in windows of ``2**WINDOW_BITS`` consecutive ``doc_idx``. For term ``t`` and
window ``w`` (``n_windows`` windows, term-major)::

    postings p in window_offsets[t * n_windows + w] : window_offsets[t * n_windows + w + 1]
    doc_idx(p) = (w << WINDOW_BITS) + doc_low[p]          doc_low: uint16, ascending within the slice
    weight(p) ~= impact_scale[t] * impacts[p]             impacts: uint8 in 1..255
    weight(p) == weights[p]                               weights: float32, the exact weight

``impact_scale[t]`` is the term's largest weight / 255, and ``impacts`` round to nearest, never below
1 (a posting never looks absent), so ``|weight - impact_scale * impact| <= impact_scale`` (half that,
except for weights under half a step).

The kernels score every document from the impacts into a window-sized float32 accumulator, keep the
documents whose approximate score can still reach the top k under that bound, and rescore only those
from ``weights`` (see :mod:`sparsearch.backends.embedded.kernels`): results equal exact float32-weight
scoring, while a query reads 3 bytes a posting instead of the 8 of ``(int32 doc, float32 weight)``.

Block maxima bound what a term can add to a group of documents, so that the kernels can skip the
postings of light terms. Window ``w``'s documents fall in ``BLOCKS_PER_WINDOW`` blocks of
``BLOCK_DOCS``, strided: offset ``o`` is in block ``o % BLOCKS_PER_WINDOW`` (the kernels then take the
blocks' largest partial scores as element-wise maxima of contiguous rows, which vectorise). A term
with at least half as many postings as blocks (its row then costs at most two thirds of its
postings' bytes) has a row ``block_rows[t]`` (else -1) of ``block_max`` (uint8 (n_rows, n_windows *
BLOCKS_PER_WINDOW)): its largest impact in each block, 0 where it has none.
Details and measurements: docs/engines.md ("Embedded engine: postings format").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sparsearch._cache import configure_numba_cache
from sparsearch.backends.embedded.postings import Postings

configure_numba_cache()  # before numba is imported: it reads NUMBA_CACHE_DIR once

from numba import njit  # noqa: E402

WINDOW_BITS = 16
WINDOW_DOCS = 1 << WINDOW_BITS
"""Documents per window: a uint16 ``doc_low`` addresses them, and the kernels' window accumulator
(float32, 256 KB) stays in a core's L2 cache."""
MAX_IMPACT = 255
BLOCK_DOCS = 16
BLOCKS_PER_WINDOW = WINDOW_DOCS // BLOCK_DOCS


def n_windows_for(n_docs: int) -> int:
    """Windows that cover ``n_docs`` documents (at least 1, so an empty segment has a layout)."""
    return max(1, -(-n_docs // WINDOW_DOCS))


@dataclass
class CompressedPostings:
    """One segment's postings in the windowed layout of the module docstring.

    Shapes: window_offsets int64 (n_terms * n_windows + 1,); doc_low uint16, impacts uint8 and
    weights float32 (nnz,); impact_scale float32 (n_terms,); block_rows int32 (n_terms,) and
    block_max uint8 (n_rows, n_windows * BLOCKS_PER_WINDOW), or None until :meth:`block_bounds` derives
    them from the postings. Arrays may be memory-mapped.
    """

    vocab: list[str]
    window_offsets: np.ndarray
    doc_low: np.ndarray
    impacts: np.ndarray
    impact_scale: np.ndarray
    weights: np.ndarray
    n_docs: int
    block_rows: np.ndarray | None = None
    block_max: np.ndarray | None = None

    def block_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(block_rows, block_max)`` (see the module docstring): the stored ones, or derived from the
        postings on first use (segments written before block maxima were stored) and kept."""
        if self.block_rows is None or self.block_max is None:
            self.block_rows, self.block_max = block_maxima(self.window_offsets, self.doc_low, self.impacts, self.n_docs)
        return self.block_rows, self.block_max

    @property
    def n_windows(self) -> int:
        return n_windows_for(self.n_docs)

    @property
    def nnz(self) -> int:
        return int(self.window_offsets[-1])

    @property
    def indptr(self) -> np.ndarray:
        """int64 (n_terms + 1,): term ``t``'s postings are ``indptr[t]:indptr[t + 1]``."""
        return np.asarray(self.window_offsets[:: self.n_windows], dtype=np.int64)

    def doc_lengths(self) -> np.ndarray:
        """Number of terms of each document, int64 (n_docs,)."""
        lengths = np.zeros(self.n_docs, dtype=np.int64)
        _count_docs(self.window_offsets, self.doc_low, self.n_windows, lengths)
        return lengths

    def doc_idx(self) -> np.ndarray:
        """The decoded document of every posting, int32 (nnz,) (4 bytes a posting: for merges and tools)."""
        out = np.empty(self.nnz, dtype=np.int32)
        _decode_doc_idx(self.window_offsets, self.doc_low, self.n_windows, out)
        return out

    def to_postings(self) -> Postings:
        """The same postings as plain term-major arrays (decoded; exact weights)."""
        return Postings(self.vocab, self.indptr, self.doc_idx(), self.weights, self.n_docs)


def impact_scales(top: np.ndarray) -> np.ndarray:
    """float32 (n_terms,): each term's impact step, its largest weight ``top`` / 255 (1 for a term with
    no postings; the largest weight itself where its 255th underflows float32, one level then)."""
    top = np.asarray(top, dtype=np.float32)
    scale = (top.astype(np.float64) / MAX_IMPACT).astype(np.float32)
    scale[scale == 0] = top[scale == 0]
    scale[top <= 0] = 1.0
    return scale


def compress(postings: Postings) -> CompressedPostings:
    """Encode term-major postings (doc-ascending per term, weights > 0) in the windowed layout."""
    n_terms = len(postings.vocab)
    n_windows = n_windows_for(postings.n_docs)
    indptr = np.asarray(postings.indptr, dtype=np.int64)
    doc_idx = np.asarray(postings.doc_idx)
    weights = np.asarray(postings.weights, dtype=np.float32)
    top = np.zeros(n_terms, dtype=np.float32)
    used = np.diff(indptr) > 0
    if used.any():
        top[used] = np.maximum.reduceat(weights, indptr[:-1][used])
    scale = impact_scales(top)
    window_offsets = np.empty(n_terms * n_windows + 1, dtype=np.int64)
    doc_low = np.empty(len(doc_idx), dtype=np.uint16)
    impacts = np.empty(len(doc_idx), dtype=np.uint8)
    _encode(indptr, doc_idx, weights, n_windows, scale, window_offsets, doc_low, impacts)
    return CompressedPostings(postings.vocab, window_offsets, doc_low, impacts, scale, weights, postings.n_docs)


def block_maxima(
    window_offsets: np.ndarray, doc_low: np.ndarray, impacts: np.ndarray, n_docs: int, min_postings: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(block_rows, block_max)`` of postings in the windowed layout (see the module docstring): int32
    (n_terms,) and uint8 (n_rows, n_windows * BLOCKS_PER_WINDOW); ``min_postings`` as for
    :func:`block_rows`."""
    return block_maxima_read(window_offsets, n_docs, lambda lo, hi: (doc_low[lo:hi], impacts[lo:hi]), min_postings)


def block_maxima_read(
    window_offsets: np.ndarray, n_docs: int, read: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    min_postings: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """As :func:`block_maxima`, with each row's postings from ``read(lo, hi)``: ``doc_low[lo:hi]`` and
    ``impacts[lo:hi]`` (one term's postings; a writer reads them back from its files)."""
    offsets = np.asarray(window_offsets, dtype=np.int64)
    rows = block_rows(offsets, n_docs, min_postings)
    n_windows = n_windows_for(n_docs)
    block_max = np.zeros((int((rows >= 0).sum()), n_windows * BLOCKS_PER_WINDOW), dtype=np.uint8)
    for t in np.flatnonzero(rows >= 0).tolist():
        term_offsets = offsets[t * n_windows : (t + 1) * n_windows + 1]
        lo, hi = int(term_offsets[0]), int(term_offsets[-1])
        _fill_block_max(term_offsets - lo, *read(lo, hi), block_max[rows[t]])
    return rows, block_max


def block_rows(window_offsets: np.ndarray, n_docs: int, min_postings: int | None = None) -> np.ndarray:
    """int32 (n_terms,): each term's row of block maxima, -1 for none. Terms with at least
    ``min_postings`` postings have one (default: half the number of blocks, see the module docstring;
    tests lower it)."""
    n_windows = n_windows_for(n_docs)
    df = window_offsets[n_windows::n_windows] - window_offsets[:-1:n_windows]
    if min_postings is None:
        min_postings = n_windows * BLOCKS_PER_WINDOW // 2
    eligible = (df > 0) & (df >= min_postings)
    rows = np.full(len(df), -1, dtype=np.int32)
    rows[eligible] = np.arange(int(eligible.sum()), dtype=np.int32)
    return rows


@njit(cache=True, nogil=True)
def _fill_block_max(term_offsets, doc_low, impacts, out):
    """One term's row of block maxima into ``out`` (zeros, uint8 (n_windows * BLOCKS_PER_WINDOW,)):
    ``term_offsets`` int64 (n_windows + 1,) are the term's window offsets into its postings
    ``doc_low`` and ``impacts``, starting at 0."""
    for w in range(term_offsets.shape[0] - 1):
        first = w * BLOCKS_PER_WINDOW
        for p in range(term_offsets[w], term_offsets[w + 1]):
            b = first + (np.int64(doc_low[p]) & (BLOCKS_PER_WINDOW - 1))
            out[b] = max(out[b], impacts[p])


@njit(cache=True, nogil=True, inline="always")
def impact(weight, step):
    """The uint8 impact of ``weight`` at a term's ``step`` (float64): rounded, clipped to 1..255. Builds
    and concatenations quantise with this one rule, so both write the same bytes."""
    level = np.rint(np.float64(weight) / step)
    return np.uint8(min(max(level, 1.0), MAX_IMPACT))


@njit(cache=True, nogil=True)
def _encode(indptr, doc_idx, weights, n_windows, scale, window_offsets, doc_low, impacts):
    """Fill the windowed arrays (see :func:`compress`) term by term, without per-posting temporaries."""
    n_terms = indptr.shape[0] - 1
    for t in range(n_terms):
        start, end = indptr[t], indptr[t + 1]
        step = np.float64(scale[t])
        w = 0
        window_offsets[t * n_windows] = start
        for p in range(start, end):
            d = doc_idx[p]
            while d >= (w + 1) << WINDOW_BITS:
                w += 1
                window_offsets[t * n_windows + w] = p
            doc_low[p] = d & (WINDOW_DOCS - 1)
            impacts[p] = impact(weights[p], step)
        for rest in range(w + 1, n_windows):
            window_offsets[t * n_windows + rest] = end
    window_offsets[n_terms * n_windows] = indptr[n_terms]


@njit(cache=True, nogil=True)
def _decode_doc_idx(window_offsets, doc_low, n_windows, out):
    for slot in range(window_offsets.shape[0] - 1):
        base = (slot % n_windows) << WINDOW_BITS
        for p in range(window_offsets[slot], window_offsets[slot + 1]):
            out[p] = base + doc_low[p]


@njit(cache=True, nogil=True)
def _count_docs(window_offsets, doc_low, n_windows, lengths):
    for slot in range(window_offsets.shape[0] - 1):
        base = (slot % n_windows) << WINDOW_BITS
        for p in range(window_offsets[slot], window_offsets[slot + 1]):
            lengths[base + doc_low[p]] += 1
