"""``title`` and ``text`` are searchable on the engine: its own BM25, highlighting and hybrid queries
work next to our sparse scores, which do not change; indexes with the older mapping still work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sparsearch.backends.engines import bodies
from sparsearch.backends.engines.opensearch import OpenSearchBackend
from sparsearch.jobs.build_engine import index_vectors
from sparsearch.types import Document, EncodedQuery

from ._engines import RANDOM_FINGERPRINT, connect, dropped_after, random_collection

DOCUMENTS = [
    Document("d1", "Heat transfer in hypersonic flow past a blunt body.", "Hypersonic heat transfer"),
    Document("d2", "Boundary layer transition on a flat plate at low speed.", "Transition"),
    Document("d3", "Buckling of thin cylindrical shells under axial load.", "Shell buckling"),
]
VECTORS = [{"heat": 1.0, "flow": 0.5}, {"plate": 2.0, "flow": 1.0}, {"shell": 3.0}]


def _legacy_mapping(meta, *, field_type="rank_features", dense=False):  # noqa: ANN001, ANN202 - the pre-change mapping
    mapping = _new_mapping(meta, field_type=field_type, dense=dense)
    for field in bodies.TEXT_FIELDS:
        mapping["properties"][field] = {"type": "text", "index": False}
    return mapping


_new_mapping = bodies.build_mapping


@pytest.fixture
def backend(opensearch_url: str) -> Iterator[OpenSearchBackend]:
    yield from dropped_after(connect(opensearch_url))


@pytest.fixture
def legacy_backend(opensearch_url: str) -> Iterator[OpenSearchBackend]:
    yield from dropped_after(connect(opensearch_url))


def test_the_mapping_indexes_title_and_text(backend: OpenSearchBackend) -> None:
    index_vectors(backend, DOCUMENTS, VECTORS, RANDOM_FINGERPRINT)
    live = backend.live_indexes()[0]
    properties = backend.client.indices.get_mapping(index=live)[live]["mappings"]["properties"]
    assert properties["title"] == {"type": "text"} and properties["text"] == {"type": "text"}


def test_the_engines_match_query_and_highlighting_find_the_document(backend: OpenSearchBackend) -> None:
    index_vectors(backend, DOCUMENTS, VECTORS, RANDOM_FINGERPRINT)
    response = backend.client.search(index=backend.index, body={"query": {"match": {"text": "hypersonic"}}})
    assert [hit["_id"] for hit in response["hits"]["hits"]] == ["d1"]

    body = bodies.build_text_query("hypersonic heat", 10, highlight=True)
    response = backend.client.search(index=backend.index, body=body)
    hits = response["hits"]["hits"]
    assert hits[0]["_id"] == "d1" and hits[0]["_score"] > 0
    assert hits[0]["highlight"]["text"] == ["<em>Heat</em> transfer in <em>hypersonic</em> flow past a blunt body."]
    assert hits[0]["highlight"]["title"] == ["<em>Hypersonic</em> <em>heat</em> transfer"]
    assert all(hit["_id"] != "d3" for hit in hits)


def test_a_hybrid_query_combines_our_sparse_clauses_with_the_engines_bm25(backend: OpenSearchBackend) -> None:
    index_vectors(backend, DOCUMENTS, VECTORS, RANDOM_FINGERPRINT)
    sparse = bodies.build_query({"shell": 1.0}, 10)
    hybrid = {**sparse, "query": {"bool": {"should": [sparse["query"], {"match": {"text": "transition"}}]}}}
    response = backend.client.search(index=backend.index, body=hybrid)
    assert {hit["_id"] for hit in response["hits"]["hits"]} == {"d2", "d3"}  # one by BM25, one by our weights


def test_sparse_results_are_the_same_with_the_old_and_the_new_mapping(
    backend: OpenSearchBackend, legacy_backend: OpenSearchBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents, vectors, queries = random_collection(seed=11, n_docs=150, n_queries=20)
    index_vectors(backend, documents, vectors, RANDOM_FINGERPRINT)
    with monkeypatch.context() as patch:
        patch.setattr(bodies, "build_mapping", _legacy_mapping)
        index_vectors(legacy_backend, documents, vectors, RANDOM_FINGERPRINT)
    live = legacy_backend.live_indexes()[0]
    legacy = legacy_backend.client.indices.get_mapping(index=live)[live]["mappings"]["properties"]
    assert legacy["text"] == {"type": "text", "index": False}  # really the older mapping

    # the read path of an old index: search, batch search, documents, vectors
    assert legacy_backend.search_batch(queries, top_k=10) == backend.search_batch(queries, top_k=10)
    for query in queries[:5]:
        assert legacy_backend.search(query, top_k=10) == backend.search(query, top_k=10)
    ids = [d.doc_id for d in documents[:5]]
    assert legacy_backend.get_documents(ids) == backend.get_documents(ids) == documents[:5]
    assert legacy_backend.document_vector(ids[0]) == backend.document_vector(ids[0])
    # only the engine's own text queries need a rebuild
    with pytest.raises(legacy_backend.api_error, match="not indexed"):
        legacy_backend.client.search(index=legacy_backend.index, body={"query": {"match": {"text": "document"}}})
    # and its write path
    extra = Document("extra", "added later")
    legacy_backend.upsert([extra], [{"t1": 1000.0}])  # far above the random weights
    assert legacy_backend.search(EncodedQuery({"t1": 1.0}, RANDOM_FINGERPRINT), top_k=1)[0].doc_id == "extra"
