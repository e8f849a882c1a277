"""The scoring contract every encoder and every engine shares.

* A **document** is a sparse map ``token -> weight`` with every weight > 0.
* A **query** is a sparse map ``token -> weight``.
* ``score(q, d) = sum over shared tokens of q[token] * d[token]``.

Tokens are strings of the encoder's vocabulary. An encoder is identified by an
:class:`EncoderFingerprint` (its name, a hash of its vocabulary/analyzer, a hash of its IDF table);
an index stores the fingerprint of the encoder that built it and refuses queries carrying another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

from sparsearch.errors import EncoderMismatchError

SparseVector = dict[str, float]
"""``token -> weight``; documents hold weights > 0 only."""


ProgressCallback = Callable[[int], None]
"""Called with the number of items (documents, queries) just finished."""


def stable_hash(payload: object) -> str:
    """A short, stable sha256 of a JSON-serialisable value (keys sorted), for fingerprints."""
    data = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class EncoderFingerprint:
    """Identity of an encoder, stored in every index manifest.

    Attributes:
        name: model name, e.g. ``"bm25"`` or a model directory's name.
        vocab_hash: hash of the vocabulary (WordPiece list) or of the analyzer's settings.
        idf_hash: hash of the query-side IDF table (empty string when there is none).
    """

    name: str
    vocab_hash: str
    idf_hash: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> EncoderFingerprint:
        return cls(name=data["name"], vocab_hash=data["vocab_hash"], idf_hash=data["idf_hash"])

    def check_compatible(self, other: EncoderFingerprint, *, where: str = "the index") -> None:
        """Raise :class:`EncoderMismatchError` unless ``other`` has the same vocabulary and IDF table."""
        if (self.vocab_hash, self.idf_hash) != (other.vocab_hash, other.idf_hash):
            raise EncoderMismatchError(
                f"{where} was built with encoder '{self.name}' (vocabulary {self.vocab_hash}, "
                f"IDF table {self.idf_hash}) but the query was encoded by '{other.name}' "
                f"(vocabulary {other.vocab_hash}, IDF table {other.idf_hash}); encode queries with "
                "the index's own encoder (sparsearch loads it from the index when --model is not given)"
            )


@dataclass(frozen=True)
class EncodedQuery:
    """A query ready for any engine: its sparse weights and the encoder that produced them."""

    weights: SparseVector
    encoder: EncoderFingerprint
    text: str = ""

    @property
    def is_empty(self) -> bool:
        return not self.weights


@dataclass(frozen=True)
class Document:
    """A corpus document. ``doc_id`` is the external string id."""

    doc_id: str
    text: str
    title: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def full_text(self) -> str:
        """Title and text joined, the way every encoder reads a document."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@runtime_checkable
class Encoder(Protocol):
    """What the indexer, the engines and the API need from an encoder."""

    @property
    def fingerprint(self) -> EncoderFingerprint: ...

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """Encode documents; returns one ``token -> weight`` map (weights > 0) per text."""
        ...

    def encode_query(self, text: str) -> EncodedQuery:
        """Encode one query; an empty or all-stop-word query gives empty weights."""
        ...


def dot(query: Mapping[str, float], document: Mapping[str, float]) -> float:
    """The reference score: sum over shared tokens of query weight x document weight."""
    if len(query) > len(document):
        query, document = document, query
    return float(sum(weight * document[token] for token, weight in query.items() if token in document))


def iter_batches(items: Iterable, size: int) -> Iterable[list]:
    """Yield lists of at most ``size`` items, in order."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
