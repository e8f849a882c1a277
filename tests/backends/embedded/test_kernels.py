"""Differential tests of the search kernels: MaxScore (pruned), dense (exhaustive float32 with exact
rescoring) and term-at-a-time (exhaustive) against a dense brute-force dot product, on random postings
that reach every path of the pruned kernel (tiny windows, window jumps, probing and scanning, the seed
threshold, exact ties), on near-ties that float32 cannot tell apart, and through the engine's choice
of kernel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsearch.backends.embedded.kernels import (
    DENSE,
    MAXSCORE,
    PROBE_COST,
    WINDOW,
    dense_top_k,
    maxscore_essential_postings,
    maxscore_top_k,
    search_queries,
    taat_top_k,
)
from sparsearch.backends.embedded.postings import PostingsBuilder
from sparsearch.eval.synthetic import CorpusProfile, generate_postings, generate_queries

# Dyadic weights make every sum exact in float64, so equal scores are real ties (broken by doc rank).
DYADIC = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.25])


def random_postings(rng: np.random.Generator, n_docs: int, vocab: int, dyadic: bool, duplicates: int):
    """Random documents (some repeated verbatim) as term-major postings plus the dense matrix."""
    dense = np.zeros((n_docs, vocab))
    for d in range(n_docs):
        size = int(rng.integers(0, vocab + 1))
        terms = rng.choice(vocab, size=size, replace=False)
        dense[d, terms] = rng.choice(DYADIC, size=size) if dyadic else rng.uniform(0.01, 3.0, size=size)
    for _ in range(duplicates):  # identical vectors must tie exactly and fall back to the doc rank
        dense[rng.integers(0, n_docs)] = dense[rng.integers(0, n_docs)]
    dense = dense.astype(np.float32).astype(np.float64)  # postings store float32 weights
    builder = PostingsBuilder([f"t{i}" for i in range(vocab)])
    rows, cols = np.nonzero(dense)
    builder.add_coo(cols, rows, dense[rows, cols], n_docs)
    return builder.build(), dense


def brute_force(dense: np.ndarray, term_ids: np.ndarray, query_weights: np.ndarray, rank: np.ndarray, k: int):
    """Top-k (doc, score) by dense dot product; only live documents (rank >= 0) sharing a term; score
    desc, rank asc."""
    scores = np.zeros(len(dense))
    for term, weight in zip(term_ids, query_weights, strict=True):  # not BLAS: its row blocking can
        scores += dense[:, term] * weight  # round identical rows differently
    matched = np.flatnonzero((dense[:, term_ids] > 0).any(axis=1) & (rank >= 0))
    ordered = sorted(matched.tolist(), key=lambda d: (-scores[d], rank[d]))[:k]
    return ordered, scores[ordered]


def run_kernel(kernel, postings, term_ids, query_weights, rank, k, **options):
    n_docs = postings.n_docs
    scores = np.zeros(n_docs)
    touched = np.zeros(n_docs, dtype=np.int32)
    args = (postings.indptr, postings.doc_idx, postings.weights)
    if kernel is maxscore_top_k:
        args = (*args, postings.max_weight)
    acc = np.zeros(n_docs, dtype=np.float32)
    if kernel is maxscore_top_k:
        window, probe = options.get("window", WINDOW), options.get("probe", PROBE_COST)
        docs, found, read = kernel(*args, term_ids, query_weights, rank, k, scores, touched, window, probe)
    elif kernel is dense_top_k:
        values = np.zeros(n_docs, dtype=np.float32)
        docs, found, read = kernel(*args, term_ids, query_weights, rank, k, acc, touched, values)
    else:
        docs, found, read = kernel(*args, term_ids, query_weights, rank, k, scores, touched)
    assert not scores.any() and not acc.any(), "the scratch accumulators must be left all zeros"
    return docs.tolist(), found, read


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_docs=st.integers(1, 300),
    vocab=st.integers(1, 25),
    k=st.integers(1, 40),
    dyadic=st.booleans(),
    duplicates=st.integers(0, 30),
    window=st.sampled_from([1, 2, 3, 7, 16, 64, 4096]),
    probe=st.sampled_from([0, 1, 8, 10**9]),
    deleted=st.sampled_from([0.0, 0.0, 0.3, 0.95]),
)
def test_kernels_equal_brute_force(seed, n_docs, vocab, k, dyadic, duplicates, window, probe, deleted) -> None:
    rng = np.random.default_rng(seed)
    postings, dense = random_postings(rng, n_docs, vocab, dyadic, duplicates)
    rank = rng.permutation(n_docs).astype(np.int32)  # doc_id order differs from doc_idx order
    rank[rng.random(n_docs) < deleted] = -1  # tombstones: never returned, never set a threshold
    for _ in range(4):
        term_ids = rng.choice(vocab, size=int(rng.integers(1, vocab + 1)), replace=False).astype(np.int64)
        query_weights = rng.choice(DYADIC, size=len(term_ids)) if dyadic else rng.uniform(0.1, 5, len(term_ids))
        expected_docs, expected_scores = brute_force(dense, term_ids, query_weights, rank, k)
        docs, found, _ = run_kernel(
            maxscore_top_k, postings, term_ids, query_weights, rank, k, window=window, probe=probe
        )
        assert docs == expected_docs
        np.testing.assert_allclose(found, expected_scores, rtol=1e-12)
        taat_docs, taat_scores, _ = run_kernel(taat_top_k, postings, term_ids, query_weights, rank, k)
        assert taat_docs == expected_docs
        np.testing.assert_allclose(taat_scores, expected_scores, rtol=1e-12)
        dense_docs, dense_scores, _ = run_kernel(dense_top_k, postings, term_ids, query_weights, rank, k)
        assert dense_docs == expected_docs
        assert dense_scores.tolist() == taat_scores.tolist(), "same term order, same float64 sums"


def test_dense_kernel_ranks_near_ties_that_float32_cannot_tell_apart() -> None:
    """Documents 1 + d * 2^-30 (d < 64) all sum to 1.0 in float32; the exact order must still win, and
    a doc-id rank that prefers the wrong documents must not decide. Decoys fill the heap first."""
    n_tied, n_decoys = 64, 500
    n_docs = n_decoys + n_tied
    dense = np.zeros((n_docs, 3))
    dense[:n_decoys, 2] = np.linspace(0.1, 0.9, n_decoys)  # smaller scores, seen first by the pass
    dense[n_decoys:, 0] = 1.0
    dense[n_decoys:, 1] = np.arange(n_tied) * 2.0**-30  # 0 for the first: one term only
    dense = dense.astype(np.float32).astype(np.float64)  # postings store float32 weights
    builder = PostingsBuilder(["a", "b", "c"])
    rows, cols = np.nonzero(dense)
    builder.add_coo(cols, rows, dense[rows, cols], n_docs)
    postings = builder.build()
    rank = np.arange(n_docs, dtype=np.int32)  # prefers the lowest doc, the worst of the tied group
    term_ids = np.array([0, 1, 2], dtype=np.int64)
    weights = np.ones(3)
    for k in (1, 5, 63, 64, 70):
        expected_docs, expected_scores = brute_force(dense, term_ids, weights, rank, k)
        docs, found, _ = run_kernel(dense_top_k, postings, term_ids, weights, rank, k)
        assert docs == expected_docs
        assert found.tolist() == expected_scores.tolist()
    assert expected_docs[:3] == [n_docs - 1, n_docs - 2, n_docs - 3]


def test_essential_postings_tell_bm25_like_queries_from_flat_ones(zipf_corpus) -> None:
    """A rare heavy term with frequent light ones: MaxScore need only scan the rare list. Equal weights
    on frequent terms: most postings stay essential."""
    postings, _ = zipf_corpus
    n_docs = postings.n_docs
    scores, touched = np.zeros(n_docs), np.zeros(n_docs, dtype=np.int32)
    lengths = np.diff(postings.indptr)
    frequent = np.argsort(-lengths)[:4]
    rare = int(np.flatnonzero((lengths > 50) & (lengths < 200))[0])
    args = (postings.indptr, postings.doc_idx, postings.weights, postings.max_weight)
    rank = np.arange(n_docs, dtype=np.int32)
    skewed = np.array([rare, *frequent], dtype=np.int64)
    essential, total = maxscore_essential_postings(
        *args, skewed, np.array([10.0, 0.1, 0.1, 0.1, 0.1]), rank, 10, scores, touched
    )
    assert total == lengths[skewed].sum() and essential == lengths[rare]
    flat = np.array(frequent, dtype=np.int64)
    essential, total = maxscore_essential_postings(*args, flat, np.ones(4), rank, 10, scores, touched)
    assert total == lengths[flat].sum() and 0.25 * total < essential <= total
    assert not scores.any()


def test_all_documents_identical_tie_by_rank() -> None:
    rng = np.random.default_rng(5)
    n_docs = 500
    dense = np.zeros((n_docs, 4))
    dense[:, :3] = [0.5, 1.25, 2.0]  # every document has the same vector
    builder = PostingsBuilder(["a", "b", "c", "d"])
    rows, cols = np.nonzero(dense)
    builder.add_coo(cols, rows, dense[rows, cols], n_docs)
    postings = builder.build()
    rank = rng.permutation(n_docs).astype(np.int32)
    term_ids = np.array([2, 0, 1], dtype=np.int64)
    weights = np.array([0.3, 1.7, 0.9])
    for window in (1, 16, 4096):
        docs, found, _ = run_kernel(maxscore_top_k, postings, term_ids, weights, rank, 10, window=window, probe=8)
        assert docs == np.argsort(rank)[:10].tolist()
        assert len(set(found.tolist())) == 1


@pytest.fixture(scope="module")
def zipf_corpus():
    """A 20k-document corpus fitted to a Zipf-like profile (frequent tokens with small weights)."""
    rng = np.random.default_rng(0)
    vocab = 2000
    df = 1.0 / np.arange(1, vocab + 1) ** 0.9
    profile = CorpusProfile(
        vocab=[f"t{i}" for i in range(vocab)],
        df_fraction=df / df.max() * 0.6,
        doc_lengths=rng.integers(20, 80, size=500),
        weights=rng.uniform(0.3, 2.5, size=5000).astype(np.float32),
    )
    postings = generate_postings(profile, 20_000, seed=1)
    return postings, generate_queries(postings, 40, seed=2)


def test_maxscore_prunes_and_stays_exact_on_a_zipf_corpus(zipf_corpus) -> None:
    postings, queries = zipf_corpus
    term_index = {token: i for i, token in enumerate(postings.vocab)}
    rank = np.arange(postings.n_docs, dtype=np.int32)
    read_pruned = read_all = 0
    for query in queries:
        term_ids = np.array([term_index[t] for t in query], dtype=np.int64)
        weights = np.array(list(query.values()))
        docs, found, read = run_kernel(maxscore_top_k, postings, term_ids, weights, rank, 10)
        taat_docs, taat_scores, total = run_kernel(taat_top_k, postings, term_ids, weights, rank, 10)
        assert docs == taat_docs
        assert run_kernel(dense_top_k, postings, term_ids, weights, rank, 10)[0] == taat_docs
        np.testing.assert_allclose(found, taat_scores, rtol=1e-12)
        read_pruned += read
        read_all += total
    # pruning must skip most postings of the frequent, low-bound tokens
    assert read_pruned < 0.6 * read_all


def test_index_search_with_pruning_equals_brute_force(tmp_path) -> None:
    """Through EmbeddedIndex.search: a corpus large enough for the pruned kernel, queries with flat
    weights (the dense kernel) and with one dominant term (MaxScore)."""
    from sparsearch.backends.embedded.kernels import PRUNING_MIN_DOCS, PRUNING_MIN_DOCS_PER_HIT
    from sparsearch.backends.embedded.writer import IndexWriter
    from sparsearch.types import Document, EncodedQuery, EncoderFingerprint

    rng = np.random.default_rng(9)
    postings, dense = random_postings(rng, PRUNING_MIN_DOCS, 30, dyadic=True, duplicates=300)
    fingerprint = EncoderFingerprint(name="random", vocab_hash="v", idf_hash="i")
    doc_ids = [f"doc-{rng.integers(0, 10**6):06d}-{i}" for i in range(len(dense))]
    with IndexWriter(tmp_path / "index", fingerprint) as writer:
        writer.add(
            [Document(doc_id=d, text="") for d in doc_ids],
            [{f"t{t}": float(row[t]) for t in np.flatnonzero(row)} for row in dense],
        )
    index = writer.index
    assert 10 * PRUNING_MIN_DOCS_PER_HIT <= index.count() >= PRUNING_MIN_DOCS
    rank = np.argsort(np.argsort(np.asarray(doc_ids, dtype=object), kind="stable")).astype(np.int32)
    asked = []
    for i in range(30):
        term_ids = rng.choice(30, size=int(rng.integers(2, 12)), replace=False)
        weights = rng.choice(DYADIC, size=len(term_ids))
        if i % 2:  # one dominant term: the others cannot lift a document without it into the top 10
            weights = np.where(np.arange(len(term_ids)) == 0, 64.0, 2.0**-10)
        expected_docs, expected_scores = brute_force(dense, term_ids, weights, rank, 10)
        hits = index.search(
            EncodedQuery({f"t{t}": float(w) for t, w in zip(term_ids, weights, strict=True)}, fingerprint), 10
        )
        assert [h.doc_id for h in hits] == [doc_ids[d] for d in expected_docs]
        np.testing.assert_allclose([h.score for h in hits], expected_scores, rtol=1e-12)
        asked.append((term_ids, weights))
    # the same queries as one batch: the kernel chosen for each, and the same hits
    query_indptr = np.cumsum([0] + [len(t) for t, _ in asked])
    p = index.postings
    index_terms = [np.array([index.term_index[f"t{t}"] for t in term_ids]) for term_ids, _ in asked]
    docs, _, counts, kernels = search_queries(
        p.indptr, p.doc_idx, p.weights, p.max_weight, query_indptr, np.concatenate(index_terms),
        np.concatenate([w for _, w in asked]).astype(np.float64), index.doc_id_rank, 10,
        np.zeros(p.n_docs), np.zeros(p.n_docs, dtype=np.int32), np.zeros(p.n_docs, dtype=np.float32),
        np.zeros(p.n_docs, dtype=np.float32),
    )  # fmt: skip
    assert (kernels[0::2] == DENSE).sum() >= 5 and (kernels[1::2] == MAXSCORE).sum() >= 5, kernels
    for (term_ids, weights), row, n in zip(asked, docs, counts, strict=True):
        assert [index.doc_ids[d] for d in row[:n]] == [
            doc_ids[d] for d in brute_force(dense, term_ids, weights, rank, 10)[0]
        ]


# -- the helpers written out so that compiling stays short ---------------------------------------------
@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 7.0]), max_size=40))
@settings(max_examples=60, deadline=None)
def test_argsort_stable_is_numpys_stable_argsort(values: list[float]) -> None:
    from sparsearch.backends.embedded.kernels import _argsort_stable

    array = np.asarray(values, dtype=np.float64)
    assert _argsort_stable(array).tolist() == np.argsort(array, kind="stable").tolist()


@given(st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=1, max_size=40))
@settings(max_examples=60, deadline=None)
def test_heapify_min_makes_a_min_heap(values: list[float]) -> None:
    from sparsearch.backends.embedded.kernels import _heapify_min

    heap = np.asarray(values, dtype=np.float64)
    _heapify_min(heap)
    assert sorted(heap.tolist()) == sorted(values)
    assert all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap)))
