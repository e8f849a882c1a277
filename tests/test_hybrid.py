"""Hybrid search: fusion maths, dense vectors through builds, upserts, deletes and merges, and the
fused hits against a brute-force computation of the same fusion over the same candidates."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.encoders.dense import EMBEDDING_DIM, DenseWindows
from sparsearch.errors import MissingExtraError, UsageError
from sparsearch.hybrid import (
    DEFAULT_CANDIDATE_SET,
    DEFAULT_FUSION,
    RRF_K,
    Fusion,
    HybridBackend,
    fuse,
    fused_top_k,
    minmax,
    ranks,
)
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, dot

FINGERPRINT = EncoderFingerprint(name="random", vocab_hash="v", idf_hash="i")
IDENTITY = {"model": "test-model", "dim": EMBEDDING_DIM}


# -- helpers -------------------------------------------------------------------------------------------
def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.normal(size=(n, EMBEDDING_DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def fake_embed(text: str) -> np.ndarray:
    """A deterministic unit vector per text (stands in for the dense model)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return unit(np.random.default_rng(seed), 1)[0]


def random_corpus(rng: np.random.Generator, n_docs: int, vocab: int) -> dict[str, dict[str, float]]:
    # weights on a 1/8 grid: sums are exact in float32 and float64 alike, so the sparse candidates and
    # their scores are exactly the brute force's and any tie is a true tie (broken by doc_id)
    corpus = {}
    for i in range(n_docs):
        size = int(rng.integers(0, min(8, vocab) + 1))
        chosen = rng.choice(vocab, size=size, replace=False)
        corpus[f"d{rng.integers(0, 10**4):04d}-{i}"] = {
            f"t{t}": float(w) / 8 for t, w in zip(chosen, rng.integers(1, 17, size=size), strict=True)
        }
    return corpus


def random_windows(rng: np.random.Generator, n_docs: int) -> DenseWindows:
    counts = rng.integers(0, 4, size=n_docs)  # some documents without text: no window
    owners = np.repeat(np.arange(n_docs), counts)
    return DenseWindows.from_owners(unit(rng, len(owners)), owners, n_docs)


def build(path: Path, corpus: dict[str, dict[str, float]], windows: DenseWindows) -> EmbeddedIndex:
    with IndexWriter(path, FINGERPRINT, dense=IDENTITY) as writer:
        writer.add([Document(doc_id=d, text="") for d in corpus], list(corpus.values()), dense=windows)
    assert writer.index is not None
    return writer.index


def reference_fusion(
    query: dict[str, float],
    text: str,
    corpus: dict[str, dict[str, float]],
    windows: dict[str, np.ndarray],
    fusion: Fusion,
    candidates: int,
    top_k: int,
    candidate_set: str = "sparse",
) -> list[tuple[str, float]]:
    """The fusion of the module docstring, written out plainly from the live corpus: every document's
    sparse score and best-window cosine, the candidates (the sparse top N of the documents sharing a
    token, and with ``union`` the dense top N of the documents with windows), fused."""
    q64 = fake_embed(text).astype(np.float64)
    all_sparse = {d: dot(query, v) for d, v in corpus.items()}
    all_dense = {d: float(np.max(windows[d].astype(np.float64) @ q64)) if len(windows[d]) else -1.0 for d in corpus}

    def best(scores: dict[str, float]) -> list[str]:
        return sorted(scores, key=lambda d: (-scores[d], d))[:candidates]

    pool = best({d: all_sparse[d] for d, v in corpus.items() if any(t in v for t in query)})
    if candidate_set == "union":
        pool += [d for d in best({d: all_dense[d] for d in corpus if len(windows[d])}) if d not in pool]
    if not pool:
        return []
    sparse = {d: all_sparse[d] for d in pool}
    dense = {d: all_dense[d] for d in pool}
    w = fusion.dense_weight

    def scaled(values: dict[str, float]) -> dict[str, float]:
        low, high = min(values.values()), max(values.values())
        return {d: (v - low) / (high - low) if high > low else 0.0 for d, v in values.items()}

    def rank_of(values: dict[str, float]) -> dict[str, int]:
        order = sorted(values, key=lambda d: (-values[d], d))
        return {d: r for r, d in enumerate(order, start=1)}

    if fusion.method == "minmax":
        s, e = scaled(sparse), scaled(dense)
        fused = {d: (1 - w) * s[d] + w * e[d] for d in sparse}
    else:
        rs, re_ = rank_of(sparse), rank_of(dense)
        fused = {d: (1 - w) / (RRF_K + rs[d]) + w / (RRF_K + re_[d]) for d in sparse}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:top_k]


def assert_hybrid_equals_reference(
    backend: HybridBackend, corpus, windows, queries, fusion: Fusion, candidates: int, top_k: int
) -> None:
    encoded = [EncodedQuery(query, FINGERPRINT, f"query {i}") for i, query in enumerate(queries)]
    batch = backend.search_batch(encoded, top_k)  # the union path scores the whole batch in one product
    for i, query in enumerate(queries):
        text = f"query {i}"
        hits = backend.search(encoded[i], top_k)
        expected = reference_fusion(query, text, corpus, windows, fusion, candidates, top_k, backend.candidate_set)
        assert [h.doc_id for h in hits] == [d for d, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-9, atol=1e-12)
        assert [h.doc_id for h in batch[i]] == [h.doc_id for h in hits]


def random_queries(rng: np.random.Generator, vocab: int, n: int = 4) -> list[dict[str, float]]:
    return [
        {f"t{t}": float(rng.integers(1, 9)) / 4 for t in rng.choice(vocab, size=min(vocab, 3), replace=False)}
        for _ in range(n)
    ]


# -- the fusion maths ----------------------------------------------------------------------------------
def test_minmax_maps_to_unit_range_and_constant_rows_to_zero() -> None:
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(minmax(np.array([5.0])), [0.0])
    np.testing.assert_array_equal(minmax(np.array([1.0, 1.0])), [0.0, 0.0])


def test_ranks_break_ties_by_doc_id() -> None:
    assert ranks(np.array([1.0, 3.0, 1.0]), ["c", "a", "b"]).tolist() == [3, 1, 2]


def test_rrf_scores_are_the_formula() -> None:
    fused = fuse(["a", "b"], np.array([2.0, 1.0]), np.array([0.1, 0.9]), Fusion("rrf", 0.25))
    np.testing.assert_allclose(fused, [0.75 / 61 + 0.25 / 62, 0.75 / 62 + 0.25 / 61])


@pytest.mark.parametrize("method", ["minmax", "rrf"])
def test_weights_zero_and_one_give_the_sparse_and_the_dense_order(method: str) -> None:
    ids = ["a", "b", "c", "d"]
    sparse, dense = np.array([4.0, 3.0, 2.0, 1.0]), np.array([0.1, 0.3, 0.4, 0.2])
    assert [h.doc_id for h in fused_top_k(ids, sparse, dense, Fusion(method, 0.0), 4)] == ["a", "b", "c", "d"]
    assert [h.doc_id for h in fused_top_k(ids, sparse, dense, Fusion(method, 1.0), 4)] == ["c", "b", "d", "a"]


@pytest.mark.parametrize(("method", "weight"), [("sum", 0.5), ("minmax", -0.1), ("rrf", 1.5)])
def test_bad_fusion_is_refused(method: str, weight: float) -> None:
    with pytest.raises(UsageError, match="fusion|dense_weight"):
        Fusion(method, weight)


# -- exactness on random indexes -----------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_docs=st.integers(1, 50),
    vocab=st.integers(1, 20),
    candidates=st.integers(1, 30),
    top_k=st.integers(1, 40),
    method=st.sampled_from(["minmax", "rrf"]),
    weight=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    candidate_set=st.sampled_from(["sparse", "union"]),
)
def test_hybrid_equals_brute_force(
    tmp_path_factory, seed, n_docs, vocab, candidates, top_k, method, weight, candidate_set
) -> None:
    rng = np.random.default_rng(seed)
    corpus = random_corpus(rng, n_docs, vocab)
    dense = random_windows(rng, n_docs)
    index = build(tmp_path_factory.mktemp("hybrid") / "index", corpus, dense)
    windows = {d: dense.document(i) for i, d in enumerate(corpus)}
    fusion = Fusion(method, weight)
    backend = HybridBackend(index, fusion, candidates=candidates, candidate_set=candidate_set, embed_query=fake_embed)
    assert_hybrid_equals_reference(backend, corpus, windows, random_queries(rng, vocab), fusion, candidates, top_k)


@pytest.mark.parametrize("candidate_set", ["sparse", "union"])
def test_dense_vectors_follow_documents_through_upserts_deletes_and_merges(tmp_path: Path, candidate_set: str) -> None:
    rng = np.random.default_rng(7)
    corpus = random_corpus(rng, 40, 12)
    dense = random_windows(rng, 40)
    index = build(tmp_path / "index", corpus, dense)
    index.auto_merge = False
    windows = {d: dense.document(i) for i, d in enumerate(corpus)}
    fusion = Fusion("minmax", 0.5)
    backend = HybridBackend(index, fusion, candidates=15, candidate_set=candidate_set, embed_query=fake_embed)
    for round_ in range(3):  # replace some, add some, delete some: one new segment per upsert
        ids = list(corpus)
        changed = [*rng.choice(ids, size=5, replace=False).tolist(), *[f"new-{round_}-{i}" for i in range(4)]]
        vectors = list(random_corpus(rng, len(changed), 12).values())
        new_dense = random_windows(rng, len(changed))
        index.upsert([Document(doc_id=d, text="") for d in changed], vectors, dense=new_dense)
        for i, (doc_id, vector) in enumerate(zip(changed, vectors, strict=True)):
            corpus[doc_id], windows[doc_id] = vector, new_dense.document(i)
        gone = rng.choice(list(corpus), size=3, replace=False).tolist()
        assert index.delete(gone) == 3
        for doc_id in gone:
            del corpus[doc_id], windows[doc_id]
    assert len(index.snapshot().views) > 1
    queries = random_queries(rng, 12, 6)
    assert_hybrid_equals_reference(backend, corpus, windows, queries, fusion, 15, 10)
    assert index.merge()
    assert len(index.snapshot().views) == 1
    for doc_id in corpus:
        np.testing.assert_array_equal(index.snapshot().dense_windows(doc_id), windows[doc_id])
    assert_hybrid_equals_reference(backend, corpus, windows, queries, fusion, 15, 10)
    reopened = HybridBackend(
        EmbeddedIndex.open(index.path), fusion, candidates=15, candidate_set=candidate_set, embed_query=fake_embed
    )
    assert_hybrid_equals_reference(reopened, corpus, windows, queries, fusion, 15, 10)


def test_results_are_deterministic_and_prefix_stable(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    corpus = random_corpus(rng, 60, 6)
    index = build(tmp_path / "index", corpus, random_windows(rng, 60))
    backend = HybridBackend(index, Fusion("rrf", 0.5), candidates=30, candidate_set="sparse", embed_query=fake_embed)
    query = EncodedQuery({"t0": 1.0, "t1": 0.5}, FINGERPRINT, "q")
    first = backend.search(query, 30)
    assert backend.search(query, 30) == first
    assert backend.search(query, 5) == first[:5]  # the candidate set never depends on top_k
    assert len(backend.search(query, 100)) <= 30
    assert backend.search_batch([EncodedQuery({}, FINGERPRINT, "stop"), query], 5) == [[], first[:5]]


# -- refusals ------------------------------------------------------------------------------------------
def test_union_candidates_are_both_exact_top_n_with_exact_sparse_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    corpus = random_corpus(rng, 200, 20)  # about a third of the documents share a token with the query
    dense = random_windows(rng, 200)
    windows = {d: dense.document(i) for i, d in enumerate(corpus)}
    index = build(tmp_path / "index", corpus, dense)
    index.auto_merge = False
    changed = list(corpus)[:10]  # replaced: their old copies are tombstoned in the first segment
    vectors = list(random_corpus(rng, 10, 20).values())
    new_dense = random_windows(rng, 10)
    index.upsert([Document(doc_id=d, text="") for d in changed], vectors, dense=new_dense)
    corpus.update(zip(changed, vectors, strict=True))
    windows.update({d: new_dense.document(i) for i, d in enumerate(changed)})
    gone = list(corpus)[20:25]
    assert index.delete(gone) == 5
    for doc_id in gone:
        del corpus[doc_id], windows[doc_id]
    query = {"t1": 0.5, "t2": 1.25}
    embeddings = np.stack([fake_embed("a"), fake_embed("b")])
    found = index.search_candidates([EncodedQuery(query, FINGERPRINT, "a")] * 2, 10, dense_queries=embeddings)
    for q, candidates in zip(embeddings.astype(np.float64), found, strict=True):
        cosines = {d: float(np.max(w.astype(np.float64) @ q)) for d, w in windows.items() if len(w)}
        dense_top = sorted(cosines, key=lambda d: (-cosines[d], d))[:10]
        assert [hit.doc_id for hit in index.dense_search(q[None, :].astype(np.float32), 10)[0]] == dense_top
        ids = [hit.doc_id for hit, _ in candidates]
        assert len(ids) == len(set(ids)) and set(dense_top) <= set(ids) and not set(ids) & set(gone)
        # the check below must see documents the sparse search could not find, and dense-only ones
        # whose sparse score, below the sparse top 10, is not 0
        assert any(not set(query) & set(corpus[hit.doc_id]) for hit, _ in candidates)
        sparse_top = {hit.doc_id for hit in index.search(EncodedQuery(query, FINGERPRINT), 10)}
        assert any(hit.score > 0 for hit, _ in candidates if hit.doc_id not in sparse_top)
        for hit, rows in candidates:
            assert hit.score == dot(query, corpus[hit.doc_id])  # exact, 0 for documents sharing no token
            np.testing.assert_array_equal(rows, windows[hit.doc_id])


def test_engines_keep_sparse_candidates(tmp_path: Path) -> None:
    from sparsearch.backends.engines.elasticsearch import ElasticsearchBackend
    from sparsearch.backends.engines.opensearch import OpenSearchBackend

    class SparseOnly:  # what the engine backends offer: sparse candidates with windows, no dense search
        name = "opensearch"
        dense_identity = IDENTITY

        def search_candidates(self, queries, top_k):  # noqa: ANN001, ANN201
            return [[] for _ in queries]

    for engine in (OpenSearchBackend, ElasticsearchBackend):
        assert hasattr(engine, "search_candidates") and not hasattr(engine, "dense_search")
    assert HybridBackend(SparseOnly(), embed_query=fake_embed).candidate_set == "sparse"
    with pytest.raises(UsageError, match="cannot search dense vectors"):
        HybridBackend(SparseOnly(), candidate_set="union", embed_query=fake_embed)
    index = build(tmp_path / "index", {"a": {"t0": 1.0}}, random_windows(np.random.default_rng(0), 1))
    assert HybridBackend(index, embed_query=fake_embed).candidate_set == DEFAULT_CANDIDATE_SET
    with pytest.raises(UsageError, match="unknown candidate set"):
        HybridBackend(index, candidate_set="dense", embed_query=fake_embed)


def test_an_index_without_dense_vectors_refuses_hybrid(tmp_path: Path) -> None:
    with IndexWriter(tmp_path / "index", FINGERPRINT) as writer:
        writer.add([Document(doc_id="a", text="")], [{"t": 1.0}])
    with pytest.raises(UsageError, match="stores no dense vectors.*--dense"):
        HybridBackend(writer.index, embed_query=fake_embed)
    with pytest.raises(UsageError, match="stores no dense vectors"):
        writer.index.upsert([Document(doc_id="b", text="")], [{"t": 1.0}], dense=DenseWindows.empty(1))


def test_a_dense_index_needs_dense_windows_everywhere(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="pass dense="):
        with IndexWriter(tmp_path / "a", FINGERPRINT, dense=IDENTITY) as writer:
            writer.add([Document(doc_id="a", text="")], [{"t": 1.0}])
    index = build(tmp_path / "b", {"a": {"t": 1.0}}, DenseWindows.empty(1))
    with pytest.raises(UsageError, match="upsert needs the documents' dense windows"):
        index.upsert([Document(doc_id="b", text="")], [{"t": 1.0}])
    with pytest.raises(ValueError, match="dense windows for 2"):
        index.upsert([Document(doc_id="b", text="")], [{"t": 1.0}], dense=DenseWindows.empty(2))


def test_vectors_of_another_dense_model_are_refused(tmp_path: Path) -> None:
    index = build(tmp_path / "index", {"a": {"t": 1.0}}, DenseWindows.empty(1))  # IDENTITY is not MiniLM's
    with pytest.raises(UsageError, match="installed dense model is"):
        HybridBackend(index)


def test_hybrid_without_the_neural_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = build(tmp_path / "index", {"a": {"t": 1.0}}, DenseWindows.empty(1))
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'sparsearch\[neural\]'"):
        HybridBackend(index)


# -- the real dense model, end to end ------------------------------------------------------------------
def test_searcher_hybrid_on_the_tiny_dense_index(tiny_dense_index: Path) -> None:
    """Stored windows are MiniLM's own embeddings of the documents; the fusion matches the reference."""
    from sparsearch.encoders.dense import embed_documents, embed_query
    from sparsearch.search import Searcher

    with Searcher.open(tiny_dense_index) as searcher:
        documents = {d.doc_id: d for d in searcher.backend.get_documents(searcher.backend.doc_ids)}
        stored = {d: searcher.backend.snapshot().dense_windows(d) for d in documents}
        fresh = embed_documents([documents[d].full_text for d in documents])
        for row, doc_id in enumerate(documents):
            np.testing.assert_allclose(stored[doc_id].astype(np.float32), fresh.document(row), atol=2e-3)
        text = "heat transfer in boundary layers"
        sparse = searcher.search(text, 100, with_documents=False)
        hybrid = searcher.search(text, 10, mode="hybrid")
        q = embed_query(text)
        dense = np.array([np.max(stored[h.doc_id].astype(np.float64) @ q.astype(np.float64)) for h in sparse])
        expected = fused_top_k(
            [h.doc_id for h in sparse], np.array([h.score for h in sparse]), dense, DEFAULT_FUSION, 10
        )
        assert [(h.doc_id, h.score) for h in hybrid] == [(h.doc_id, h.score) for h in expected]
        assert hybrid[0].title is not None
        with pytest.raises(UsageError, match="unknown search mode"):
            searcher.search(text, mode="dense")


def test_the_two_channel_model_hands_over_the_windows_it_computed(tiny_data: Path) -> None:
    """``--dense`` with a semantic learned channel reuses its forward pass: same vectors, same windows."""
    from sparsearch.corpus import iter_corpus
    from sparsearch.encoders.dense import embed_documents, encode_with_windows
    from sparsearch.encoders.semantic import SemanticChannelEncoder
    from sparsearch.encoders.two_channel import TwoChannelEncoder, lexical_channel

    texts = [d.full_text for d in iter_corpus(tiny_data)]
    learned = SemanticChannelEncoder(candidate_tokens=["heat", "wing", "flow", "shell", "speed"], threshold=0.0)
    encoder = TwoChannelEncoder(lexical_channel(), learned)
    encoder.fit(texts)
    vectors, windows = encode_with_windows(encoder, texts)
    assert vectors == encoder.encode_document(texts)
    expected = embed_documents(texts)
    np.testing.assert_array_equal(windows.indptr, expected.indptr)
    np.testing.assert_allclose(windows.embeddings.astype(np.float32), expected.embeddings, atol=2e-3)
    assert windows.indptr[-1] > 0 and any(windows.document(i).shape[0] == 0 for i in range(windows.n_docs))
