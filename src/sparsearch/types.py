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
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sparsearch.errors import EncoderMismatchError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from sparsearch.encoders.idf import IdfTable
    from sparsearch.encoders.neural import EncodingOptions
    from sparsearch.encoders.sparse_batch import SparseBatch
    from sparsearch.encoders.vocabulary import TokenizerVocabulary

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


@dataclass(frozen=True)
class Hit:
    """One ranked result.

    Attributes:
        doc_id: the document's external id (also readable as :attr:`id`).
        score: sum over shared tokens of query weight x document weight, as the backend scored it.
        title: the stored title; ``None`` when the search did not fetch documents (backends return
            bare ``(doc_id, score)`` hits; :class:`sparsearch.Searcher` fills title and text).
        text: the stored text, ``None`` as for ``title``.
    """

    doc_id: str
    score: float
    title: str | None = None
    text: str | None = None

    @property
    def id(self) -> str:
        """The external document id (``doc_id``), under the name the REST API uses."""
        return self.doc_id


@runtime_checkable
class Encoder(Protocol):
    """What the indexer, the engines and the API need from an encoder.

    Method names follow sentence-transformers (``encode_query``, ``encode_document``). Every encoder
    of :mod:`sparsearch.encoders` inherits :class:`BaseEncoder`, which supplies the defaults.
    """

    name: str
    """Model name recorded in indexes."""

    @property
    def fingerprint(self) -> EncoderFingerprint: ...

    @property
    def is_fitted(self) -> bool:
        """Whether the corpus statistics (BM25's df/avgdl, an IDF table) are there; ``True`` when none are needed."""
        ...

    def fit(self, texts: Iterable[str]) -> None:
        """Compute corpus statistics over ``texts`` (the target corpus); a no-op when none are needed."""
        ...

    def encode_document(self, texts: Sequence[str]) -> list[SparseVector]:
        """Encode a batch of documents; returns one ``token -> weight`` map (weights > 0) per text."""
        ...

    def encode_query(self, text: str) -> EncodedQuery:
        """Encode one query; an empty or all-stop-word query gives empty weights."""
        ...

    def save(self, directory: Path) -> None:
        """Write the encoder into ``directory`` (created), readable by ``sparsearch.encoders.registry.load_encoder``."""
        ...


class BaseEncoder:
    """Defaults every encoder inherits: fitted, nothing to fit. Subclasses provide the rest of :class:`Encoder`."""

    name: str = "encoder"

    @property
    def fingerprint(self) -> EncoderFingerprint:
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return True

    def fit(self, texts: Iterable[str]) -> None:
        """No corpus statistics by default."""

    def encode_document(self, texts: Sequence[str]) -> list[SparseVector]:
        raise NotImplementedError

    def encode_query(self, text: str) -> EncodedQuery:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")


class BatchEncoder(BaseEncoder):
    """Base of the encoders with a fixed vocabulary that write CSR rows directly (the neural encoders).

    Callers check ``isinstance(encoder, BatchEncoder)``. Not a default on :class:`BaseEncoder`: CSR
    rows need term ids, and BM25 and the two-channel model have open (analyzer) vocabularies with no
    term-id space to build them from. A class, not a runtime-checkable protocol: on Python 3.11
    ``isinstance`` against a protocol evaluates every property, and the fingerprint of an encoder not
    fitted yet raises.
    """

    vocabulary: TokenizerVocabulary
    """The tokenizer vocabulary; ``vocabulary.vocabulary[term_id]`` is the token of a CSR column."""
    options: EncodingOptions
    """Document encoding options (passages, pruning, precision)."""
    loaded_from: Path | None = None
    """The saved model directory this encoder was loaded from (``None``: built in memory)."""

    def encode_document(self, texts: Sequence[str]) -> list[SparseVector]:
        """``token -> weight`` maps (weights > 0), one per text: :meth:`encode_document_batch` as dicts."""
        return self.encode_document_batch(texts).to_dicts(self.vocabulary.vocabulary)

    def encode_document_batch(self, texts: Sequence[str]) -> SparseBatch:
        """Encode documents into CSR rows over :attr:`vocabulary`, one row per text."""
        raise NotImplementedError

    def document_digest(self) -> str:
        """Identity of the document model's weights (two models may share tokenizer and IDF table)."""
        raise NotImplementedError

    def set_idf(self, idf: IdfTable) -> None:
        """Take a precomputed query-side IDF table instead of :meth:`fit`."""
        raise NotImplementedError


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
