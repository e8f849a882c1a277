"""Everything that stores and searches sparse vectors: the backend protocol, the embedded engine and
the OpenSearch / Elasticsearch backends (``open_backend`` picks one)."""

from __future__ import annotations

_EXPORTS = {
    "Hit": "sparsearch.backends.base",
    "SearchBackend": "sparsearch.backends.base",
    "open_backend": "sparsearch.backends.factory",
    "load_backend_encoder": "sparsearch.backends.factory",
    "EmbeddedIndex": "sparsearch.backends.embedded.index",
    "IndexWriter": "sparsearch.backends.embedded.index",
    "OpenSearchBackend": "sparsearch.backends.engines.opensearch",
    "ElasticsearchBackend": "sparsearch.backends.engines.elasticsearch",
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
