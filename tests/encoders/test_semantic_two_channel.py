"""The training-free semantic channel and the two-channel (lexical + learned) encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsearch.encoders.bm25 import bm25_words
from sparsearch.encoders.registry import load_encoder
from sparsearch.encoders.semantic import SemanticChannelEncoder
from sparsearch.encoders.two_channel import TwoChannelEncoder, lexical_channel
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.types import dot

# A small expansion vocabulary keeps the test fast (the real one has ~22.7k whole words).
TOKENS = [
    "wing", "lift", "propeller", "aircraft", "airplane", "heat", "temperature", "thermal", "collapse",
    "shell", "cylinder", "shock", "speed", "flow", "boundary", "layer", "vibration", "pressure",
    "music", "banana", "politics", "football",
]  # fmt: skip


@pytest.fixture(scope="module")
def semantic() -> SemanticChannelEncoder:
    encoder = SemanticChannelEncoder(threshold=0.2, top_k=8, candidate_tokens=TOKENS)
    encoder.fit(["a wing in a slipstream", "heat conduction in slabs", "buckling of shells"])
    return encoder


def test_semantic_documents_expand_to_related_words(semantic: SemanticChannelEncoder) -> None:
    doc = semantic.encode_document(["Aeroelastic flutter and vibration of a heated airplane."])[0]
    assert 0 < len(doc) <= 8 and all(w > 0 for w in doc.values())
    assert set(doc) <= set(TOKENS)
    assert "banana" not in doc and "football" not in doc
    assert {"vibration", "aircraft", "airplane"} & set(doc)
    assert semantic.encode_document(["", "   "]) == [{}, {}]


def test_long_documents_are_split_and_max_pooled(
    semantic: SemanticChannelEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the exact runtime: int8 ONNX quantises activations per batch, so the same window embedded with
    # other windows moves a little (tests/encoders/test_fast_encoding.py bounds that)
    monkeypatch.setenv("SPARSEARCH_ENCODER_RUNTIME", "torch")
    long_text = "the propeller wing lift " * 100 + "banana music football politics " * 100
    pooled = semantic.encode_document([long_text])[0]
    first_half = semantic.encode_document(["the propeller wing lift " * 40])[0]
    for token, weight in first_half.items():  # max pooling never loses a window's evidence
        assert pooled.get(token, 0.0) >= weight - 1e-6


def test_semantic_query_is_idf_of_distinct_wordpieces(semantic: SemanticChannelEncoder) -> None:
    query = semantic.encode_query("wing wing lift")
    assert set(query.weights) == {"wing", "lift"}
    assert query.weights["wing"] == pytest.approx(semantic.idf.idf("wing"))


def test_two_channel_score_is_bm25_plus_weighted_learned(semantic: SemanticChannelEncoder) -> None:
    corpus = ["Wing lift in a propeller slipstream.", "Heat conduction in composite slabs.", "Buckling of shells."]
    encoder = TwoChannelEncoder(lexical_channel(), semantic, learned_weight=2.0)
    encoder.fit(corpus)
    documents = encoder.encode_document(corpus)
    assert any(t.startswith("w:") for t in documents[0]) and any(not t.startswith("w:") for t in documents[0])
    query = encoder.encode_query("propeller wing")
    bm25 = bm25_words()
    bm25.fit(corpus)
    expected_lexical = dot(bm25.encode_query("propeller wing").weights, bm25.encode_document(corpus)[0])
    expected_learned = dot(semantic.encode_query("propeller wing").weights, semantic.encode_document(corpus)[:1][0])
    assert dot(query.weights, documents[0]) == pytest.approx(expected_lexical + 2.0 * expected_learned)


def test_two_channel_round_trips_through_an_index(tiny_data: Path, tmp_path: Path) -> None:
    encoder = TwoChannelEncoder(lexical_channel(), SemanticChannelEncoder(top_k=8, candidate_tokens=TOKENS), 2.0)
    index, _ = build_embedded_index(tiny_data, tmp_path / "index", encoder)
    reloaded = load_encoder(index.encoder_dir)
    assert reloaded.fingerprint == index.fingerprint
    query = "buckling of cylindrical shells"
    assert reloaded.encode_query(query) == encoder.encode_query(query)
    assert index.search(reloaded.encode_query(query), 1)[0].doc_id == "d5"
