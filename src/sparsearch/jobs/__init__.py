"""Batch work over a corpus: build an embedded index, load an engine, encode once into files."""

from __future__ import annotations

_EXPORTS = {
    "IndexSummary": "sparsearch.jobs.build_embedded",
    "build_embedded_index": "sparsearch.jobs.build_embedded",
    "index_corpus": "sparsearch.jobs.build_engine",
    "EncodedOutput": "sparsearch.jobs.encode",
    "run_encode_job": "sparsearch.jobs.encode",
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
