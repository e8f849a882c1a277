"""Compiled search kernels (numba) over compressed postings: exact top-k by dot product.

The postings are those of :mod:`sparsearch.backends.embedded.codec` (windows of 65,536 documents,
uint16 document offsets, uint8 impacts with a per-term scale, exact float32 weights beside them).
Three kernels, one result (score descending, then the rank of the ``doc_id`` in sorted order, so
results are deterministic), picked per query by :func:`search_one`:

* :func:`window_top_k`: the postings of the query's essential terms are added, window by window, from
  their impacts into a float32 accumulator of one window (it stays in L2 cache); a pass keeps the documents
  whose approximate score can still reach the top k, and only those are rescored from the exact
  weights. The kernel for top-k searches in large segments.
* :func:`exact_top_k`: every posting's exact weight is added, window by window, into a float64
  accumulator, and a pass picks the top k. Reads twice the bytes but rescores nothing: faster in
  segments of up to :data:`EXACT_MAX_WINDOWS` windows.
* :func:`taat_top_k`: term-at-a-time over the exact weights into a float64 accumulator, tracking
  the touched documents, for large ``k`` (candidates are then most touched documents).

Deleted documents: ``doc_rank[d] < 0`` marks document ``d`` deleted (a tombstone of an online update,
see :mod:`sparsearch.backends.embedded.segment`). Both kernels skip such documents where they would
become candidates, so the top k is the exact top k of the live documents; their postings are still
read (a merge drops them).

Kernels release the GIL, so batch search runs them on several threads.

Compiling them takes tens of seconds; the compiled code is cached on disk under ``$SPARSEARCH_CACHE/numba``
(:func:`sparsearch._cache.configure_numba_cache`), so only the first process after an install or a
change of this file pays it. :func:`search_queries` is the one entry point the engine calls (a single
query is a batch of one), so one compilation serves every search, and the kernels avoid numba's
generic sorts and slice assignment, which compiled for several seconds each.
"""

from __future__ import annotations

import numpy as np

from sparsearch._cache import configure_numba_cache
from sparsearch.backends.embedded.codec import BLOCK_DOCS, BLOCKS_PER_WINDOW, MAX_IMPACT, WINDOW_BITS, WINDOW_DOCS

configure_numba_cache()  # before numba is imported: it reads NUMBA_CACHE_DIR once

from numba import njit  # noqa: E402


@njit(cache=True, nogil=True, inline="always")
def _worse(score_a: float, rank_a: int, score_b: float, rank_b: int) -> bool:
    """True when hit a ranks below hit b (lower score, or equal score and larger doc_id rank)."""
    return score_a < score_b or (score_a == score_b and rank_a > rank_b)


@njit(cache=True, nogil=True)
def _sift_down(heap_scores, heap_docs, doc_rank, size, start):
    i = start
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        worst = left
        right = left + 1
        if right < size and _worse(
            heap_scores[right], doc_rank[heap_docs[right]], heap_scores[left], doc_rank[heap_docs[left]]
        ):
            worst = right
        if _worse(heap_scores[worst], doc_rank[heap_docs[worst]], heap_scores[i], doc_rank[heap_docs[i]]):
            heap_scores[i], heap_scores[worst] = heap_scores[worst], heap_scores[i]
            heap_docs[i], heap_docs[worst] = heap_docs[worst], heap_docs[i]
            i = worst
        else:
            return


@njit(cache=True, nogil=True, inline="always")
def _heapify(heap_scores, heap_docs, doc_rank, size):
    """Arrange the first ``size`` hits into a heap whose root is the worst (see :func:`_sift_down`)."""
    for j in range(size // 2 - 1, -1, -1):
        _sift_down(heap_scores, heap_docs, doc_rank, size, j)


@njit(cache=True, nogil=True)
def _drain_heap(heap_scores, heap_docs, doc_rank, size):
    """The hits of a heap whose root is the worst (see :func:`_sift_down`), best first: int32 (size,)
    docs and float64 (size,) scores. The heap arrays are consumed."""
    out_docs = np.empty(size, dtype=np.int32)
    out_scores = np.empty(size, dtype=np.float64)
    for j in range(size - 1, -1, -1):  # pop from the worst to the best, filling the output from the back
        out_docs[j] = heap_docs[0]
        out_scores[j] = heap_scores[0]
        heap_docs[0] = heap_docs[j]
        heap_scores[0] = heap_scores[j]
        _sift_down(heap_scores, heap_docs, doc_rank, j, 0)
    return out_docs, out_scores


@njit(cache=True, nogil=True)
def _best_k(docs, values, n, doc_rank, k):
    """The best ``k`` of ``docs[:n]`` scored ``values[:n]`` (score descending, then doc_id rank), best
    first, with a bounded heap: int32 (m,) docs and float64 (m,) scores, m = min(k, n)."""
    size = min(k, n)
    heap_scores = np.empty(size, dtype=np.float64)
    heap_docs = np.empty(size, dtype=np.int32)
    for j in range(size):  # fill, then heapify: the root is the worst of the kept hits
        heap_docs[j] = docs[j]
        heap_scores[j] = values[j]
    _heapify(heap_scores, heap_docs, doc_rank, size)
    for j in range(size, n):
        d = docs[j]
        v = values[j]
        if _worse(heap_scores[0], doc_rank[heap_docs[0]], v, doc_rank[d]):
            heap_scores[0] = v
            heap_docs[0] = d
            _sift_down(heap_scores, heap_docs, doc_rank, size, 0)
    return _drain_heap(heap_scores, heap_docs, doc_rank, size)


@njit(cache=True, nogil=True, inline="always")
def _sift_min(heap, i):
    """Move ``heap[i]`` down the min-heap ``heap`` until no child is smaller."""
    k = heap.shape[0]
    while True:
        left = 2 * i + 1
        if left >= k:
            return
        small = left
        if left + 1 < k and heap[left + 1] < heap[left]:
            small = left + 1
        if heap[small] < heap[i]:
            heap[i], heap[small] = heap[small], heap[i]
            i = small
        else:
            return


@njit(cache=True, nogil=True, inline="always")
def _replace_min(heap, value):
    """Put ``value`` at the root of the min-heap ``heap`` (replacing its minimum) and sift it down."""
    heap[0] = value
    _sift_min(heap, 0)


@njit(cache=True, nogil=True)
def _heapify_min(heap):
    """Arrange ``heap`` into a min-heap in place (O(len); ``ndarray.sort`` compiled for seconds)."""
    for i in range(heap.shape[0] // 2 - 1, -1, -1):
        _sift_min(heap, i)


@njit(cache=True, nogil=True, inline="always")
def _find(window_offsets, doc_low, n_windows, term, doc):
    """Position of ``doc``'s posting in ``term``'s list, or -1.

    Searches one window's slice: first a guess by interpolation (document offsets in a window are
    spread fairly evenly), then a galloping search from the guess, then a binary search between the
    last two probes. On 600-posting slices this reads ~3 cache lines where a plain binary search read
    ~10 (rescoring the candidates of a 10k-document search took half its time with it)."""
    slot = term * n_windows + (doc >> WINDOW_BITS)
    lo = np.int64(window_offsets[slot])
    end = np.int64(window_offsets[slot + 1])
    if lo >= end:
        return -1
    low = doc & (WINDOW_DOCS - 1)
    first = np.int64(doc_low[lo])
    last = np.int64(doc_low[end - 1])
    if low <= first:
        return lo if low == first else -1
    if low >= last:
        return end - 1 if low == last else -1
    # first < low < last: the answer, the first position whose offset is >= low, is in (lo, end - 1]
    guess = lo + (low - first) * (end - 1 - lo) // (last - first)
    guess = min(max(guess, lo + 1), end - 1)
    step = np.int64(1)
    if doc_low[guess] < low:  # gallop right: doc_low[hi] >= low holds at end - 1
        below = guess
        while below + step < end - 1 and doc_low[below + step] < low:
            below += step
            step *= 2
        hi = min(below + step, end - 1)
        lo = below + 1
    else:  # gallop left: doc_low[lo] < low holds at the slice's start
        hi = guess
        while hi - step > lo and doc_low[hi - step] >= low:
            hi -= step
            step *= 2
        lo = max(hi - step, lo) + 1
    while lo < hi:  # doc_low[lo - 1] < low <= doc_low[hi]
        mid = (lo + hi) >> 1
        if doc_low[mid] < low:
            lo = mid + 1
        else:
            hi = mid
    if doc_low[lo] == low:
        return lo
    return -1


@njit(cache=True, nogil=True)
def positions(window_offsets, doc_low, n_windows, terms, docs):
    """int64 (n,): the position of the posting of ``(terms[i], docs[i])``, -1 where the document does
    not have the term (``terms``, ``docs``: int64 (n,)). For explanations and rescoring outside a search."""
    out = np.empty(terms.shape[0], dtype=np.int64)
    for i in range(terms.shape[0]):
        out[i] = _find(window_offsets, doc_low, n_windows, terms[i], docs[i])
    return out


@njit(cache=True, nogil=True)
def taat_top_k(window_offsets, doc_low, weights, n_windows, term_ids, query_weights, doc_rank, k, scores, touched):
    """Exact top-``k`` documents of one query, term at a time over the exact weights.

    Args:
        window_offsets, doc_low, weights, n_windows: the segment's postings (see
            :mod:`sparsearch.backends.embedded.codec`).
        term_ids: int64 (q,) the query's terms present in the segment.
        query_weights: float64 (q,) their weights (> 0).
        doc_rank: int32 (n_docs,) rank of each document's external id in sorted order (tie-break);
            negative for a deleted document (never returned).
        k: number of results wanted (>= 1).
        scores: float64 (n_docs,) scratch accumulator, all zeros on entry; left all zeros on exit.
        touched: int32 (n_docs,) scratch list of touched documents.

    Returns:
        ``(docs, scores, postings_read)``: int32 (m,) and float64 (m,) with m <= k, best first.
    """
    n_touched = 0
    postings_read = 0
    for i in range(term_ids.shape[0]):
        t = term_ids[i]
        q = query_weights[i]
        postings_read += window_offsets[(t + 1) * n_windows] - window_offsets[t * n_windows]
        for w in range(n_windows):
            base = w << WINDOW_BITS
            for p in range(window_offsets[t * n_windows + w], window_offsets[t * n_windows + w + 1]):
                d = base + np.int64(doc_low[p])
                if scores[d] == 0.0:  # contributions are > 0, so 0 means "not touched yet"
                    touched[n_touched] = d
                    n_touched += 1
                scores[d] += q * weights[p]

    values = np.empty(n_touched, dtype=np.float64)
    n_live = 0
    for j in range(n_touched):
        d = touched[j]
        touched[n_live] = d  # compact the live documents to the front (deleted ones have rank < 0)
        values[n_live] = scores[d]
        n_live += doc_rank[d] >= 0
        scores[d] = 0.0
    out_docs, out_scores = _best_k(touched, values, n_live, doc_rank, k)
    return out_docs, out_scores, postings_read


# -- exact top-k from impacts, rescored from exact weights --------------------------------------------
#
# Window by window, every posting of every essential query term adds ``float32(q_t * scale_t) * impact``
# into a float32 accumulator of the window's 65,536 documents (256 KB: it stays in L2). The other terms
# are non-essential (MaxScore's, Turtle & Flood 1995): terms with block maxima (codec), lightest first,
# while their largest contributions sum under ESSENTIAL_SHARE of the cut. A document that has none of
# the essential terms cannot reach the cut; the others are bounded by the non-essential terms' block
# maxima, block by block, and only the few whose bound reaches the cut are completed by searching those
# terms' postings (BMP's idea, Mallia et al. 2024, at the granularity of blocks of 16 documents).
#
# The pass over a window: the largest partial score of each block (the codec's blocks are strided, so
# that is an element-wise maximum of 16 contiguous rows of 4,096 floats, which the compiler vectorises),
# plus the block's non-essential bound (a multiply-add over each non-essential term's row of maxima,
# vectorised too), gives one flag per block; only flagged blocks' 16 documents are read. Then the
# window is zeroed in one fixed-length loop. Sparse windows (few postings) list the documents they touch
# and test only those.
#
# Exactness. Let a_d be the approximate score and s_d the exact one. An impact is within one scale
# step of its weight (codec), so |a_d - s_d| <= E = sum_t q_t scale_t, up to float32 rounding: a
# relative (n_q + 2) 2^-24, covered by ``shrink`` as in the float32-then-float64 rescoring this
# replaces. If A_k is the k-th best approximate score of live documents, k documents score at least
# A_k - E exactly, so every document of the exact top k has a_d >= A_k - 2E: ``cut`` keeps all of those
# (tested with weights built to tie and near-tie). A document's non-essential part is at most the sum
# of its block's maxima times the query weights (scaled up by the rounding slack), so the block test
# never drops a document whose a_d reaches the cut. Survivors are rescored from the exact weights in
# float64, summed in the query's term order like :func:`taat_top_k`, so both kernels agree bit for bit.
# With 8-bit impacts the band 2E holds a few tens of documents at 1M (measured on bench/'s corpora).
#
# Seeded cut: while the heap of the best k approximate scores is not full, the k-th largest block
# maximum s of a window is a lower bound of A_k when no document is deleted (k blocks hold k live
# documents whose partial, hence full, approximate score reaches s), so the cut may start at s shrunk
# minus 2E before the window's blocks are visited. Rescoring skips a candidate once k exact scores are
# known and a_d / shrink + E is below the k-th of them: its exact score cannot reach it.

ESSENTIAL_SHARE = 0.5
"""Terms with block maxima become non-essential while their bounds sum below this share of the cut: a
larger share scans fewer postings but completes more documents by searching postings (a cache miss or
two each). Chosen on 1M synthetic documents of cacm's profile, kernel only (see docs/engines.md)."""


@njit(cache=True, nogil=True, inline="always")
def _float_bits(value):
    """The int32 bit pattern of float32 ``value`` (>= 0): order-preserving for non-negative floats."""
    return np.array([value], dtype=np.float32).view(np.int32)[0]


@njit(cache=True, nogil=True, inline="always")
def _offer(v, d, heap, size, k, shrink, band, cand_docs, cand_values, n_cand, cut):
    """Append candidate ``d`` (approximate score ``v``), push ``v`` into the min-heap of the best k
    approximate scores and, when its minimum rose, lower-bound the exact top k anew: ``cut`` (float32,
    rounded down). Returns the new ``(size, cut, n_cand)``."""
    cand_docs[n_cand] = d
    cand_values[n_cand] = v
    n_cand += 1
    changed = False
    if size < k:
        heap[size] = v
        size += 1
        if size == k:
            _heapify_min(heap)
            changed = True
    elif v > heap[0]:
        _replace_min(heap, v)
        changed = True
    if changed:  # the cut never falls: a seeded one (see window_top_k) may be above the heap's
        cut = max(cut, _round_down(np.float64(heap[0]) * shrink - band)[0])
    return size, cut, n_cand


@njit(cache=True, nogil=True, inline="always")
def _round_down(value):
    """float32 at most ``value`` (>= 0), and its int32 bit pattern (at least 1: only touched documents
    pass a test against it)."""
    cut = np.float32(max(value, 0.0) * (1.0 - 2.0**-22))  # float32 rounding is within 2^-24
    return cut, max(_float_bits(cut), np.int32(1))


@njit(cache=True, nogil=True)
def _by_bound(qs):
    """Indices that sort the query terms by their largest approximate contribution ``qs * 255``
    (ascending; insertion sort: queries have tens of terms, and numba's argsort compiles for seconds)."""
    n = qs.shape[0]
    order = np.arange(n)
    for i in range(1, n):
        j = i
        while j > 0 and qs[order[j - 1]] > qs[order[j]]:
            order[j - 1], order[j] = order[j], order[j - 1]
            j -= 1
    return order


@njit(cache=True, nogil=True, inline="always")
def _bits_float(bits):
    """The float32 whose int32 bit pattern is ``bits`` (the inverse of :func:`_float_bits`)."""
    return np.array([bits], dtype=np.int32).view(np.float32)[0]


@njit(cache=True, nogil=True)
def _kth_largest(values, n, k, heap):
    """The ``k``-th largest of int32 ``values[:n]`` (n >= k), with ``heap`` (int32 (k,)) as scratch."""
    for i in range(k):
        heap[i] = values[i]
    _heapify_min(heap)
    for i in range(k, n):
        if values[i] > heap[0]:
            _replace_min(heap, values[i])
    return heap[0]


@njit(cache=True, nogil=True)
def _complete(v, doc, terms, qs, n_ne, window_offsets, doc_low, impacts, n_windows):
    """The approximate score of ``doc``: its essential part ``v`` plus the impacts of the non-essential
    terms ``terms[:n_ne]`` it has (found by :func:`_find`), added in a fixed order."""
    for i in range(n_ne - 1, -1, -1):
        pos = _find(window_offsets, doc_low, n_windows, terms[i], doc)
        if pos >= 0:
            v += qs[i] * np.float32(impacts[pos])
    return v


@njit(cache=True, nogil=True, inline="always")
def _strided_maxima(bits, out):
    """The largest of each strided block of a window accumulator's int32 bit patterns ``bits``
    (WINDOW_DOCS,) into ``out`` (BLOCKS_PER_WINDOW,): block ``x`` holds offsets ``x + j *
    BLOCKS_PER_WINDOW`` (see the codec). Fixed-length rows, so the compiler vectorises the maxima; four
    rows a pass (``BLOCK_DOCS`` is a multiple of 4) read ``out`` a quarter as often as one (3.3 against
    4.1 us a window)."""
    for j in range(0, BLOCK_DOCS, 4):
        r0 = bits[j * BLOCKS_PER_WINDOW : (j + 1) * BLOCKS_PER_WINDOW]
        r1 = bits[(j + 1) * BLOCKS_PER_WINDOW : (j + 2) * BLOCKS_PER_WINDOW]
        r2 = bits[(j + 2) * BLOCKS_PER_WINDOW : (j + 3) * BLOCKS_PER_WINDOW]
        r3 = bits[(j + 3) * BLOCKS_PER_WINDOW : (j + 4) * BLOCKS_PER_WINDOW]
        if j == 0:
            for x in range(BLOCKS_PER_WINDOW):
                out[x] = max(max(r0[x], r1[x]), max(r2[x], r3[x]))
        else:
            for x in range(BLOCKS_PER_WINDOW):
                out[x] = max(out[x], max(max(r0[x], r1[x]), max(r2[x], r3[x])))


@njit(cache=True, nogil=True, inline="always")
def _block_maxima(bits, width, block, out):
    """The largest of each ``block`` values of ``bits[:width]`` (int bit patterns of non-negative floats,
    which order like the floats) into ``out``; returns the number of blocks. Full blocks are read through
    fixed-length views, which the compiler vectorises (``block`` is a module constant at every call)."""
    n_blocks = (width + block - 1) // block
    for b in range(n_blocks):
        lo = b * block
        top = bits.dtype.type(0)
        if lo + block <= width:
            view = bits[lo : lo + block]
            for x in range(block):
                top = max(top, view[x])
        else:
            for x in range(lo, width):
                top = max(top, bits[x])
        out[b] = top
    return n_blocks


@njit(cache=True, nogil=True, inline="always")
def _zero_block(acc, lo, hi, block):
    """Zero ``acc[lo:hi]``, one block: a full one through a fixed-length view (a plain loop over
    ``[lo, hi)`` did not vectorise and cost 0.4 ms a million documents)."""
    if hi - lo == block:
        zone = acc[lo : lo + block]
        for x in range(block):
            zone[x] = 0.0
    else:
        for x in range(lo, hi):
            acc[x] = 0.0


@njit(cache=True, nogil=True)
def _scatter(acc, doc_low, impacts, lo, hi, q):
    """Add ``q * impacts[p]`` into ``acc`` at the window offset of each posting ``p`` in ``[lo, hi)``.
    Unsigned positions and offsets: numba then leaves out its negative-index wraparound (0.56 against
    0.70 ns a posting with the postings in cache; no measurable change on bench/'s 1M corpora, where
    the postings come from memory)."""
    for p in range(np.uint64(lo), np.uint64(hi)):
        acc[doc_low[p]] += q * np.float32(impacts[p])


@njit(cache=True, nogil=True)
def window_top_k(
    window_offsets, doc_low, impacts, impact_scale, weights, n_windows, term_ids, query_weights, doc_rank, all_live,
    k, acc, win_touched, cand_docs, cand_values, block_rows, block_max,
):  # fmt: skip
    """Exact top-``k`` documents of one query from impacts plus exact rescoring (see the comment above).

    Same arguments and results as :func:`taat_top_k`, plus ``impacts``/``impact_scale`` (the codec's
    approximations), ``block_rows``/``block_max`` (the codec's block maxima), ``all_live`` (True when no
    document is deleted: the cut may then be seeded from each window's block maxima) and scratch
    ``acc``: float32 (WINDOW_DOCS,), all zeros on entry and left so; ``win_touched``: int32
    (WINDOW_DOCS + 1,); ``cand_docs``: int32 (n_docs,); ``cand_values``: float32 (n_docs,). Costs the
    postings of the essential terms of each window (3 bytes each), a pass over the windows they touch
    (and the non-essential terms' rows of block maxima there), and a search per completed document and
    non-essential term. ``postings_read`` counts the postings scanned.
    """
    n_q = term_ids.shape[0]
    n_docs = doc_rank.shape[0]
    step = np.empty(n_q, dtype=np.float32)
    error = 0.0  # E: the largest |approximate - exact| score
    for i in range(n_q):
        exact_step = query_weights[i] * np.float64(impact_scale[term_ids[i]])
        step[i] = np.float32(exact_step)
        error += exact_step
    band = 2.0 * error * (1.0 + 1e-6)
    shrink = 1.0 - 3.0 * (n_q + 4) * 2.0**-23
    order = _by_bound(step)
    # the query's terms: those with block maxima by increasing bound (the candidates to be
    # non-essential, a prefix), then the others (always essential)
    terms = np.empty(n_q, dtype=np.int64)
    qs = np.empty(n_q, dtype=np.float32)
    rows = np.empty(n_q, dtype=np.int64)
    n_bounded = 0
    for i in range(n_q):
        n_bounded += block_rows[term_ids[i]] >= 0
    j, j_other = 0, n_bounded
    for i in range(n_q):
        t = term_ids[order[i]]
        at = j if block_rows[t] >= 0 else j_other
        terms[at] = t
        qs[at] = step[order[i]]
        rows[at] = block_rows[t]
        if block_rows[t] >= 0:
            j += 1
        else:
            j_other += 1
    prefix = np.zeros(n_q + 1, dtype=np.float64)  # prefix[i]: the largest approximate score of terms [0, i)
    for i in range(n_q):
        prefix[i + 1] = prefix[i] + np.float64(qs[i]) * MAX_IMPACT
    heap = np.empty(k, dtype=np.float32)  # min-heap of the best approximate scores so far
    size = 0
    cut = np.float32(0.0)  # keeps every touched document (scores > 0) until the heap is full
    slack = (n_q + 4) * 2.0**-22  # covers float32 rounding of a sum of n_q terms, twice over
    grow = np.float32(1.0 + slack)
    acc_bits = acc.view(np.int32)
    n_cand = 0
    postings_read = 0
    n_ne = 0  # terms [0, n_ne) are non-essential: together they cannot lift a document to the cut
    block_top = np.empty(BLOCKS_PER_WINDOW, dtype=np.int32)  # the largest partial score of each block
    top_values = block_top.view(np.float32)
    ne_bound = np.zeros(BLOCKS_PER_WINDOW, dtype=np.float32)  # the most the non-essential terms add a block
    flags = np.zeros(BLOCKS_PER_WINDOW, dtype=np.uint8)
    flag_words = flags.view(np.uint64)
    seed_heap = np.empty(k, dtype=np.int32)
    for w in range(n_windows):
        base = w << WINDOW_BITS
        width = min(WINDOW_DOCS, n_docs - base)
        while n_ne < n_bounded and prefix[n_ne + 1] * (1.0 + slack) < cut * ESSENTIAL_SHARE:
            n_ne += 1
        rest = prefix[n_ne] * (1.0 + slack)
        in_window = 0
        for i in range(n_ne, n_q):
            slot = terms[i] * n_windows + w
            in_window += window_offsets[slot + 1] - window_offsets[slot]
        if in_window == 0:  # a document with non-essential terms only cannot reach the cut
            continue
        postings_read += in_window
        first_block = w * BLOCKS_PER_WINDOW
        if in_window * 8 < width:  # sparse: visit the documents touched
            n_win = 0
            for i in range(n_ne, n_q):
                slot = terms[i] * n_windows + w
                q = qs[i]
                for p in range(window_offsets[slot], window_offsets[slot + 1]):
                    local = np.int64(doc_low[p])
                    win_touched[n_win] = local  # branch-free append: kept only if not touched yet
                    n_win += acc[local] == 0.0
                    acc[local] += q * np.float32(impacts[p])
            # the non-essential terms add at most ``rest``; the block's maxima bound it closer
            partial_cut = _round_down(cut * (1.0 - slack) - rest)[0]
            for j in range(n_win):
                local = np.int64(win_touched[j])
                v = acc[local]
                acc[local] = 0.0
                if v >= partial_cut and v > 0.0 and doc_rank[base + local] >= 0:
                    bound = np.float32(0.0)
                    block = first_block + (local & (BLOCKS_PER_WINDOW - 1))
                    for i in range(n_ne):
                        bound += qs[i] * grow * np.float32(block_max[rows[i], block])
                    if v + bound >= _round_down(cut * (1.0 - slack))[0]:
                        v = _complete(v, base + local, terms, qs, n_ne, window_offsets, doc_low, impacts, n_windows)
                        if v >= cut:
                            size, cut, n_cand = _offer(
                                v, base + local, heap, size, k, shrink, band, cand_docs, cand_values, n_cand, cut
                            )
                            partial_cut = _round_down(cut * (1.0 - slack) - rest)[0]
            continue
        for i in range(n_ne, n_q):  # dense; a call of its own: compiled apart, the loop ran ~5% faster
            slot = terms[i] * n_windows + w
            lo, hi = np.int64(window_offsets[slot]), np.int64(window_offsets[slot + 1])
            _scatter(acc, doc_low, impacts, lo, hi, qs[i])
        _strided_maxima(acc_bits, block_top)  # offsets past ``width`` stay 0
        if all_live and size < k and k <= BLOCKS_PER_WINDOW:
            # k blocks whose best partial score reaches s hold k live documents whose approximate score
            # does (partial <= full): s bounds the k-th best approximate score from below, so the cut
            # can start there instead of at the heap's, which fills with whatever comes first
            seed = _kth_largest(block_top, BLOCKS_PER_WINDOW, k, seed_heap)
            if seed > 0:
                cut = max(cut, _round_down(np.float64(_bits_float(seed)) * shrink - band)[0])
        for i in range(n_ne):
            maxima = block_max[rows[i], first_block : first_block + BLOCKS_PER_WINDOW]
            q = qs[i] * grow
            for x in range(BLOCKS_PER_WINDOW):
                ne_bound[x] += q * np.float32(maxima[x])
        low = _round_down(cut * (1.0 - slack))[0]  # a document is completed when partial + bound reaches it
        for x in range(BLOCKS_PER_WINDOW):
            flags[x] = top_values[x] + ne_bound[x] >= low
        for word in range(BLOCKS_PER_WINDOW // 8):
            if flag_words[word] == 0:
                continue
            for x in range(word * 8, word * 8 + 8):
                if flags[x] == 0:
                    continue
                for local in range(x, width, BLOCKS_PER_WINDOW):
                    v = acc[local]
                    if v + ne_bound[x] >= low and v > 0.0 and doc_rank[base + local] >= 0:
                        v = _complete(v, base + local, terms, qs, n_ne, window_offsets, doc_low, impacts, n_windows)
                        if v >= cut:
                            size, cut, n_cand = _offer(
                                v, base + local, heap, size, k, shrink, band, cand_docs, cand_values, n_cand, cut
                            )
                            low = _round_down(cut * (1.0 - slack))[0]
        window = acc[:WINDOW_DOCS]
        for x in range(WINDOW_DOCS):  # fixed length: vectorised (a loop over [0, width) was not)
            window[x] = 0.0
        if n_ne:
            for x in range(BLOCKS_PER_WINDOW):
                ne_bound[x] = 0.0

    # Rescoring, latest candidates first (they passed the highest cuts): once k exact scores are known,
    # a candidate whose a_d + E (its largest possible exact score, with rounding) is below the k-th of
    # them cannot enter the top k and is skipped. Scores are summed in the query's term order, as
    # taat_top_k does.
    exact_heap = np.empty(k, dtype=np.float64)  # min-heap of the best exact scores so far
    n_exact = 0
    docs = np.empty(n_cand, dtype=np.int32)
    exact = np.empty(n_cand, dtype=np.float64)
    m = 0
    for c in range(n_cand - 1, -1, -1):
        a = cand_values[c]
        if a < cut:  # offered before the final cut was known
            continue
        if n_exact == k and np.float64(a) / shrink + error * (1.0 + 1e-6) < exact_heap[0]:
            continue
        d = np.int64(cand_docs[c])
        score = 0.0
        for i in range(n_q):
            pos = _find(window_offsets, doc_low, n_windows, term_ids[i], d)
            if pos >= 0:
                score += query_weights[i] * weights[pos]
        docs[m] = d
        exact[m] = score
        m += 1
        if n_exact < k:
            exact_heap[n_exact] = score
            n_exact += 1
            if n_exact == k:
                _heapify_min(exact_heap)
        elif score > exact_heap[0]:
            _replace_min(exact_heap, score)
    out_docs, out_scores = _best_k(docs, exact, m, doc_rank, k)
    return out_docs, out_scores, postings_read


# -- exact top-k of a small segment, from the exact weights ------------------------------------------------
#
# A segment of at most EXACT_MAX_WINDOWS windows is scored exactly, window by window: every posting adds
# ``q_t * weight`` into a float64 accumulator of the window (512 KB: in L2), term by term in the query's
# order, so the sums are those of taat_top_k and of the window kernel's rescoring, bit for bit. Scanning
# 6 bytes a posting instead of 3 costs less here than the window kernel's rescoring, which took half of
# a 10k-document search (~150 posting searches a query, cache-cold weights). The top k is then picked
# like the window kernel's pass, without a rounding band: the k-th largest block maximum seeds the cut
# when no document is deleted, and only blocks whose maximum reaches the cut are visited.

_EXACT_BLOCK = 128


@njit(cache=True, nogil=True)
def _scatter_exact(acc, doc_low, weights, lo, hi, q):
    """Add ``q * weights[p]`` (float64) into ``acc`` at the offset of each posting ``p`` in ``[lo, hi)``
    (unsigned, as in :func:`_scatter`)."""
    for p in range(np.uint64(lo), np.uint64(hi)):
        acc[doc_low[p]] += q * weights[p]


@njit(cache=True, nogil=True)
def exact_top_k(window_offsets, doc_low, weights, n_windows, term_ids, query_weights, doc_rank, all_live, k, scores):
    """Exact top-``k`` documents of one query, window by window from the exact weights (see the comment
    above).

    Arguments as for :func:`taat_top_k`, plus ``all_live`` (no ``doc_rank`` is negative: the cut may be
    seeded from the block maxima); ``scores`` is float64 (at least min(n_docs, WINDOW_DOCS),) scratch,
    all zeros on entry and left so. Costs 6 bytes a posting of the query's terms and a pass over the
    blocks that can reach the top k.

    Returns:
        ``(docs, scores, postings_read)``: int32 (m,) and float64 (m,) with m <= k, best first.
    """
    n_docs = doc_rank.shape[0]
    postings_read = 0
    n_q = term_ids.shape[0]
    cut = np.int64(1)  # bits of the smallest score that can enter: only touched documents (> 0) do
    heap_scores = np.empty(k, dtype=np.float64)  # the best k so far, the worst at the root
    heap_docs = np.empty(k, dtype=np.int32)
    root = np.empty(1, dtype=np.float64)  # reads the root's bits without an allocation per change
    root_bits = root.view(np.int64)
    block_top = np.empty(WINDOW_DOCS // _EXACT_BLOCK, dtype=np.int64)
    seed_heap = np.empty(k, dtype=np.int64)
    size = 0
    for w in range(n_windows):
        base = w << WINDOW_BITS
        width = min(WINDOW_DOCS, n_docs - base)
        acc = scores[:width]
        bits = acc.view(np.int64)  # scores are >= 0, and non-negative floats order like their bit patterns
        for i in range(n_q):
            slot = term_ids[i] * n_windows + w
            lo, hi = np.int64(window_offsets[slot]), np.int64(window_offsets[slot + 1])
            postings_read += hi - lo
            _scatter_exact(acc, doc_low, weights, lo, hi, query_weights[i])
        n_blocks = _block_maxima(bits, width, _EXACT_BLOCK, block_top)
        if all_live and n_blocks >= k:  # k blocks reaching s hold k live documents scoring s or more
            cut = max(cut, _kth_largest(block_top, n_blocks, k, seed_heap))
        for b in range(n_blocks):
            lo = b * _EXACT_BLOCK
            hi = min(lo + _EXACT_BLOCK, width)
            if block_top[b] >= cut:
                for local in range(lo, hi):
                    d = base + local
                    # a score equal to the root's may still enter: ties go to the smaller doc_id rank
                    if bits[local] >= cut and doc_rank[d] >= 0:
                        v = acc[local]
                        if size < k:
                            heap_scores[size] = v
                            heap_docs[size] = d
                            size += 1
                            if size < k:
                                continue
                            _heapify(heap_scores, heap_docs, doc_rank, k)
                        elif _worse(heap_scores[0], doc_rank[heap_docs[0]], v, doc_rank[d]):
                            heap_scores[0] = v
                            heap_docs[0] = d
                            _sift_down(heap_scores, heap_docs, doc_rank, k, 0)
                        else:
                            continue
                        root[0] = heap_scores[0]
                        cut = max(cut, root_bits[0])
            _zero_block(acc, lo, hi, _EXACT_BLOCK)
    if size < k:  # never filled, so never heapified
        _heapify(heap_scores, heap_docs, doc_rank, size)
    out_docs, out_scores = _drain_heap(heap_scores, heap_docs, doc_rank, size)
    return out_docs, out_scores, postings_read


# -- the engine's entry point: a batch of queries, the kernel picked per query ---------------------------

TAAT_MIN_DOCS_PER_HIT = 16
"""The window and exact kernels run when the segment has at least this many documents per requested hit;
below, most touched documents are candidates and the term-at-a-time kernel is faster."""
EXACT_MAX_WINDOWS = 2
"""Segments of at most this many windows (131,072 documents) are searched by :func:`exact_top_k`, larger
ones by :func:`window_top_k`. Measured on synthetic corpora of the cisi profile, kernels only, one
thread, p50: 12 against 32 us a query at 10k documents, 87 against 100 at 100k (2 windows), 253-271
against 235-237 at 300k (5 windows), 868 against 620 at 1M."""
TAAT, WINDOW, EXACT = 0, 1, 2
"""Kernel codes returned by :func:`search_queries`."""


@njit(cache=True, nogil=True)
def search_one(
    window_offsets, doc_low, impacts, impact_scale, weights, n_windows, block_rows, block_max, terms, qw, doc_rank,
    all_live, k, scores, touched, acc, win_touched, cand_docs, cand_values,
):  # fmt: skip
    """Exact top-``k`` of one query (``terms`` int64 (q,), ``qw`` float64 (q,), q >= 1) by the kernel
    that suits it: term-at-a-time when ``k`` is large for the segment, else :func:`exact_top_k` in a
    segment of up to :data:`EXACT_MAX_WINDOWS` windows and :func:`window_top_k` in larger ones.
    Arguments as for :func:`search_queries`.

    Returns:
        ``(docs, scores, kernel)``: int32 (m,) and float64 (m,), best first, and the kernel code.
    """
    if k * TAAT_MIN_DOCS_PER_HIT > doc_rank.shape[0]:
        docs, found, _ = taat_top_k(
            window_offsets, doc_low, weights, n_windows, terms, qw, doc_rank, k, scores, touched
        )
        return docs, found, TAAT
    if n_windows <= EXACT_MAX_WINDOWS:
        docs, found, _ = exact_top_k(
            window_offsets, doc_low, weights, n_windows, terms, qw, doc_rank, all_live, k, scores
        )
        return docs, found, EXACT
    docs, found, _ = window_top_k(
        window_offsets, doc_low, impacts, impact_scale, weights, n_windows, terms, qw, doc_rank, all_live, k,
        acc, win_touched, cand_docs, cand_values, block_rows, block_max,
    )  # fmt: skip
    return docs, found, WINDOW


@njit(cache=True, nogil=True)
def search_queries(
    window_offsets, doc_low, impacts, impact_scale, weights, n_windows, block_rows, block_max, query_indptr,
    query_terms, query_weights, doc_rank, all_live, k, scores, touched, acc, win_touched, cand_docs, cand_values,
):  # fmt: skip
    """Exact top-``k`` of every query of a batch, each by :func:`search_one`: one call per batch, so the
    GIL is released for all of it.

    Args:
        window_offsets, doc_low, impacts, impact_scale, weights, n_windows, block_rows, block_max: the
            segment's postings and block maxima (:class:`~sparsearch.backends.embedded.codec.CompressedPostings`).
        query_indptr: int64 (n + 1,); query_terms: int64 (nnz,) term ids (-1: not in this segment);
            query_weights: float64 (nnz,): the queries as CSR rows, the offsets counted from
            ``query_indptr[0]`` (a range of a larger batch's offsets). Terms of weight not > 0 (NaN
            included) or -1 are skipped: they add nothing.
        doc_rank: int32 (n_docs,) doc_id rank per document, negative when deleted.
        all_live: True when no ``doc_rank`` is negative (lets the window kernel seed its cut).
        k: hits wanted per query (>= 1).
        scores: float64 (n_docs,) zeros; touched: int32 (n_docs,); acc: float32 (WINDOW_DOCS,) zeros;
            win_touched: int32 (WINDOW_DOCS + 1,); cand_docs: int32 (n_docs,); cand_values: float32
            (n_docs,): scratch, accumulators left all zeros.

    Returns:
        ``(docs, scores, counts, kernels)``: int32 (n, k') and float64 (n, k') with k' = min(k, n_docs),
        best first, row i valid up to ``counts[i]`` (int64); ``kernels`` int8 (n,): the kernel code
        (:data:`TAAT`, :data:`EXACT`, :data:`WINDOW`) of each query, -1 for a query with no terms in the
        segment.
    """
    n = query_indptr.shape[0] - 1
    width = min(k, doc_rank.shape[0])
    out_docs = np.full((n, width), -1, dtype=np.int32)
    out_scores = np.zeros((n, width), dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)
    kernels = np.full(n, -1, dtype=np.int8)
    first = query_indptr[0]
    for i in range(n):
        lo, hi = query_indptr[i] - first, query_indptr[i + 1] - first
        n_terms = 0
        for j in range(lo, hi):
            n_terms += query_terms[j] >= 0 and query_weights[j] > 0.0
        if n_terms == 0:
            continue
        terms = np.empty(n_terms, dtype=np.int64)
        qw = np.empty(n_terms, dtype=np.float64)
        n_terms = 0
        for j in range(lo, hi):
            if query_terms[j] >= 0 and query_weights[j] > 0.0:
                terms[n_terms] = query_terms[j]
                qw[n_terms] = query_weights[j]
                n_terms += 1
        docs, found, kernel = search_one(
            window_offsets, doc_low, impacts, impact_scale, weights, n_windows, block_rows, block_max, terms, qw,
            doc_rank, all_live, k, scores, touched, acc, win_touched, cand_docs, cand_values,
        )  # fmt: skip
        m = docs.shape[0]
        for j in range(m):  # not a slice assignment: its shape checks compiled for seconds
            out_docs[i, j] = docs[j]
            out_scores[i, j] = found[j]
        counts[i] = m
        kernels[i] = kernel
    return out_docs, out_scores, counts, kernels
