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
from sparsearch.retrieval.models import load_encoder

__all__ = [
    "BM25Encoder",
    "Document",
    "EncodedQuery",
    "Encoder",
    "EncoderFingerprint",
    "IdfTable",
    "SparseVector",
    "bm25_wordpiece",
    "bm25_words",
    "dot",
    "load_encoder",
]
