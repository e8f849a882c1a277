"""OpenSearch and Elasticsearch backends: one client class, pure request bodies, bulk loading."""

from __future__ import annotations

_EXPORTS = {
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
