"""Differential tests of the search kernels over compressed postings: the window kernel (impacts, then
exact rescoring of the candidates), the exact window-by-window kernel and term-at-a-time (both exact
weights) against a brute-force dot product, on random postings with ties and tombstones, on corpora
spanning several windows (sparse and dense windows), on near-ties that neither float32 nor 8-bit
impacts can tell apart, and through the batch entry point."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsearch.backends.embedded.codec import (
    BLOCKS_PER_WINDOW,
    WINDOW_DOCS,
    CompressedPostings,
    block_maxima,
    compress,
)
from sparsearch.backends.embedded.kernels import (
    EXACT,
    EXACT_MAX_WINDOWS,
    TAAT,
    WINDOW,
    exact_top_k,
    positions,
    search_queries,
    taat_top_k,
    window_top_k,
)
from sparsearch.backends.embedded.postings import PostingsBuilder

# Dyadic weights make every sum exact in float64, so equal scores are real ties (broken by doc rank).
DYADIC = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.25])


def compressed(matrix: sp.csr_matrix, min_postings: int | None = 1) -> CompressedPostings:
    """The (n_docs x vocab) float32 matrix as a segment's compressed postings, with block maxima for the
    terms of at least ``min_postings`` postings (default: every term, so that the window kernel prunes;
    None: the codec's rule)."""
    coo = matrix.tocoo()
    builder = PostingsBuilder([f"t{i}" for i in range(matrix.shape[1])])
    builder.add_coo(coo.col, coo.row, coo.data, matrix.shape[0])
    p = compress(builder.build())
    p.block_rows, p.block_max = block_maxima(p.window_offsets, p.doc_low, p.impacts, p.n_docs, min_postings)
    return p


def random_matrix(rng, n_docs: int, vocab: int, density: float, dyadic: bool, duplicates: int) -> sp.csr_matrix:
    """Random float32 documents, some repeated verbatim (identical vectors tie exactly)."""
    mask = rng.random((n_docs, vocab)) < density
    values = rng.choice(DYADIC, size=mask.shape) if dyadic else rng.uniform(0.01, 3.0, size=mask.shape)
    dense = np.where(mask, values, 0.0).astype(np.float32)
    for _ in range(duplicates):
        dense[rng.integers(0, n_docs)] = dense[rng.integers(0, n_docs)]
    return sp.csr_matrix(dense)


def brute_force(matrix: sp.csr_matrix, term_ids, query_weights, rank, k):
    """Top-k (doc, score) by dot product summed in the query's term order (float64); only live
    documents (rank >= 0) sharing a term; score desc, rank asc."""
    csc = matrix.tocsc()
    scores = np.zeros(matrix.shape[0])
    present = np.zeros(matrix.shape[0], dtype=bool)
    for term, weight in zip(term_ids, query_weights, strict=True):
        column = csc[:, int(term)].toarray().ravel().astype(np.float64)
        scores += column * weight
        present |= column > 0
    matched = np.flatnonzero(present & (rank >= 0))
    ordered = sorted(matched.tolist(), key=lambda d: (-scores[d], rank[d]))[:k]
    return ordered, scores[ordered]


def run(kernel, p: CompressedPostings, term_ids, query_weights, rank, k, all_live: bool | None = None):
    """One query through ``kernel``; ``all_live`` (window and exact kernels) defaults to "no rank is
    negative"."""
    n_docs = p.n_docs
    all_live = bool((rank >= 0).all()) if all_live is None else all_live
    scores, touched = np.zeros(n_docs), np.zeros(n_docs, dtype=np.int32)
    acc = np.zeros(WINDOW_DOCS, dtype=np.float32)
    term_ids = np.asarray(term_ids, dtype=np.int64)
    query_weights = np.asarray(query_weights, dtype=np.float64)
    if kernel is taat_top_k:
        docs, found, read = taat_top_k(
            p.window_offsets, p.doc_low, p.weights, p.n_windows, term_ids, query_weights, rank, k, scores, touched
        )
    elif kernel is exact_top_k:
        docs, found, read = exact_top_k(
            p.window_offsets, p.doc_low, p.weights, p.n_windows, term_ids, query_weights, rank, all_live, k, scores
        )
    else:
        docs, found, read = window_top_k(
            p.window_offsets, p.doc_low, p.impacts, p.impact_scale, p.weights, p.n_windows, term_ids,
            query_weights, rank, all_live, k, acc, np.zeros(WINDOW_DOCS + 1, dtype=np.int32),
            np.zeros(n_docs, dtype=np.int32), np.zeros(n_docs, dtype=np.float32), *p.block_bounds(),
        )  # fmt: skip
    assert not scores.any() and not acc.any(), "the scratch accumulators must be left all zeros"
    return docs.tolist(), found, read


def check_query(matrix, p, rng, rank, k, dyadic: bool) -> None:
    vocab = matrix.shape[1]
    term_ids = rng.choice(vocab, size=int(rng.integers(1, vocab + 1)), replace=False)
    query_weights = rng.choice(DYADIC, size=len(term_ids)) if dyadic else rng.uniform(0.1, 5, len(term_ids))
    expected_docs, expected_scores = brute_force(matrix, term_ids, query_weights, rank, k)
    taat_docs, taat_scores, _ = run(taat_top_k, p, term_ids, query_weights, rank, k)
    assert taat_docs == expected_docs
    np.testing.assert_allclose(taat_scores, expected_scores, rtol=1e-12)
    for kernel in (window_top_k, exact_top_k):
        docs, found, _ = run(kernel, p, term_ids, query_weights, rank, k)
        assert docs == expected_docs
        assert found.tolist() == taat_scores.tolist(), "same term order, same float64 sums"


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_docs=st.integers(1, 300),
    vocab=st.integers(1, 25),
    k=st.integers(1, 40),
    dyadic=st.booleans(),
    duplicates=st.integers(0, 30),
    deleted=st.sampled_from([0.0, 0.0, 0.3, 0.95]),
)
def test_kernels_equal_brute_force(seed, n_docs, vocab, k, dyadic, duplicates, deleted) -> None:
    rng = np.random.default_rng(seed)
    matrix = random_matrix(rng, n_docs, vocab, float(rng.uniform(0.05, 1.0)), dyadic, duplicates)
    p = compressed(matrix, int(rng.choice([1, max(1, n_docs // 4), n_docs + 1])))  # all, some or no rows
    rank = rng.permutation(n_docs).astype(np.int32)  # doc_id order differs from doc_idx order
    rank[rng.random(n_docs) < deleted] = -1  # tombstones: never returned, never set a threshold
    for _ in range(4):
        check_query(matrix, p, rng, rank, k, dyadic)


@pytest.mark.parametrize(
    ("seed", "density", "deleted"), [(1, 0.002, 0.0), (2, 0.3, 0.0), (3, 0.05, 0.5), (4, 0.6, 0.1)]
)
def test_kernels_equal_brute_force_across_windows(seed: int, density: float, deleted: float) -> None:
    """2.3 windows of documents: low densities make sparse windows (touched lists), high ones dense
    windows (the blocked pass); the last window is partial."""
    rng = np.random.default_rng(seed)
    n_docs = 2 * WINDOW_DOCS + 20_000
    matrix = random_matrix(rng, n_docs, 12, density, dyadic=seed % 2 == 0, duplicates=200)
    p = compressed(matrix)
    assert p.n_windows == 3
    rank = rng.permutation(n_docs).astype(np.int32)
    rank[rng.random(n_docs) < deleted] = -1
    for k in (1, 10, 100):
        check_query(matrix, p, rng, rank, k, dyadic=seed % 2 == 0)


def test_block_maxima_are_each_terms_largest_impact_in_each_strided_block() -> None:
    rng = np.random.default_rng(12)
    n_docs = WINDOW_DOCS + 30_000
    dense = random_matrix(rng, n_docs, 5, 0.002, dyadic=False, duplicates=0).toarray()
    dense[:, 3] = 0.0  # no postings: no row
    matrix = sp.csr_matrix(dense)
    p = compressed(matrix, min_postings=1)
    csc = matrix.tocsc()
    rows, maxima = p.block_bounds()
    assert rows.tolist() == [0, 1, 2, -1, 3]
    impacts = np.asarray(p.impacts)
    for term in (0, 1, 2, 4):
        expected = np.zeros(maxima.shape[1], dtype=np.uint8)
        docs = csc.indices[csc.indptr[term] : csc.indptr[term + 1]]
        block = (docs >> 16) * BLOCKS_PER_WINDOW + (docs & (BLOCKS_PER_WINDOW - 1))  # window, then offset mod 4096
        np.maximum.at(expected, block, impacts[csc.indptr[term] : csc.indptr[term + 1]])
        np.testing.assert_array_equal(maxima[rows[term]], expected)
    default_rows, _ = compressed(matrix, min_postings=None).block_bounds()  # the codec's rule: none this sparse
    assert (default_rows == -1).all()


def test_window_kernel_skips_light_common_terms_and_stays_exact() -> None:
    """One rare heavy term and five common light ones over three windows: once the cut exceeds twice
    the light terms' bounds, they turn non-essential (their postings are not scanned), and the
    documents their block maxima could still lift are completed by search; the top k stays exact."""
    rng = np.random.default_rng(13)
    n_docs = 2 * WINDOW_DOCS + 20_000
    dense = np.zeros((n_docs, 6), dtype=np.float32)
    heavy = rng.random(n_docs) < 0.003
    dense[heavy, 0] = rng.uniform(1.0, 3.0, heavy.sum())
    light = rng.random((n_docs, 5)) < 0.5
    dense[:, 1:] = np.where(light, rng.uniform(0.001, 0.1, light.shape), 0.0)
    matrix = sp.csr_matrix(dense)
    p = compressed(matrix, min_postings=None)
    assert (p.block_bounds()[0] >= 0).tolist() == [False] + [True] * 5  # the rare term has no row
    rank = rng.permutation(n_docs).astype(np.int32)
    for k in (1, 10, 50):
        expected_docs, expected_scores = brute_force(matrix, range(6), np.ones(6), rank, k)
        docs, found, read = run(window_top_k, p, range(6), np.ones(6), rank, k)
        assert docs == expected_docs
        np.testing.assert_allclose(found, expected_scores, rtol=1e-12)
        assert read < 0.5 * matrix.nnz, "the light terms' postings are skipped after the first window"


@pytest.mark.parametrize(("seed", "dyadic"), [(21, True), (22, False), (23, True)])
def test_seeded_cut_keeps_the_exact_top_k(seed: int, dyadic: bool) -> None:
    """Without deletions the window and exact kernels start their cut at the k-th largest block maximum
    (4,096 strided blocks of 16 documents, and 313 blocks of 128 in this one window of 40,000
    documents) with exact ties (dyadic weights, repeated documents), for k below, at and above the
    number of blocks (no seed there)."""
    rng = np.random.default_rng(seed)
    n_docs = 40_000
    matrix = random_matrix(rng, n_docs, 10, 0.15, dyadic=dyadic, duplicates=500)
    p = compressed(matrix)
    rank = rng.permutation(n_docs).astype(np.int32)
    for k, kernel in itertools.product((1, 10, 313, 400, 4096, 5000), (window_top_k, exact_top_k)):
        term_ids = rng.choice(10, size=int(rng.integers(1, 11)), replace=False)
        query_weights = rng.choice(DYADIC, size=len(term_ids)) if dyadic else rng.uniform(0.1, 5, len(term_ids))
        expected_docs, expected_scores = brute_force(matrix, term_ids, query_weights, rank, k)
        seeded = run(kernel, p, term_ids, query_weights, rank, k, all_live=True)
        unseeded = run(kernel, p, term_ids, query_weights, rank, k, all_live=False)
        assert seeded[0] == unseeded[0] == expected_docs
        assert seeded[1].tolist() == unseeded[1].tolist()
        np.testing.assert_allclose(seeded[1], expected_scores, rtol=1e-12)


def test_seeded_cut_leaves_room_for_rounding() -> None:
    """A block whose best document leads on impacts but trails on exact weights must not set the cut:
    D rounds up (100.51 + 100 steps: approx 201) and W rounds down (2 x 100.49: approx 200), yet W
    scores more; F and G fix both terms' scales at 255 steps. Each sits in a block of its own, so the
    3rd largest block maximum is D's, and a seed without the rounding band would drop W from the top 3."""
    step = 1.0 / 255
    dense = np.zeros((4 * 256, 2), dtype=np.float32)
    dense[:, 0] = 0.2 * step  # every document has a posting: the window is scanned as a dense one (blocks)
    dense[0] = [1.0, 0.0]  # F
    dense[256] = [0.0, 1.0]  # G
    dense[512] = [100.51 * step, 100.0 * step]  # D
    dense[768] = [100.49 * step, 100.49 * step]  # W
    matrix = sp.csr_matrix(dense)
    p = compressed(matrix)
    rank = np.arange(len(dense), dtype=np.int32)
    expected_docs, expected_scores = brute_force(matrix, [0, 1], np.ones(2), rank, 3)
    assert expected_docs == [0, 256, 768]
    docs, found, _ = run(window_top_k, p, [0, 1], np.ones(2), rank, 3, all_live=True)
    assert docs == expected_docs
    np.testing.assert_allclose(found, expected_scores, rtol=1e-12)


@pytest.mark.parametrize("kernel", [window_top_k, exact_top_k])
def test_kernels_rank_near_ties_that_impacts_and_float32_cannot_tell_apart(kernel) -> None:
    """Documents 1 + d * 2^-30 (d < 64) all sum to 1.0 in float32 and share one impact; the exact order
    must still win, and a doc-id rank that prefers the wrong documents must not decide. Decoys within
    one impact step below fill the heap first."""
    n_tied, n_decoys = 64, 500
    n_docs = n_decoys + n_tied
    dense = np.zeros((n_docs, 3), dtype=np.float32)
    dense[:n_decoys, 2] = np.linspace(0.995, 0.999, n_decoys)  # less than one 255th below the tied group
    dense[n_decoys:, 0] = 1.0
    dense[n_decoys:, 1] = np.arange(n_tied) * 2.0**-30  # 0 for the first: one term only
    matrix = sp.csr_matrix(dense)
    p = compressed(matrix)
    rank = np.arange(n_docs, dtype=np.int32)  # prefers the lowest doc, the worst of the tied group
    for k in (1, 5, 63, 64, 70):
        expected_docs, expected_scores = brute_force(matrix, [0, 1, 2], np.ones(3), rank, k)
        docs, found, _ = run(kernel, p, [0, 1, 2], np.ones(3), rank, k)
        assert docs == expected_docs
        assert found.tolist() == expected_scores.tolist()
    assert expected_docs[:3] == [n_docs - 1, n_docs - 2, n_docs - 3]


@pytest.mark.parametrize("kernel", [window_top_k, exact_top_k])
def test_all_documents_identical_tie_by_rank(kernel) -> None:
    rng = np.random.default_rng(5)
    n_docs = WINDOW_DOCS + 500
    dense = np.zeros((n_docs, 4), dtype=np.float32)
    dense[:, :3] = [0.5, 1.25, 2.0]  # every document has the same vector
    p = compressed(sp.csr_matrix(dense))
    rank = rng.permutation(n_docs).astype(np.int32)
    docs, found, _ = run(kernel, p, [2, 0, 1], [0.3, 1.7, 0.9], rank, 10)
    assert docs == np.argsort(rank)[:10].tolist()
    assert len(set(found.tolist())) == 1


def test_positions_find_every_posting_and_only_those() -> None:
    rng = np.random.default_rng(8)
    matrix = random_matrix(rng, WINDOW_DOCS + 3000, 6, 0.01, dyadic=False, duplicates=0)
    p = compressed(matrix)
    coo = matrix.tocoo()
    found = positions(p.window_offsets, p.doc_low, p.n_windows, coo.col.astype(np.int64), coo.row.astype(np.int64))
    assert (found >= 0).all()
    np.testing.assert_array_equal(np.asarray(p.weights)[found], coo.data)
    absent = np.asarray(matrix[:, 0].toarray().ravel() == 0).nonzero()[0][:50].astype(np.int64)
    assert (positions(p.window_offsets, p.doc_low, p.n_windows, np.zeros(len(absent), np.int64), absent) == -1).all()


@pytest.mark.parametrize(
    ("n_docs", "picks"),
    [(2000, ((10, EXACT), (500, TAAT))), (EXACT_MAX_WINDOWS * WINDOW_DOCS + 100, ((10, WINDOW), (20_000, TAAT)))],
)
def test_search_queries_skips_absent_terms_and_picks_the_kernel(n_docs: int, picks) -> None:
    """Term-at-a-time for many hits a document, else the exact kernel up to EXACT_MAX_WINDOWS windows
    and the window kernel past them."""
    rng = np.random.default_rng(9)
    matrix = random_matrix(rng, n_docs, 10, 0.2, dyadic=True, duplicates=50)
    p = compressed(matrix)
    rank = rng.permutation(n_docs).astype(np.int32)
    queries = [([0, -1, 3], [1.0, 9.0, 0.5]), ([-1], [2.0]), ([4, 5, 6, 7], [0.25, 0.5, 0.75, 1.0])]
    query_indptr = np.cumsum([0] + [len(t) for t, _ in queries])
    for k, kernel in picks:
        docs, scores, counts, kernels = search_queries(
            p.window_offsets, p.doc_low, p.impacts, p.impact_scale, p.weights, p.n_windows, *p.block_bounds(),
            query_indptr,
            np.concatenate([t for t, _ in queries]).astype(np.int64),
            np.concatenate([w for _, w in queries]).astype(np.float64), rank, True, k, np.zeros(n_docs),
            np.zeros(n_docs, np.int32), np.zeros(WINDOW_DOCS, np.float32), np.zeros(WINDOW_DOCS + 1, np.int32),
            np.zeros(n_docs, np.int32), np.zeros(n_docs, np.float32),
        )  # fmt: skip
        assert kernels.tolist() == [kernel, -1, kernel] and counts[1] == 0
        for i in (0, 2):
            terms, weights = queries[i]
            present = [(t, w) for t, w in zip(terms, weights, strict=True) if t >= 0]
            expected, expected_scores = brute_force(matrix, *zip(*present, strict=True), rank, k)
            assert docs[i, : counts[i]].tolist() == expected
            np.testing.assert_allclose(scores[i, : counts[i]], expected_scores, rtol=1e-12)


# -- the helpers written out so that compiling stays short ---------------------------------------------
@given(st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=1, max_size=40))
@settings(max_examples=60, deadline=None)
def test_heapify_min_makes_a_min_heap(values: list[float]) -> None:
    from sparsearch.backends.embedded.kernels import _heapify_min

    heap = np.asarray(values, dtype=np.float64)
    _heapify_min(heap)
    assert sorted(heap.tolist()) == sorted(values)
    assert all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap)))
