"""Encoders: the scoring contract, analyzers, IDF tables and the models that produce sparse vectors."""

from sparsearch.retrieval.bm25 import BM25Encoder, bm25_wordpiece, bm25_words
from sparsearch.retrieval.contract import (
    Document,
    EncodedQuery,
    Encoder,
    EncoderFingerprint,
    SparseVector,
    dot,
)
from sparsearch.retrieval.idf import IdfTable
from sparsearch.retrieval.llm_splade import EchoSpladeEncoder
from sparsearch.retrieval.models import load_encoder
from sparsearch.retrieval.neural import EncodingOptions
from sparsearch.retrieval.sparse_batch import SparseBatch
from sparsearch.retrieval.splade import SpladeEncoder

__all__ = [
    "BM25Encoder",
    "Document",
    "EchoSpladeEncoder",
    "EncodedQuery",
    "Encoder",
    "EncoderFingerprint",
    "EncodingOptions",
    "IdfTable",
    "SparseBatch",
    "SparseVector",
    "SpladeEncoder",
    "bm25_wordpiece",
    "bm25_words",
    "dot",
    "load_encoder",
]
