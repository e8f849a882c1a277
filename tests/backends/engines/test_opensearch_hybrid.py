"""Hybrid search on a real OpenSearch: dense windows in ``_source`` (a ``binary`` field), candidates
fused client-side, equal to the same fusion computed from the engine's candidates by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.engines import bodies
from sparsearch.backends.engines.opensearch import OpenSearchBackend
from sparsearch.encoders.dense import embed_documents, embed_query
from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import UsageError
from sparsearch.hybrid import DEFAULT_FUSION, HybridBackend, fused_top_k
from sparsearch.jobs.build_engine import index_corpus
from sparsearch.types import Document
from tests.conftest import TINY

from ._engines import connect, dropped_after

QUERIES = ["heat transfer in boundary layers at high speed", "buckling of cylindrical shells", "wing lift"]


@pytest.fixture
def dense_engine(opensearch_url: str, tmp_path: Path) -> Iterator[OpenSearchBackend]:
    for backend in dropped_after(connect(opensearch_url)):
        index_corpus(TINY, backend, load_encoder("bm25"), dense=True, failures_path=tmp_path / "failures.jsonl")
        yield backend


def test_the_mapping_keeps_windows_in_a_binary_field(dense_engine: OpenSearchBackend) -> None:
    live = dense_engine.live_indexes()[0]
    mapping = dense_engine.client.indices.get_mapping(index=live)[live]["mappings"]
    assert mapping["properties"][bodies.DENSE_FIELD] == {"type": "binary"}
    assert dense_engine.dense_identity is not None and dense_engine.dense_identity["model"] == "all-MiniLM-L6-v2"


def test_engine_hybrid_is_the_fusion_of_its_candidates(dense_engine: OpenSearchBackend, tiny_dense_index: Path) -> None:
    embedded = EmbeddedIndex.open(tiny_dense_index).snapshot()
    hybrid = HybridBackend(dense_engine)
    encoder = load_encoder(tiny_dense_index / "encoder")
    for text in QUERIES:
        query = encoder.encode_query(text)
        candidates = dense_engine.search_candidates([query], 100)[0]
        assert [hit.doc_id for hit, _ in candidates] == [hit.doc_id for hit in dense_engine.search(query, 100)]
        for hit, windows in candidates:  # the engine hands back the windows it was given
            np.testing.assert_allclose(windows.astype(np.float32), embedded.dense_windows(hit.doc_id), atol=2e-3)
        q = embed_query(text)
        ids = [hit.doc_id for hit, _ in candidates]
        sparse = np.array([hit.score for hit, _ in candidates])
        dense = np.array(
            [np.max(w.astype(np.float64) @ q.astype(np.float64)) if len(w) else -1.0 for _, w in candidates]
        )
        expected = fused_top_k(ids, sparse, dense, DEFAULT_FUSION, 5)
        hits = hybrid.search(query, 5)
        assert [h.doc_id for h in hits] == [h.doc_id for h in expected]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], atol=1e-6)


def test_upserts_carry_windows_and_a_sparse_only_index_refuses_hybrid(
    dense_engine: OpenSearchBackend, opensearch_url: str, tmp_path: Path
) -> None:
    document = Document(doc_id="new-1", title="Hypersonic heating", text="Heat transfer to a blunt cone at Mach 10.")
    encoder = load_encoder(dense_engine.fetch_encoder(dense_engine.fingerprint))
    vectors = encoder.encode_document([document.full_text])
    with pytest.raises(UsageError, match="upsert needs the documents' dense windows"):
        dense_engine.upsert([document], vectors)
    windows = embed_documents([document.full_text])
    dense_engine.upsert([document], vectors, dense=windows)
    query = encoder.encode_query("heat transfer blunt cone")
    found = dict((hit.doc_id, rows) for hit, rows in dense_engine.search_candidates([query], 100)[0])
    np.testing.assert_array_equal(found["new-1"], windows.document(0))

    for plain in dropped_after(connect(opensearch_url)):
        index_corpus(TINY, plain, load_encoder("bm25"), failures_path=tmp_path / "plain.jsonl")
        assert plain.dense_identity is None
        with pytest.raises(UsageError, match="stores no dense vectors"):
            HybridBackend(plain)
        with pytest.raises(UsageError, match="stores no dense vectors"):
            plain.search_candidates([query], 10)
