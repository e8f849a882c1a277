"""``"mode": "hybrid"`` over HTTP: the Searcher's fused hits, dense vectors kept by upserts, and a
409 naming what is missing (dense vectors in the index, the neural extra on the server)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sparsearch.search import Searcher
from tests.api.conftest import app_client, make_settings
from tests.api.test_search import assert_error

QUERY = "heat transfer in boundary layers at high speed"


@pytest.fixture
def hybrid_client(tiny_dense_index: Path, tiny_bm25_index: Path):
    with app_client(make_settings(f"dense={tiny_dense_index}", f"plain={tiny_bm25_index}")) as client:
        yield client


def test_hybrid_hits_are_the_searchers(hybrid_client, tiny_dense_index: Path) -> None:
    with Searcher.open(tiny_dense_index) as searcher:
        expected = searcher.search(QUERY, 5, mode="hybrid")
        sparse = searcher.search(QUERY, 5)
    body = hybrid_client.post("/v1/search", json={"query": QUERY, "top_k": 5, "mode": "hybrid"}).json()
    assert [(h["id"], h["score"]) for h in body["hits"]] == [(h.doc_id, pytest.approx(h.score)) for h in expected]
    assert [h.score for h in expected] != [h.score for h in sparse]  # fused, not dot products
    batch = hybrid_client.post("/v1/search/batch", json={"queries": [QUERY], "top_k": 5, "mode": "hybrid"}).json()
    assert batch["results"][0]["hits"] == body["hits"]
    default = hybrid_client.post("/v1/search", json={"query": QUERY, "top_k": 5}).json()
    assert [h["id"] for h in default["hits"]] == [h.doc_id for h in sparse]


def test_upserted_documents_get_dense_vectors(hybrid_client, tiny_dense_index: Path) -> None:
    document = {"id": "new-1", "title": "Hypersonic heating", "text": "Heat transfer to a blunt cone at Mach 10."}
    response = hybrid_client.post("/v1/indexes/dense/documents", json={"documents": [document]})
    assert response.status_code == 200, response.text
    body = hybrid_client.post("/v1/search", json={"query": "heat transfer blunt cone", "mode": "hybrid"}).json()
    assert "new-1" in [h["id"] for h in body["hits"]]
    from sparsearch.backends.embedded.index import EmbeddedIndex
    from sparsearch.encoders.dense import embed_documents

    stored = EmbeddedIndex.open(tiny_dense_index).snapshot().dense_windows("new-1")
    expected = embed_documents(["Hypersonic heating Heat transfer to a blunt cone at Mach 10."]).document(0)
    np.testing.assert_allclose(stored.astype(np.float32), expected.astype(np.float32), atol=2e-3)


def test_an_index_without_dense_vectors_answers_409(hybrid_client) -> None:
    response = hybrid_client.post("/v1/search", json={"query": QUERY, "index": "plain", "mode": "hybrid"})
    assert_error(response, 409, "hybrid_unavailable", "'plain'", "--dense")
    assert hybrid_client.post("/v1/search", json={"query": QUERY, "index": "plain"}).status_code == 200


def test_hybrid_explain_explains_the_sparse_stage(hybrid_client, tiny_dense_index: Path) -> None:
    with Searcher.open(tiny_dense_index) as searcher:
        sparse = {h.doc_id: h.score for h in searcher.search(QUERY, 100, with_documents=False)}
    body = hybrid_client.post("/v1/search", json={"query": QUERY, "mode": "hybrid", "explain": True}).json()
    assert body["hits"]
    for hit in body["hits"]:
        total = sum(m["contribution"] for m in hit["explain"]["matched"])
        assert total == pytest.approx(sparse[hit["id"]])  # the sparse dot product, not the fused score


def test_an_unknown_mode_answers_422(hybrid_client) -> None:
    response = hybrid_client.post("/v1/search", json={"query": QUERY, "mode": "dense"})
    assert_error(response, 422, "invalid_request", "mode")


def test_without_the_neural_extra_hybrid_answers_409_and_sparse_still_works(
    hybrid_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    response = hybrid_client.post("/v1/search", json={"query": QUERY, "mode": "hybrid"})
    assert_error(response, 409, "hybrid_unavailable", "pip install 'sparsearch[neural]'")
    assert hybrid_client.post("/v1/search", json={"query": QUERY}).status_code == 200
