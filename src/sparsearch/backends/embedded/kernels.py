"""Compiled search kernels (numba) over term-major postings: exact top-k by dot product.

Three kernels, one result (score descending, then the rank of the ``doc_id`` in sorted order, so
results are deterministic), picked per query by the engine (:meth:`EmbeddedIndex.search`):

* :func:`dense_top_k`: exhaustive scoring into a float32 accumulator over every document, one pass
  to keep the documents that can be in the top k, exact float64 rescoring of those. The fastest
  kernel when pruning cannot skip most postings (most learned-sparse queries).
* :func:`maxscore_top_k`: MaxScore pruning over document windows (see the comment above it), for
  queries whose high-weight terms are rare and whose frequent terms weigh little (BM25-like): it
  reads a small share of the postings. :func:`maxscore_essential_postings` estimates that share.
* :func:`taat_top_k`: term-at-a-time into a float64 accumulator, tracking the touched documents,
  for large ``k`` (candidates are then most touched documents); its cost is proportional to the
  postings read, not to the corpus size.

Deleted documents: ``doc_rank[d] < 0`` marks document ``d`` deleted (a tombstone of an online update,
see :mod:`sparsearch.backends.embedded.segment`). Every kernel skips such documents where they would
become candidates, so the top k is the exact top k of the live documents and thresholds are the
scores of k live documents; their postings are still read (a merge drops them).

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


@njit(cache=True, nogil=True)
def taat_top_k(indptr, doc_idx, weights, term_ids, query_weights, doc_rank, k, scores, touched):
    """Exact top-``k`` documents of one query.

    Args:
        indptr: int64 (n_terms + 1,) posting offsets per term.
        doc_idx: int32 (nnz,) document of each posting.
        weights: float32 (nnz,) weight of each posting.
        term_ids: int64 (q,) the query's terms present in the index.
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
        term = term_ids[i]
        q = query_weights[i]
        start = indptr[term]
        end = indptr[term + 1]
        postings_read += end - start
        for p in range(start, end):
            d = doc_idx[p]
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
    for j in range(size // 2 - 1, -1, -1):
        _sift_down(heap_scores, heap_docs, doc_rank, size, j)
    for j in range(size, n):
        d = docs[j]
        v = values[j]
        if _worse(heap_scores[0], doc_rank[heap_docs[0]], v, doc_rank[d]):
            heap_scores[0] = v
            heap_docs[0] = d
            _sift_down(heap_scores, heap_docs, doc_rank, size, 0)
    return _drain_heap(heap_scores, heap_docs, doc_rank, size)


# -- exact top-k by exhaustive float32 scoring ----------------------------------------------------------
#
# Every posting of every query term is added into a float32 accumulator over all documents (postings are
# in doc order, so each list writes the accumulator front to back: about a nanosecond a posting on 2020s
# x86), then one pass over the accumulator keeps the documents that can be in the top k, and only those
# are rescored exactly. Exactness: a float32 sum of n_q products of positive float32 numbers is within a
# relative (n_q + 2) * 2^-24 of the exact score (products: 2 roundings each; sums: one per term), and the
# float64 rescoring within n_q * 2^-53 of it; ``eps`` doubles the larger bound. If v_k is the k-th best
# float32 score, k documents score at least v_k / (1 + eps), so every document of the exact top k has a
# float32 score of at least v_k * (1 - 3 eps): the pass keeps all of those (tested with scores built to
# tie and near-tie). Rescoring sums in the query's term order, like :func:`taat_top_k`, so both kernels
# give the same scores bit for bit.


@njit(cache=True, nogil=True)
def dense_top_k(indptr, doc_idx, weights, term_ids, query_weights, doc_rank, k, acc, cand_docs, cand_values):
    """Exact top-``k`` documents of one query by exhaustive scoring (see the comment above).

    Same arguments and results as :func:`taat_top_k`, with scratch ``acc``: float32 (n_docs,), all zeros
    on entry and left all zeros; ``cand_docs``: int32 (n_docs,); ``cand_values``: float32 (n_docs,).
    Costs every posting of the query's terms plus one pass over ``n_docs``: the kernel for queries
    that pruning cannot shorten (the engine picks it with :func:`maxscore_essential_postings`).
    """
    n_q = term_ids.shape[0]
    postings_read = 0
    for i in range(n_q):
        t = term_ids[i]
        q = np.float32(query_weights[i])
        postings_read += indptr[t + 1] - indptr[t]
        for p in range(indptr[t], indptr[t + 1]):
            acc[doc_idx[p]] += q * weights[p]

    shrink = 1.0 - 3.0 * (n_q + 4) * 2.0**-23  # 1 - 3 eps, eps = 2 (n_q + 2) 2^-24 rounded up
    heap = np.empty(k, dtype=np.float32)  # min-heap of the best float32 scores seen so far
    size = 0
    cut = np.float32(np.finfo(np.float32).tiny)  # keeps every touched document until the heap is full
    n_cand = 0
    for d in range(acc.shape[0]):
        v = acc[d]
        if v >= cut and doc_rank[d] >= 0:  # rare once the heap is full: the branch predicts well
            cand_docs[n_cand] = d
            cand_values[n_cand] = v
            n_cand += 1
            if size < k:
                heap[size] = v
                size += 1
                if size == k:
                    _heapify_min(heap)
                    cut = np.float32(heap[0] * shrink)
            elif v > heap[0]:
                _replace_min(heap, v)
                cut = np.float32(heap[0] * shrink)
        acc[d] = 0.0

    m = 0  # candidates kept before the final cut was known
    for c in range(n_cand):
        if cand_values[c] >= cut:
            cand_docs[m] = cand_docs[c]
            m += 1
    exact = np.zeros(m, dtype=np.float64)
    for i in range(n_q):  # candidates ascend by doc, so each list is searched forward once
        t = term_ids[i]
        q = query_weights[i]
        pos = indptr[t]
        end = indptr[t + 1]
        for c in range(m):
            pos = _gallop(doc_idx, pos, end, cand_docs[c])
            if pos < end and doc_idx[pos] == cand_docs[c]:
                exact[c] += q * weights[pos]
    out_docs, out_scores = _best_k(cand_docs, exact, m, doc_rank, k)
    return out_docs, out_scores, postings_read


# -- exact top-k with MaxScore pruning ----------------------------------------------------------------
#
# Turtle & Flood's MaxScore (1995) over windows of documents, the way Lucene's MaxScoreBulkScorer
# runs it (https://github.com/apache/lucene, org.apache.lucene.search.MaxScoreBulkScorer):
#
# * Query terms are sorted by their upper bound ``ub_t = q_t * max_weight_t`` (smallest first).
#   Given the current threshold ``theta`` (the k-th best score found so far), the longest prefix of
#   terms whose bounds sum below theta is "non-essential": a document that has none of the other
#   ("essential") terms cannot reach the top k.
# * A first theta comes before any window is read (:func:`_seed_threshold`): the full scores of the
#   best documents of the query's shortest, highest-bound lists.
# * Documents are visited in windows of ``WINDOW`` consecutive doc_idx. The essential posting lists
#   are scanned into a small window accumulator (it stays in cache, unlike a corpus-wide one). Touched
#   documents whose essential score plus the non-essential bounds reaches theta become candidates;
#   the non-essential lists are then applied to the candidates, largest bound first (each list's slice
#   of the window is probed by search when candidates are few, scanned when they are many), and
#   candidates whose bound falls below theta are dropped after each list. Survivors are offered to a
#   top-k heap. Windows with no essential posting are skipped.
# * After each window theta rises to the heap's k-th score and the non-essential prefix grows, so the
#   lists that carry most postings (frequent tokens, small weights) are soon only probed, not scanned.
#
# Exactness: a document is dropped only when an upper bound of its score is below theta, and theta is
# always the score of k real documents. Documents entering the heap are rescored in one fixed term
# order (the query's terms by increasing bound), so equal vectors get equal scores and ties fall back
# to doc_id. Bounds carry a relative slack of 1e-9 so float rounding can never drop a document that
# belongs in the top k. Inner loops append and filter without branches (``n += keep``): mispredicted
# branches, not memory, dominated the first version.

_SLACK = 1.0 + 1e-9
WINDOW = 4096
_MIN_WINDOW = 256
_SEED_WIDTH = 2  # the seed rescores this many times k documents
_SEED_SHIFT = 9  # the seed reads at most max(window, n_docs >> _SEED_SHIFT) postings
PROBE_COST = 8  # a probe costs about this many scanned postings (measured on synthetic 1M corpora)


@njit(cache=True, nogil=True, inline="always")
def _lower_bound(doc_idx, lo, hi, doc):
    """First position ``p`` in ``[lo, hi)`` with ``doc_idx[p] >= doc`` (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if doc_idx[mid] < doc:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, inline="always")
def _gallop(doc_idx, lo, hi, doc):
    """:func:`_lower_bound` searched forward from ``lo`` by doubling steps: O(log distance)."""
    if lo >= hi or doc_idx[lo] >= doc:
        return lo
    left = lo  # invariant: doc_idx[left] < doc
    step = 1
    while True:
        right = left + step
        if right >= hi:
            right = hi
            break
        if doc_idx[right] >= doc:
            break
        left = right
        step *= 2
    return _lower_bound(doc_idx, left + 1, right, doc)


@njit(cache=True, nogil=True, inline="always")
def _search_near(doc_idx, lo, hi, doc, guess):
    """:func:`_lower_bound` in ``[lo, hi)`` starting from ``guess`` (an interpolated position) and
    doubling the step outwards, so a good guess costs a few comparisons."""
    if guess < lo:
        guess = lo
    if guess >= hi:
        guess = hi - 1
    if guess < lo:
        return lo
    if doc_idx[guess] < doc:
        return _gallop(doc_idx, guess, hi, doc)
    right = guess  # invariant: doc_idx[right] >= doc
    step = 1
    while True:
        left = right - step
        if left < lo:
            return _lower_bound(doc_idx, lo, right, doc)
        if doc_idx[left] < doc:
            return _lower_bound(doc_idx, left + 1, right, doc)
        right = left
        step *= 2


@njit(cache=True, nogil=True)
def _kth_largest(values, n, k):
    """The k-th largest of ``values[:n]`` (n >= k >= 1), with a bounded min-heap."""
    heap = np.empty(k, dtype=np.float64)
    for j in range(k):
        heap[j] = values[j]
    _heapify_min(heap)
    for j in range(k, n):
        if values[j] > heap[0]:
            _replace_min(heap, values[j])
    return heap[0]


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


@njit(cache=True, nogil=True)
def _partial_scores(doc_idx, weights, starts, ends, qw, scores, touched, budget):
    """Adds the first ``budget`` postings of the highest-bound lists (the last terms of the
    increasing-bound order; a long list is read from its start only) into ``scores``, listing each
    document touched in ``touched``. Returns ``(n_touched, postings_read)``; the caller resets
    ``scores`` at the touched documents."""
    n_touched = 0
    read = 0
    for i in range(starts.shape[0] - 1, -1, -1):
        if read >= budget:
            break
        stop = min(ends[i], starts[i] + budget - read)
        read += stop - starts[i]
        for p in range(starts[i], stop):
            d = doc_idx[p]
            if scores[d] == 0.0:
                touched[n_touched] = d
                n_touched += 1
            scores[d] += qw[i] * weights[p]
    return n_touched, read


@njit(cache=True, nogil=True)
def _drop_deleted(touched, n_touched, doc_rank, scores):
    """Compacts ``touched[:n_touched]`` to its live documents (resetting the deleted ones' ``scores``);
    returns their number."""
    n_live = 0
    for j in range(n_touched):
        d = touched[j]
        touched[n_live] = d
        if doc_rank[d] >= 0:
            n_live += 1
        else:
            scores[d] = 0.0
    return n_live


@njit(cache=True, nogil=True)
def _seed_threshold(doc_idx, weights, starts, ends, qw, doc_rank, k, scores, touched, budget):
    """A first theta before any window is read: the k-th best full score among the best partially
    scored documents of the query's highest-bound lists (their first ``budget`` postings in all;
    terms are in increasing-bound order). Full scores are found by binary search in every list, summed in the
    canonical term order, so theta is the score of k real live documents (deleted ones, with a negative
    ``doc_rank``, are left out). ``scores`` and ``touched`` (n_docs,) are left as found.

    Returns:
        ``(theta, postings_read)``; theta is -1 when fewer than k documents were seen.
    """
    n_q = starts.shape[0]
    n_touched, read = _partial_scores(doc_idx, weights, starts, ends, qw, scores, touched, budget)
    n_touched = _drop_deleted(touched, n_touched, doc_rank, scores)
    if n_touched < k:
        for j in range(n_touched):
            scores[touched[j]] = 0.0
        return -1.0, read
    width = min(_SEED_WIDTH * k, n_touched)
    partial = np.empty(n_touched, dtype=np.float64)
    for j in range(n_touched):
        partial[j] = scores[touched[j]]
    cutoff = _kth_largest(partial, n_touched, width)
    finals = np.empty(width, dtype=np.float64)
    m = 0
    for j in range(n_touched):
        d = touched[j]
        if m < width and scores[d] >= cutoff:
            s = 0.0
            for i in range(n_q):
                pos = _lower_bound(doc_idx, starts[i], ends[i], d)
                if pos < ends[i] and doc_idx[pos] == d:
                    s += qw[i] * weights[pos]
            finals[m] = s
            m += 1
        scores[d] = 0.0
    return _kth_largest(finals, m, k), read + m * n_q


@njit(cache=True, nogil=True)
def _bounds(indptr, weights, max_weight, term_ids, query_weights):
    """Upper bound ``q_t * max_weight_t`` (float64 (q,)) of each query term's contribution; fills in
    the max weights not known yet (indexes store no bounds): one pass over the list, then cached."""
    bound = np.empty(term_ids.shape[0], dtype=np.float64)
    for i in range(term_ids.shape[0]):
        t = term_ids[i]
        m = max_weight[t]
        if m < 0.0:
            m = 0.0
            for p in range(indptr[t], indptr[t + 1]):
                m = max(m, weights[p])
            max_weight[t] = m  # threads racing here write the same value
        bound[i] = query_weights[i] * m
    return bound


@njit(cache=True, nogil=True)
def _argsort_stable(values):
    """The int64 indices that sort ``values`` ascending, equal values in index order: what
    ``np.argsort(values, kind="mergesort")`` returns, by a bottom-up merge sort (numba's own compiled
    for seconds)."""
    n = values.shape[0]
    order = np.arange(n)
    merged = np.empty(n, dtype=np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            for out in range(lo, hi):
                if i < mid and (j >= hi or values[order[i]] <= values[order[j]]):  # <=: the left run first
                    merged[out] = order[i]
                    i += 1
                else:
                    merged[out] = order[j]
                    j += 1
        order, merged = merged, order
        width *= 2
    return order


@njit(cache=True, nogil=True)
def _by_bound(indptr, weights, max_weight, term_ids, query_weights):
    """The query's terms in order of increasing bound (:func:`_bounds`): float64 (q,) weights, int64
    (q,) list starts and ends, and float64 (q + 1,) ``prefix[i]`` = the sum of the i smallest bounds."""
    n_q = term_ids.shape[0]
    bound = _bounds(indptr, weights, max_weight, term_ids, query_weights)
    order = _argsort_stable(bound)
    qw = np.empty(n_q, dtype=np.float64)
    starts = np.empty(n_q, dtype=np.int64)
    ends = np.empty(n_q, dtype=np.int64)
    prefix = np.zeros(n_q + 1, dtype=np.float64)
    for i in range(n_q):
        t = term_ids[order[i]]
        qw[i] = query_weights[order[i]]
        starts[i] = indptr[t]
        ends[i] = indptr[t + 1]
        prefix[i + 1] = prefix[i] + bound[order[i]]
    return qw, starts, ends, prefix


@njit(cache=True, nogil=True, inline="always")
def _seed_budget(n_docs, window):
    """Postings the seed threshold may read."""
    return max(min(window, max(_MIN_WINDOW, n_docs >> 3)), n_docs >> _SEED_SHIFT)


@njit(cache=True, nogil=True)
def maxscore_essential_postings(
    indptr, doc_idx, weights, max_weight, term_ids, query_weights, doc_rank, k, scores, touched
):  # fmt: skip
    """``(essential, total)``: the postings MaxScore would have to scan at a first threshold (the lists
    that stay essential given the seed's partial scores: an upper bound of what :func:`maxscore_top_k`
    scans, as its threshold only rises from a higher start) and all the postings of the query's
    terms. The engine compares them to pick a kernel. Arguments as for :func:`maxscore_top_k`;
    ``scores`` and ``touched`` are scratch, left as found."""
    n_q = term_ids.shape[0]
    qw, starts, ends, prefix = _by_bound(indptr, weights, max_weight, term_ids, query_weights)
    # theta: the k-th best partial score of the seed's documents (a lower bound of the seed's own
    # theta, without its binary searches: scattered reads in long lists cost more than the estimate saves)
    n_touched, _ = _partial_scores(
        doc_idx, weights, starts, ends, qw, scores, touched, _seed_budget(scores.shape[0], WINDOW)
    )
    n_touched = _drop_deleted(touched, n_touched, doc_rank, scores)
    partial = np.empty(n_touched, dtype=np.float64)
    for j in range(n_touched):
        partial[j] = scores[touched[j]]
        scores[touched[j]] = 0.0
    theta = _kth_largest(partial, n_touched, k) if n_touched >= k else -1.0
    essential = 0
    total = 0
    for i in range(n_q):
        total += ends[i] - starts[i]
        if prefix[i + 1] * _SLACK >= theta:
            essential += ends[i] - starts[i]
    return essential, total


@njit(cache=True, nogil=True)
def maxscore_top_k(
    indptr, doc_idx, weights, max_weight, term_ids, query_weights, doc_rank, k, scores, touched, window, probe_cost
):  # fmt: skip
    """Exact top-``k`` documents of one query, skipping postings that cannot change the result.

    Same arguments and results as :func:`taat_top_k`, plus ``max_weight``: float32 (n_terms,), the
    largest posting weight of each term, or a negative value (``UNKNOWN_MAX_WEIGHT``) where it is not
    known yet: the kernel then computes it from the term's postings and writes it back (so the array
    must be writable), the first query using a term paying one scan of its list. ``scores`` and
    ``touched`` are scratch as there (left as found). Scores are summed over the query's terms in
    order of increasing bound ``q_t * max_weight_t``.
    ``window`` (documents per window, normally :data:`WINDOW`) and ``probe_cost`` (probe a list when
    candidates x probe_cost < its slice; normally :data:`PROBE_COST`) only change speed, never
    results: tests vary them to reach every path on small data. (They are not numba default
    arguments: calls that omit arguments go through a dispatch path ~60 us slower.)

    Returns:
        ``(docs, scores, postings_read)``: int32 (m,) and float64 (m,) with m <= k, best first;
        ``postings_read`` counts postings scanned plus postings probed.
    """
    n_q = term_ids.shape[0]
    n_docs = doc_rank.shape[0]
    # cursor: lower bound of the next window's start, per term
    qw, cursor, ends, prefix = _by_bound(indptr, weights, max_weight, term_ids, query_weights)
    lo_pos = np.empty(n_q, dtype=np.int64)  # the window's slice of each list: [lo_pos, hi_pos)
    hi_pos = np.empty(n_q, dtype=np.int64)

    size = 0
    heap_scores = np.empty(k, dtype=np.float64)
    heap_docs = np.empty(k, dtype=np.int32)
    budget = _seed_budget(n_docs, window)
    theta, postings_read = _seed_threshold(doc_idx, weights, cursor, ends, qw, doc_rank, k, scores, touched, budget)
    n_ne = 0  # terms [0, n_ne) are non-essential
    width = min(window, max(_MIN_WINDOW, n_docs >> 3), n_docs)  # >= 8 windows: theta rises between windows
    acc = scores[:width]
    win_touched = np.empty(width + 1, dtype=np.int32)  # + 1: the branch-free append writes one past
    candidate = np.zeros(width, dtype=np.bool_)
    cand = np.empty(width + 1, dtype=np.int32)

    while n_ne < n_q and prefix[n_ne + 1] * _SLACK < theta:  # the seed already makes some non-essential
        n_ne += 1
    while n_ne < n_q:
        # the window starts at the smallest unread essential posting
        start = n_docs
        for i in range(n_ne, n_q):
            if cursor[i] < ends[i] and doc_idx[cursor[i]] < start:
                start = doc_idx[cursor[i]]
        if start == n_docs:
            break
        stop = start + width

        # 1. scan the essential lists' postings inside the window
        n_win = 0
        for i in range(n_ne, n_q):
            lo_pos[i] = cursor[i]
            q = qw[i]
            p = cursor[i]
            end = ends[i]
            while p < end:
                d = doc_idx[p]
                if d >= stop:
                    break
                local = d - start
                win_touched[n_win] = local  # branch-free append: kept only if not touched yet
                n_win += acc[local] == 0.0  # contributions are > 0, so 0 means "not touched yet"
                acc[local] += q * weights[p]
                p += 1
            postings_read += p - cursor[i]
            cursor[i] = p
            hi_pos[i] = p

        # 2. candidates: touched documents whose bound reaches theta
        n_cand = 0
        rest = prefix[n_ne]
        for j in range(n_win):
            local = win_touched[j]
            keep = ((acc[local] + rest) * _SLACK >= theta) & (doc_rank[start + local] >= 0)
            cand[n_cand] = local
            candidate[local] = keep
            n_cand += keep

        # 3. complete them with the non-essential lists, largest bound first, dropping candidates
        #    whose bound falls below theta; a list is scanned where that is cheaper than probing it
        for i in range(n_ne - 1, -1, -1):
            if n_cand == 0:
                break
            lo = _gallop(doc_idx, cursor[i], ends[i], start)
            hi = _search_near(doc_idx, lo, ends[i], stop, lo + (width * (ends[i] - lo)) // (n_docs - start))
            lo_pos[i] = lo
            hi_pos[i] = hi
            cursor[i] = hi
            q = qw[i]
            if n_cand * probe_cost < hi - lo:
                density = (hi - lo) / width
                for c in range(n_cand):
                    local = cand[c]
                    pos = _search_near(doc_idx, lo, min(hi, lo + local + 1), start + local, lo + int(local * density))
                    if pos < hi and doc_idx[pos] == start + local:
                        acc[local] += q * weights[pos]
                postings_read += n_cand
            else:
                for p in range(lo, hi):
                    local = doc_idx[p] - start
                    acc[local] += q * weights[p] * candidate[local]
                postings_read += hi - lo
            kept = 0
            for c in range(n_cand):
                local = cand[c]
                keep = (acc[local] + prefix[i]) * _SLACK >= theta
                cand[kept] = local
                candidate[local] = keep
                kept += keep
            n_cand = kept

        # 4. rescore the survivors in the canonical term order and offer them to the heap
        for c in range(n_cand):
            local = cand[c]
            candidate[local] = False
            if size == k and acc[local] * _SLACK < theta:  # theta rose within this window
                continue
            d = start + local
            s = 0.0
            for i in range(n_q):
                pos = _lower_bound(doc_idx, lo_pos[i], hi_pos[i], d)
                if pos < hi_pos[i] and doc_idx[pos] == d:
                    s += qw[i] * weights[pos]
            if size < k:
                heap_scores[size] = s
                heap_docs[size] = d
                size += 1
                if size == k:
                    for h in range(k // 2 - 1, -1, -1):
                        _sift_down(heap_scores, heap_docs, doc_rank, k, h)
                    theta = max(theta, heap_scores[0])
            elif _worse(heap_scores[0], doc_rank[heap_docs[0]], s, doc_rank[d]):
                heap_scores[0] = s
                heap_docs[0] = d
                _sift_down(heap_scores, heap_docs, doc_rank, k, 0)
                theta = max(theta, heap_scores[0])
        for j in range(n_win):
            acc[win_touched[j]] = 0.0

        # 5. more terms become non-essential as theta rises
        while n_ne < n_q and prefix[n_ne + 1] * _SLACK < theta:
            n_ne += 1
        if n_ne == n_q:
            break

    if size < k:  # the heap was never built
        for h in range(size // 2 - 1, -1, -1):
            _sift_down(heap_scores, heap_docs, doc_rank, size, h)
    out_docs, out_scores = _drain_heap(heap_scores, heap_docs, doc_rank, size)
    return out_docs, out_scores, postings_read


# -- the engine's entry point: a batch of queries, the kernel picked per query ---------------------------

PRUNING_MIN_DOCS_PER_HIT = 16
"""The dense and MaxScore kernels run when the corpus has at least this many documents per requested
hit; below, most touched documents are candidates and the term-at-a-time kernel is faster."""
PRUNING_MIN_DOCS = 32_768
"""MaxScore is considered from this many documents: on bench/'s 10k-document corpus it was never faster
than exhaustive scoring, even for BM25-like queries (~15 us a query), so smaller corpora skip the estimate."""
MAXSCORE_MAX_SHARE = 0.15
"""MaxScore runs when the postings it must scan (:func:`maxscore_essential_postings`) are at most this
share of exhaustive scoring's cost, all postings plus :data:`DENSE_SCAN_COST` per document: pruning
pays ~4x more per posting read. Chosen on bench/'s 1M-document synthetic corpus with
``bench/kernel_choice.py``, where it comes within 4% of always picking the faster kernel per query
(BM25-like queries prune; IDF-weighted learned queries mostly do not)."""
DENSE_SCAN_COST = 0.3
"""What the dense kernel's pass over one document costs, in postings added (measured at 1M documents)."""
TAAT, DENSE, MAXSCORE = 0, 1, 2
"""Kernel codes returned by :func:`search_queries`."""


@njit(cache=True, nogil=True)
def search_one(indptr, doc_idx, weights, max_weight, terms, qw, doc_rank, k, scores, touched, acc, values):
    """Exact top-``k`` of one query (``terms`` int64 (q,), ``qw`` float64 (q,), q >= 1) by the kernel
    that suits it: term-at-a-time when ``k`` is large for the corpus, else MaxScore when
    :func:`maxscore_essential_postings` says it reads a small share of the postings (see
    :data:`MAXSCORE_MAX_SHARE`), else :func:`dense_top_k`. Arguments as for :func:`search_queries`.

    Returns:
        ``(docs, scores, kernel)``: int32 (m,) and float64 (m,), best first, and the kernel code.
    """
    n_docs = doc_rank.shape[0]
    if k * PRUNING_MIN_DOCS_PER_HIT > n_docs:
        docs, found, _ = taat_top_k(indptr, doc_idx, weights, terms, qw, doc_rank, k, scores, touched)
        return docs, found, TAAT
    if n_docs >= PRUNING_MIN_DOCS:
        essential, total = maxscore_essential_postings(
            indptr, doc_idx, weights, max_weight, terms, qw, doc_rank, k, scores, touched
        )
        if essential <= MAXSCORE_MAX_SHARE * (total + DENSE_SCAN_COST * n_docs):
            docs, found, _ = maxscore_top_k(
                indptr, doc_idx, weights, max_weight, terms, qw, doc_rank, k, scores, touched, WINDOW, PROBE_COST
            )
            return docs, found, MAXSCORE
    docs, found, _ = dense_top_k(indptr, doc_idx, weights, terms, qw, doc_rank, k, acc, touched, values)
    return docs, found, DENSE


@njit(cache=True, nogil=True)
def search_queries(
    indptr, doc_idx, weights, max_weight, query_indptr, query_terms, query_weights, doc_rank, k,
    scores, touched, acc, values,
):  # fmt: skip
    """Exact top-``k`` of every query of a batch, each by :func:`search_one`: one call per batch, so the
    GIL is released for all of it.

    Args:
        indptr, doc_idx, weights, max_weight, doc_rank: the index, as for :func:`maxscore_top_k`.
        query_indptr: int64 (n + 1,); query_terms: int64 (nnz,) term ids; query_weights: float64 (nnz,)
            (> 0): the queries as CSR rows.
        k: hits wanted per query (>= 1).
        scores: float64 (n_docs,) zeros; touched: int32 (n_docs,); acc: float32 (n_docs,) zeros;
            values: float32 (n_docs,): scratch, accumulators left all zeros.

    Returns:
        ``(docs, scores, counts, kernels)``: int32 (n, k') and float64 (n, k') with k' = min(k, n_docs),
        best first, row i valid up to ``counts[i]`` (int64); ``kernels`` int8 (n,): the kernel code
        (:data:`TAAT`, :data:`DENSE`, :data:`MAXSCORE`) of each query, -1 for a query with no terms.
    """
    n = query_indptr.shape[0] - 1
    width = min(k, doc_rank.shape[0])
    out_docs = np.full((n, width), -1, dtype=np.int32)
    out_scores = np.zeros((n, width), dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)
    kernels = np.full(n, -1, dtype=np.int8)
    for i in range(n):
        lo, hi = query_indptr[i], query_indptr[i + 1]
        if hi == lo:
            continue
        docs, found, kernel = search_one(
            indptr, doc_idx, weights, max_weight, query_terms[lo:hi], query_weights[lo:hi], doc_rank, k,
            scores, touched, acc, values,
        )  # fmt: skip
        m = docs.shape[0]
        for j in range(m):  # not a slice assignment: its shape checks compiled for seconds
            out_docs[i, j] = docs[j]
            out_scores[i, j] = found[j]
        counts[i] = m
        kernels[i] = kernel
    return out_docs, out_scores, counts, kernels
