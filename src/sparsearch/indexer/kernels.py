"""Compiled search kernels (numba) over term-major postings.

:func:`taat_top_k` scores one query term-at-a-time into a dense per-document accumulator, tracking
which documents it touched, then keeps the best ``k`` in a bounded heap ordered by score descending,
then by the rank of the ``doc_id`` in sorted order (ascending), so results are deterministic. The
accumulator is reset by walking the touched list, so its cost is proportional to the postings read,
not to the corpus size. Kernels release the GIL, so batch search runs them on several threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
        doc_rank: int32 (n_docs,) rank of each document's external id in sorted order (tie-break).
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

    size = min(k, n_touched)
    heap_scores = np.empty(size, dtype=np.float64)
    heap_docs = np.empty(size, dtype=np.int32)
    for j in range(size):  # fill, then heapify: the root is the worst of the kept hits
        heap_docs[j] = touched[j]
        heap_scores[j] = scores[touched[j]]
    for j in range(size // 2 - 1, -1, -1):
        _sift_down(heap_scores, heap_docs, doc_rank, size, j)
    for j in range(size, n_touched):
        d = touched[j]
        s = scores[d]
        if _worse(heap_scores[0], doc_rank[heap_docs[0]], s, doc_rank[d]):
            heap_scores[0] = s
            heap_docs[0] = d
            _sift_down(heap_scores, heap_docs, doc_rank, size, 0)
    for j in range(n_touched):
        scores[touched[j]] = 0.0

    # Pop the heap from the worst to the best, filling the output from the back.
    out_docs = np.empty(size, dtype=np.int32)
    out_scores = np.empty(size, dtype=np.float64)
    for j in range(size - 1, -1, -1):
        out_docs[j] = heap_docs[0]
        out_scores[j] = heap_scores[0]
        last = j
        heap_docs[0] = heap_docs[last]
        heap_scores[0] = heap_scores[last]
        _sift_down(heap_scores, heap_docs, doc_rank, last, 0)
    return out_docs, out_scores, postings_read
