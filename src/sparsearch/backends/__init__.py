"""Engines and indexing jobs: the embedded inverted index, the backend protocol and the OpenSearch /
Elasticsearch backends (``open_backend``), the corpus reader, the encode job."""

from sparsearch.indexer.backend import Hit, SearchBackend
from sparsearch.indexer.backends import load_backend_encoder, open_backend
from sparsearch.indexer.corpus import iter_corpus
from sparsearch.indexer.embedded import EmbeddedIndex, IndexWriter
from sparsearch.indexer.encode_job import EncodedOutput, run_encode_job
from sparsearch.indexer.pipeline import IndexSummary, build_embedded_index

__all__ = [
    "EmbeddedIndex",
    "EncodedOutput",
    "Hit",
    "IndexSummary",
    "IndexWriter",
    "SearchBackend",
    "build_embedded_index",
    "iter_corpus",
    "load_backend_encoder",
    "open_backend",
    "run_encode_job",
]
