"""Encoders (inference only): analyzers, IDF tables, BM25, SPLADE kinds, the semantic and two-channel
models, and the registry that loads any of them by name or folder."""

from __future__ import annotations

_EXPORTS = {
    "BM25Encoder": "sparsearch.encoders.bm25",
    "bm25_words": "sparsearch.encoders.bm25",
    "bm25_wordpiece": "sparsearch.encoders.bm25",
    "IdfTable": "sparsearch.encoders.idf",
    "load_encoder": "sparsearch.encoders.registry",
    "SpladeEncoder": "sparsearch.encoders.splade",
    "EchoSpladeEncoder": "sparsearch.encoders.llm_splade",
    "EncodingOptions": "sparsearch.encoders.neural",
    "SparseBatch": "sparsearch.encoders.sparse_batch",
    "TwoChannelEncoder": "sparsearch.encoders.two_channel",
    "SemanticChannelEncoder": "sparsearch.encoders.semantic",
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
