"""Differential tests: the embedded engine against a brute-force dot product on random sparse data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, dot

FINGERPRINT = EncoderFingerprint(name="random", vocab_hash="v", idf_hash="i")


def brute_force(query: dict[str, float], vectors: dict[str, dict[str, float]], top_k: int) -> list[tuple[str, float]]:
    scored = [(doc_id, dot(query, vector)) for doc_id, vector in vectors.items()]
    scored = [(d, s) for d, s in scored if any(t in vectors[d] for t in query)]
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:top_k]


def assert_same_ranking(hits, expected) -> None:
    assert [h.doc_id for h in hits] == [d for d, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-5)


def random_corpus(rng: np.random.Generator, n_docs: int, vocab: int, quantize: bool) -> dict[str, dict[str, float]]:
    tokens = [f"t{i}" for i in range(vocab)]
    corpus = {}
    for i in range(n_docs):
        size = int(rng.integers(0, min(12, vocab) + 1))
        chosen = rng.choice(vocab, size=size, replace=False)
        # quantised weights create many exact ties, which exercises the doc_id tie-break
        weights = rng.integers(1, 4, size=size).astype(float) if quantize else rng.uniform(0.01, 3.0, size=size)
        corpus[f"doc-{rng.integers(0, 10**6):06d}-{i}"] = {
            tokens[t]: float(w) for t, w in zip(chosen, weights, strict=True)
        }
    return corpus


def build(path: Path, corpus: dict[str, dict[str, float]]) -> EmbeddedIndex:
    with IndexWriter(path, FINGERPRINT) as writer:
        writer.add([Document(doc_id=d, text="") for d in corpus], list(corpus.values()))
    assert writer.index is not None
    return writer.index


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_docs=st.integers(1, 60),
    vocab=st.integers(1, 30),
    top_k=st.integers(1, 80),
    quantize=st.booleans(),
)
def test_search_equals_brute_force(tmp_path_factory, seed, n_docs, vocab, top_k, quantize) -> None:
    rng = np.random.default_rng(seed)
    corpus = random_corpus(rng, n_docs, vocab, quantize)
    index = build(tmp_path_factory.mktemp("bf") / "index", corpus)
    for _ in range(5):
        size = int(rng.integers(1, vocab + 2))
        query = {
            f"t{int(t)}": float(rng.integers(1, 3)) if quantize else float(rng.uniform(0.1, 5))
            for t in rng.integers(0, vocab + 3, size=size)
        }  # may name tokens absent from the index
        hits = index.search(EncodedQuery(query, FINGERPRINT), top_k)
        assert_same_ranking(hits, brute_force(query, corpus, top_k))


def test_batch_search_matches_single(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    corpus = random_corpus(rng, 200, 50, quantize=False)
    index = build(tmp_path / "index", corpus)
    queries = [
        EncodedQuery({f"t{int(t)}": 1.0 + i for i, t in enumerate(rng.integers(0, 50, 6))}, FINGERPRINT)
        for _ in range(10)
    ]
    assert index.search_batch(queries, 7) == [index.search(q, 7) for q in queries]


def test_upsert_and_delete_equal_a_fresh_build(tmp_path: Path) -> None:
    """Segments and tombstones: after updates, and after merging them, results equal those of an index
    built from scratch."""
    rng = np.random.default_rng(11)
    corpus = random_corpus(rng, 120, 40, quantize=False)
    ids = list(corpus)
    index = build(tmp_path / "index", {d: corpus[d] for d in ids[:80]})
    # add 40 new documents, replace 5 existing ones with new vectors, delete 10
    index.upsert([Document(doc_id=d, text=f"text {d}") for d in ids[80:]], [corpus[d] for d in ids[80:]])
    replaced = {d: random_corpus(rng, 1, 40, quantize=False).popitem()[1] for d in ids[:5]}
    index.upsert([Document(doc_id=d, text="replaced") for d in replaced], list(replaced.values()))
    assert index.delete(ids[10:20] + ["no-such-doc"]) == 10
    expected = {**{d: corpus[d] for d in ids if d not in ids[10:20]}, **replaced}

    reopened = EmbeddedIndex.open(tmp_path / "index")
    assert reopened.count() == len(expected) == 110
    assert reopened.manifest["generation"] == 4
    assert [s["name"] for s in reopened.manifest["segments"]] == ["seg-000001", "seg-000002", "seg-000003"]
    assert reopened.manifest["deleted_documents"] == 15  # 5 replaced + 10 deleted, until a merge
    fresh = build(tmp_path / "fresh", expected)
    for merged in (False, True):
        if merged:
            assert reopened.merge()
            assert [s["name"] for s in reopened.manifest["segments"]] == ["seg-000004"]
            assert reopened.manifest["deleted_documents"] == 0
            assert reopened.manifest["n_terms"] == fresh.manifest["n_terms"]
            assert sorted(p.name for p in (tmp_path / "index").glob("seg-*")) == ["seg-000004"]
        assert reopened.get_documents([ids[0], ids[10], ids[100]])[0].text == "replaced"
        assert reopened.get_documents([ids[10]]) == [None]
        for doc_id in (ids[0], ids[50], ids[100]):
            assert reopened.document_vector(doc_id) == pytest.approx(expected[doc_id], rel=1e-6)
        for _ in range(20):
            query = {f"t{int(t)}": float(rng.uniform(0.1, 3)) for t in rng.integers(0, 40, 5)}
            hits = reopened.search(EncodedQuery(query, FINGERPRINT), 15)
            assert_same_ranking(hits, brute_force(query, expected, 15))
            assert hits == fresh.search(EncodedQuery(query, FINGERPRINT), 15)


def test_k_larger_than_corpus_returns_only_matching_documents(tmp_path: Path) -> None:
    index = build(tmp_path / "index", {"a": {"x": 1.0}, "b": {"y": 2.0}, "c": {"x": 0.5, "y": 0.5}})
    hits = index.search(EncodedQuery({"x": 1.0}, FINGERPRINT), 1000)
    assert [(h.doc_id, h.score) for h in hits] == [("a", 1.0), ("c", 0.5)]


def test_ties_break_by_doc_id_ascending(tmp_path: Path) -> None:
    index = build(tmp_path / "index", {"b": {"x": 1.0}, "c": {"x": 1.0}, "a": {"x": 1.0}, "d": {"x": 2.0}})
    hits = index.search(EncodedQuery({"x": 1.0}, FINGERPRINT), 3)
    assert [h.doc_id for h in hits] == ["d", "a", "b"]


@pytest.mark.parametrize("token", ["", "a.b", "日本語", "##ing", "w:run", " "])
def test_unusual_tokens_round_trip(tmp_path: Path, token: str) -> None:
    index = build(tmp_path / "index", {"d1": {token: 1.5, "other": 1.0}, "d2": {"other": 2.0}})
    hits = index.search(EncodedQuery({token: 2.0}, FINGERPRINT), 5)
    assert [(h.doc_id, h.score) for h in hits] == [("d1", 3.0)]
    assert index.explain(EncodedQuery({token: 2.0, "other": 1.0}, FINGERPRINT), "d1") == {
        token: 3.0,
        "other": 1.0,
    }


def test_threaded_batch_search_matches_sequential(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    corpus = random_corpus(rng, 300, 60, quantize=True)
    index = build(tmp_path / "index", corpus)
    queries = [
        EncodedQuery({f"t{int(t)}": float(rng.integers(1, 4)) for t in rng.integers(0, 60, 8)}, FINGERPRINT)
        for _ in range(50)
    ]
    assert index.search_batch(queries, 10, threads=4) == index.search_batch(queries, 10)


def test_search_batch_ids_equals_the_hits_across_segments_threads_and_short_rows(tmp_path: Path) -> None:
    """The bulk path (ids and scores, no Hit objects) answers as the hit path does: on an index of
    three segments with tombstones, on one and three threads, with queries that match nothing or
    fewer documents than asked, and with tokens of weight not > 0 left out."""
    rng = np.random.default_rng(17)
    corpus = random_corpus(rng, 150, 40, quantize=False)
    ids = list(corpus)
    build(tmp_path / "index", {d: corpus[d] for d in ids[:100]})
    index = EmbeddedIndex.open(tmp_path / "index", auto_merge=False)
    index.upsert([Document(doc_id=d, text="") for d in ids[100:]], [corpus[d] for d in ids[100:]])
    index.upsert([Document(doc_id=ids[0], text="")], [{"t1": 0.5, "rare": 0.25}])
    index.delete(ids[5:15])
    live = {d: v for d, v in corpus.items() if d not in ids[5:15]} | {ids[0]: {"t1": 0.5, "rare": 0.25}}
    assert len(index.snapshot().views) == 3
    queries = [{f"t{int(t)}": float(rng.uniform(0.1, 3)) for t in rng.integers(0, 40, 6)} for _ in range(40)]
    queries += [{"absent": 1.0}, {}, {"rare": 2.0, "t2": 0.0, "t3": float("nan"), "t4": -1.0}]
    encoded = [EncodedQuery(q, FINGERPRINT) for q in queries]
    for threads in (1, 3):
        found_ids, found_scores = index.search_batch_ids(encoded, 12, threads=threads)
        hits = index.search_batch(encoded, 12, threads=threads)
        assert found_ids == [[h.doc_id for h in row] for row in hits]
        assert found_scores == [[h.score for h in row] for row in hits]
        for query, row in zip(queries, hits, strict=True):
            positive = {t: w for t, w in query.items() if w > 0}
            assert_same_ranking(row, brute_force(positive, live, 12))
    assert found_ids[-3] == found_ids[-2] == []
    assert index.search_batch_ids([], 12) == ([], []) and index.search_batch([], 12, threads=3) == []
    assert found_ids[-1] == [ids[0]] and found_scores[-1] == [0.5]  # one match: fewer than asked


@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), float("inf"), 1e-46])
def test_weights_outside_the_contract_are_refused_with_the_document(tmp_path: Path, weight: float) -> None:
    from sparsearch.errors import UsageError

    with pytest.raises(UsageError, match=r"document 'bad': token 'y' has weight"):
        build(tmp_path / "index", {"good": {"x": 1.0}, "bad": {"x": 1.0, "y": weight}})
    assert not (tmp_path / "index").exists()
    index = build(tmp_path / "ok", {"good": {"x": 1.0}})
    with pytest.raises(UsageError, match=r"document 'new'"):
        index.upsert([Document(doc_id="new", text="")], [{"x": weight}])
    assert index.count() == 1
