"""Encoders (inference only): analyzers, IDF tables, BM25, SPLADE kinds, the semantic and two-channel
models, and the registry that loads any of them by name or folder."""

from __future__ import annotations

from sparsearch._lazy import lazy_exports

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
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
