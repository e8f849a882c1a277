"""Every encoder inherits the full :class:`~sparsearch.types.Encoder` contract from its base class."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsearch.encoders.analyzers import WordAnalyzer
from sparsearch.encoders.bm25 import BM25Encoder
from sparsearch.encoders.two_channel import TwoChannelEncoder, lexical_channel
from sparsearch.types import BaseEncoder, BatchEncoder

CORPUS = ["the wing stalls at high angle of attack", "propeller slipstream over a wing"]


def test_open_vocabulary_encoders_are_base_encoders_without_the_csr_path() -> None:
    two_channel = TwoChannelEncoder(lexical_channel(), BM25Encoder(WordAnalyzer(), name="bm25"))
    for encoder in (BM25Encoder(WordAnalyzer(), name="bm25"), two_channel):
        assert isinstance(encoder, BaseEncoder)
        assert not isinstance(encoder, BatchEncoder)  # a class check: never evaluates the unfitted fingerprint
        assert not encoder.is_fitted


def test_two_channel_fits_and_saves_its_learned_channel_through_the_contract(tmp_path: Path) -> None:
    encoder = TwoChannelEncoder(lexical_channel(), BM25Encoder(WordAnalyzer(), name="bm25"))
    encoder.fit(CORPUS)
    assert encoder.is_fitted and encoder.learned.is_fitted
    assert len(encoder.encode_document(CORPUS)) == len(CORPUS)
    encoder.save(tmp_path / "model")
    assert (tmp_path / "model" / "learned").is_dir()


def test_the_base_defaults_need_no_fitting_and_refuse_to_save(tmp_path: Path) -> None:
    base = BaseEncoder()
    assert base.is_fitted
    base.fit(CORPUS)  # a no-op
    with pytest.raises(NotImplementedError):
        base.save(tmp_path)
