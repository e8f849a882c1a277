"""The embedded engine: term-major postings on disk (memory-mapped), a document store and compiled
exact top-k kernels."""

from __future__ import annotations

_EXPORTS = {
    "EmbeddedIndex": "sparsearch.backends.embedded.index",
    "IndexWriter": "sparsearch.backends.embedded.index",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    # Lazy exports (PEP 562): importing the package loads none of its modules, so nothing heavy
    # (numba, torch, engine clients) is imported before it is used.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
