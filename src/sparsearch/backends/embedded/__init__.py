"""The embedded engine: term-major postings on disk (memory-mapped), a document store and compiled
exact top-k kernels."""

from __future__ import annotations

from sparsearch._lazy import lazy_exports

_EXPORTS = {
    "EmbeddedIndex": "sparsearch.backends.embedded.index",
    "IndexWriter": "sparsearch.backends.embedded.writer",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
