"""sparsearch: learned sparse retrieval, from a BEIR folder to ranked results and metrics.

Subpackages: :mod:`sparsearch.encoders` (text to sparse vectors), :mod:`sparsearch.backends`
(embedded index, OpenSearch, Elasticsearch), :mod:`sparsearch.jobs` (batch indexing and encoding),
:mod:`sparsearch.training`, :mod:`sparsearch.eval` (BEIR evaluation) and :mod:`sparsearch.api` (the
REST service). Importing this package loads nothing heavy: the names below are imported on first use.

The front door::

    import sparsearch

    searcher = sparsearch.build_index("data/cranfield", "indexes/cranfield-py", model="bm25", overwrite=True)
    hits = searcher.search("hypersonic heat transfer", top_k=3)  # list[sparsearch.Hit]
    searcher = sparsearch.Searcher.open("indexes/cranfield-py")  # later: the index knows its encoder
"""

from __future__ import annotations

__version__ = "0.1.0"

from sparsearch._lazy import lazy_exports  # noqa: E402 - after __version__, which modules below import

_EXPORTS = {
    "load_encoder": "sparsearch.encoders.registry",
    "build_index": "sparsearch.search",
    "Searcher": "sparsearch.search",
    "Document": "sparsearch.types",
    "SparseVector": "sparsearch.types",
    "EncodedQuery": "sparsearch.types",
    "Hit": "sparsearch.types",
    "Encoder": "sparsearch.types",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [*__all__, "__version__"]
