"""Everything that stores and searches sparse vectors: the backend protocol, the embedded engine and
the OpenSearch / Elasticsearch backends (``open_backend`` picks one)."""

from __future__ import annotations

from sparsearch._lazy import lazy_exports

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
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
