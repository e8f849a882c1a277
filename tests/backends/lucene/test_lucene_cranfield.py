"""The Lucene backend against the embedded engine on cranfield (BM25): a real pyserini build and a real
JVM (Java 21+). No skip: a missing JDK or pyserini fails these tests.

Why the rankings may differ, and by how much (``q``, ``d`` exact weights, ``qs``, ``ds`` the query and
document scales, ``q' = round(q x qs) / qs`` and ``d' = round(d x ds) / ds`` what Lucene scores with)::

    |q'd' - qd| = |q'(d' - d) + d(q' - q)| <= q' x 0.5/ds + d x 0.5/qs

so a document's quantised score is within ``B(doc) = sum over shared tokens of that`` of its exact score,
and Lucene may put ``a`` before ``b`` only if ``exact(a) >= exact(b) - B(a) - B(b)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.lucene.impacts import quantise, query_impacts
from sparsearch.backends.lucene.index import LuceneIndex
from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import UsageError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.jobs.build_lucene import build_lucene_index
from sparsearch.jobs.export import iter_index_vectors
from sparsearch.types import Document, EncodedQuery
from tests.conftest import bundled_collection


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmbeddedIndex, LuceneIndex]:
    root = tmp_path_factory.mktemp("lucene-cranfield")
    embedded, _ = build_embedded_index(bundled_collection("cranfield"), root / "embedded", load_encoder("bm25"))
    lucene, summary = build_lucene_index(root / "embedded", root / "lucene", threads=2)
    assert summary.documents == embedded.count() == 1400
    yield embedded, lucene
    lucene.close()


@pytest.fixture(scope="module")
def queries(indexes: tuple[EmbeddedIndex, LuceneIndex]) -> list:
    encoder = load_encoder(indexes[0].encoder_dir)
    lines = (bundled_collection("cranfield") / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [encoder.encode_query(json.loads(line)["text"]) for line in lines if line.strip()]


def test_lucene_scores_are_the_quantised_dot_product_in_our_order(indexes, queries) -> None:  # noqa: ANN001
    """Lucene's top 10 = the brute-force top 10 of the quantised scores, ties by doc_id, for every query."""
    embedded, lucene = indexes
    vectors = {d.doc_id: dict(zip(t, w.tolist(), strict=True)) for d, t, w in iter_index_vectors(embedded)}
    impacts = {doc_id: quantise(vector, lucene.doc_scale) for doc_id, vector in vectors.items()}
    for query, hits in zip(queries, lucene.search_batch(queries, 10), strict=True):
        q_impacts, q_scale = query_impacts(query.weights)
        scores = {
            doc_id: sum(i * doc.get(t, 0) for t, i in q_impacts.items()) / (q_scale * lucene.doc_scale)
            for doc_id, doc in impacts.items()
        }
        expected = sorted((-s, d) for d, s in scores.items() if s > 0)[:10]
        assert [h.doc_id for h in hits] == [d for _, d in expected], query.text
        assert [h.score for h in hits] == pytest.approx([-s for s, _ in expected], rel=1e-6)


def exact(query: EncodedQuery, doc: dict[str, float]) -> float:
    return sum(w * doc.get(t, 0.0) for t, w in query.weights.items())


def bound(query: EncodedQuery, doc: dict[str, float], doc_scale: float) -> float:
    """How far the quantised score of ``doc`` can be from its exact score (the module docstring)."""
    impacts, query_scale = query_impacts(query.weights)
    return sum(
        impacts.get(t, 0) / query_scale * 0.5 / doc_scale + doc[t] * 0.5 / query_scale
        for t in query.weights
        if t in doc
    )


def test_lucene_top10_matches_embedded_within_the_quantisation_bound(indexes, queries) -> None:  # noqa: ANN001
    embedded, lucene = indexes
    vectors = {d.doc_id: dict(zip(t, w.tolist(), strict=True)) for d, t, w in iter_index_vectors(embedded)}
    identical = 0
    for query, exact_hits, hits in zip(
        queries, embedded.search_batch(queries, 10), lucene.search_batch(queries, 10), strict=True
    ):
        got = [h.doc_id for h in hits]
        identical += got == [h.doc_id for h in exact_hits]
        assert len(got) == len(exact_hits)
        missing = [h.doc_id for h in exact_hits if h.doc_id not in got]
        for rank, a in enumerate(got):  # every inversion is explained by the bound
            for b in got[rank + 1 :] + missing:
                slack = bound(query, vectors[a], lucene.doc_scale) + bound(query, vectors[b], lucene.doc_scale)
                assert exact(query, vectors[a]) >= exact(query, vectors[b]) - slack - 1e-9, (query.text, a, b)
    assert identical >= 0.9 * len(queries)  # the bound allows swaps; most lists are the same anyway


def test_documents_count_health_and_read_only(indexes) -> None:  # noqa: ANN001
    embedded, lucene = indexes
    assert lucene.count() == embedded.count()
    assert lucene.get_documents(["184", "nope"]) == [embedded.get_documents(["184"])[0], None]
    assert lucene.health()["documents"] == 1400
    assert lucene.fingerprint == embedded.fingerprint
    with pytest.raises(UsageError, match="read-only"):
        lucene.upsert([Document("x", "text")], [{"flow": 1.0}])
    with pytest.raises(UsageError, match="read-only"):
        lucene.delete(["184"])
    other = load_encoder("bm25-wordpiece")
    other.fit(["a hypersonic flow"])
    from sparsearch.errors import EncoderMismatchError

    with pytest.raises(EncoderMismatchError):
        lucene.search(other.encode_query("flow"))


def test_empty_query_and_top_k(indexes, queries) -> None:  # noqa: ANN001
    _, lucene = indexes
    assert lucene.search(EncodedQuery({}, lucene.fingerprint)) == []
    assert lucene.search(EncodedQuery({"zzzunknown": 1.0}, lucene.fingerprint)) == []
    assert len(lucene.search(queries[0], 2000)) <= 1400
    with pytest.raises(UsageError, match="top_k"):
        lucene.search(queries[0], 0)


def test_open_missing_index_says_how_to_build(tmp_path: Path) -> None:
    from sparsearch.errors import IndexNotFoundError

    with pytest.raises(IndexNotFoundError, match="sparsearch index --backend lucene"):
        LuceneIndex.open(tmp_path)
