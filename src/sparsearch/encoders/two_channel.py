"""Two channels in one sparse space: a lexical channel and a learned channel (docs/method.md#two-channels).

Documents carry both channels in one vector: stemmed-word BM25 weights under ``w:``-prefixed tokens
(the lexical channel) and WordPiece weights from a learned encoder (SPLADE or the semantic channel).
Queries carry the IDF of their stems (times their count, as BM25 does) and ``learned_weight`` x the
IDF of their distinct WordPiece tokens. The score is still one dot product,

    s(q, d) = BM25_words(q, d) + learned_weight * s_learned(q, d),

so every engine serves it unchanged and BM25 is its floor. ``learned_weight`` is a query-side knob: it
is not part of the encoder fingerprint, so it can be tuned without rebuilding the index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sparsearch.encoders.analyzers import WordAnalyzer
from sparsearch.encoders.bm25 import BM25Encoder
from sparsearch.types import BaseEncoder, EncodedQuery, Encoder, EncoderFingerprint, SparseVector, stable_hash

if TYPE_CHECKING:  # pragma: no cover - typing only
    from sparsearch.encoders.dense import DenseWindows

LEXICAL_PREFIX = "w:"
CONFIG_FILE = "config.json"


def lexical_channel() -> BM25Encoder:
    """Stemmed-word BM25 with ``w:``-namespaced tokens (never collide with WordPiece entries)."""
    return BM25Encoder(WordAnalyzer(prefix=LEXICAL_PREFIX), name="bm25-words")


class TwoChannelEncoder(BaseEncoder):
    """Lexical BM25 channel + a learned inference-free channel, merged into one sparse vector.

    Args:
        lexical: the word-level BM25 encoder (tokens prefixed ``w:``).
        learned: an inference-free encoder over WordPiece tokens (query side = IDF).
        learned_weight: multiplier of the learned channel's query weights (chosen on held-out
            pseudo-queries, never on test queries).
        name: model name recorded in indexes.
    """

    def __init__(self, lexical: BM25Encoder, learned: Encoder, learned_weight: float = 1.0, name: str = "two-channel"):
        self.lexical = lexical
        self.learned = learned
        self.learned_weight = learned_weight
        self.name = name
        self._fingerprint: EncoderFingerprint | None = None

    @property
    def is_fitted(self) -> bool:
        return self.lexical.is_fitted and self.learned.is_fitted

    def fit(self, texts: Iterable[str]) -> None:
        """Fit both channels' corpus statistics (the corpus is read into memory once)."""
        texts = list(texts)
        self.lexical.fit(texts)
        if not self.learned.is_fitted:
            self.learned.fit(texts)
        self._fingerprint = None

    @property
    def fingerprint(self) -> EncoderFingerprint:
        if self._fingerprint is None:  # hashing on every query would cost more than the query
            lexical, learned = self.lexical.fingerprint, self.learned.fingerprint
            self._fingerprint = EncoderFingerprint(
                name=self.name,
                vocab_hash=stable_hash([lexical.vocab_hash, learned.name, learned.vocab_hash]),
                idf_hash=stable_hash([lexical.idf_hash, learned.idf_hash]),
            )
        return self._fingerprint

    def encode_document(self, texts: Sequence[str]) -> list[SparseVector]:
        lexical = self.lexical.encode_document(texts)
        learned = self.learned.encode_document(texts)
        return [{**lex, **lrn} for lex, lrn in zip(lexical, learned, strict=True)]

    def encode_document_with_windows(self, texts: Sequence[str]) -> tuple[list[SparseVector], DenseWindows]:
        """:meth:`encode_document` plus the dense window embeddings, reused from the learned channel
        when it computes them (the semantic channel does), else computed here."""
        from sparsearch.encoders.dense import embed_documents

        lexical = self.lexical.encode_document(texts)
        with_windows = getattr(self.learned, "encode_document_with_windows", None)
        if with_windows is not None:
            learned, windows = with_windows(texts)
        else:
            learned, windows = self.learned.encode_document(texts), embed_documents(texts)
        return [{**lex, **lrn} for lex, lrn in zip(lexical, learned, strict=True)], windows

    def encode_query(self, text: str) -> EncodedQuery:
        weights = dict(self.lexical.encode_query(text).weights)
        if self.learned_weight > 0:
            for token, weight in self.learned.encode_query(text).weights.items():
                weights[token] = self.learned_weight * weight
        return EncodedQuery(weights, self.fingerprint, text)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.lexical.save(directory / "lexical")
        self.learned.save(directory / "learned")
        config = {"type": "two-channel", "name": self.name, "learned_weight": self.learned_weight}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, load_channel: Callable[[Path], Encoder]) -> TwoChannelEncoder:
        """Read a saved two-channel model.

        Args:
            directory: the folder :meth:`save` wrote.
            load_channel: loads the learned channel's folder, which may hold any model type (the
                registry passes its ``load_encoder``, so this module never imports the registry).
        """
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        return cls(
            BM25Encoder.load(directory / "lexical"),
            load_channel(directory / "learned"),
            learned_weight=float(config["learned_weight"]),
            name=config["name"],
        )
