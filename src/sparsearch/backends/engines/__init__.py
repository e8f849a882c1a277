"""OpenSearch and Elasticsearch backends: one client class, pure request bodies, bulk loading."""

from __future__ import annotations

from sparsearch._lazy import lazy_exports

_EXPORTS = {
    "OpenSearchBackend": "sparsearch.backends.engines.opensearch",
    "ElasticsearchBackend": "sparsearch.backends.engines.elasticsearch",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
