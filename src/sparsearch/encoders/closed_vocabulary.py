"""The two-channel model seen through a fixed term list, so that the batch encoding job can store it.

``sparsearch encode`` (and ``--ray``) write CSR rows of term ids over one vocabulary. The two-channel
default has none fixed in advance: its lexical channel emits the stemmed words of whatever it reads.
Once it is fitted on a corpus, though, the tokens it can give that corpus's documents are known: the
words of its BM25 document-frequency table (every word of the fitted corpus) and the learned
channel's tokenizer vocabulary. That union, sorted, is the term-id space of the encode output; a
token outside it (a document that was not in the fitted corpus) is an error, never dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from sparsearch.encoders.neural import EncodingOptions
from sparsearch.encoders.sparse_batch import SparseBatch
from sparsearch.encoders.two_channel import TwoChannelEncoder
from sparsearch.errors import UsageError
from sparsearch.types import BatchEncoder, EncodedQuery, EncoderFingerprint, SparseVector


class TermList:
    """``vocabulary[term_id] -> token`` and its hash: what the encode job reads of a vocabulary."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self.vocabulary = sorted(set(tokens))
        self.ids = {token: term_id for term_id, token in enumerate(self.vocabulary)}
        self.vocab_hash = hashlib.sha256("\n".join(self.vocabulary).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.vocabulary)


def _learned_tokens(learned: object) -> list[str]:
    vocabulary = getattr(learned, "vocabulary", None)  # a SPLADE channel: its TokenizerVocabulary
    if vocabulary is not None:
        return list(vocabulary.vocabulary)
    return list(learned.analyzer.vocabulary)  # type: ignore[attr-defined] - the semantic channel's WordPiece


class ClosedVocabularyEncoder(BatchEncoder):
    """A :class:`TwoChannelEncoder` with the CSR interface of the neural encoders (``encode_document_batch``
    over :attr:`vocabulary`); everything else is the wrapped model's (fingerprint, queries, saving).

    Args:
        model: the two-channel model, fitted or not (:attr:`vocabulary` needs it fitted).
    """

    def __init__(self, model: TwoChannelEncoder) -> None:
        self.model = model
        self.name = model.name
        self._terms: TermList | None = None

    # -- the wrapped model -------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.model.is_fitted

    def fit(self, texts: Iterable[str]) -> None:
        self.model.fit(texts)
        self._terms = None

    @property
    def fingerprint(self) -> EncoderFingerprint:
        return self.model.fingerprint

    def encode_document(self, texts: Sequence[str]) -> list[SparseVector]:
        return self.model.encode_document(texts)

    def encode_query(self, text: str) -> EncodedQuery:
        return self.model.encode_query(text)

    def save(self, directory: Path) -> None:
        self.model.save(directory)

    # -- the batch interface -----------------------------------------------------------------------
    @property
    def vocabulary(self) -> TermList:  # type: ignore[override]
        """Every token the fitted model can give a document of its corpus, sorted."""
        if self._terms is None:
            if not self.model.is_fitted or self.model.lexical.idf is None:
                raise UsageError(
                    f"{self.name}: fit the model on the corpus before encoding it (its words are the vocabulary)"
                )
            self._terms = TermList([*self.model.lexical.idf.df, *_learned_tokens(self.model.learned)])
        return self._terms

    @property
    def options(self) -> EncodingOptions:  # type: ignore[override]
        return EncodingOptions()

    @options.setter
    def options(self, value: EncodingOptions) -> None:
        if value.output_identity() != EncodingOptions().output_identity():
            raise UsageError(
                f"{self.name}: --max-length, --passage-overlap, --max-active-dims, --min-weight, --precision and "
                "--max-passages apply to SPLADE models; the two-channel model reads fixed word windows"
            )

    def encode_document_batch(self, texts: Sequence[str]) -> SparseBatch:
        ids = self.vocabulary.ids
        indptr, term_ids, weights = [0], [], []
        for vector in self.model.encode_document(texts):
            row = sorted((ids[token], weight) for token, weight in vector.items() if weight > 0 and token in ids)
            if len(row) != sum(1 for w in vector.values() if w > 0):
                unknown = sorted(set(vector) - set(ids))[:5]
                raise UsageError(
                    f"{self.name}: tokens {unknown} are not in the vocabulary of the corpus the model was fitted on; "
                    "encode only the documents of that corpus (or fit on the corpus that holds them)"
                )
            term_ids.extend(t for t, _ in row)
            weights.extend(w for _, w in row)
            indptr.append(len(term_ids))
        return SparseBatch(
            np.asarray(indptr, dtype=np.int64),
            np.asarray(term_ids, dtype=np.int32),
            np.asarray(weights, dtype=np.float32),
        )

    def document_digest(self) -> str:
        """The fingerprint: the two channels' vocabularies and statistics (the learned channel's
        head digest is part of its own fingerprint)."""
        return hashlib.sha256(json.dumps(self.fingerprint.to_dict(), sort_keys=True).encode()).hexdigest()

    def set_idf(self, idf: object) -> None:
        raise UsageError(f"{self.name}: a two-channel model is fitted on the corpus, not given an IDF table")
