"""The protocol every search engine backend implements (embedded, OpenSearch, Elasticsearch).

All backends share one scoring contract (see :mod:`sparsearch.types`): the score of a
document is the dot product of its stored weights with the query weights, and hits come back
sorted by score descending, then ``doc_id`` ascending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, Hit, SparseVector

__all__ = ["Hit", "SearchBackend"]


@runtime_checkable
class SearchBackend(Protocol):
    """Operations the indexer, the evaluator and the API use, whatever the engine."""

    name: str

    @property
    def fingerprint(self) -> EncoderFingerprint:
        """The encoder identity the index was built with; queries from another encoder are refused."""
        ...

    def search(self, query: EncodedQuery, top_k: int = 10) -> list[Hit]:
        """Exact top-``top_k`` hits for one query (fewer when fewer documents match)."""
        ...

    def search_batch(self, queries: Sequence[EncodedQuery], top_k: int = 10) -> list[list[Hit]]:
        """One hit list per query, in query order."""
        ...

    def upsert(self, documents: Sequence[Document], vectors: Sequence[SparseVector]) -> None:
        """Add documents, replacing those whose ``doc_id`` already exists."""
        ...

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents by id; returns how many existed."""
        ...

    def get_documents(self, doc_ids: Sequence[str]) -> list[Document | None]:
        """Stored title and text for each id (``None`` for unknown ids)."""
        ...

    def count(self) -> int:
        """Number of documents in the index."""
        ...

    def health(self) -> dict[str, object]:
        """Cheap liveness information (raises when the engine is unreachable)."""
        ...
