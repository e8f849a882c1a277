"""sparsearch: learned sparse retrieval, from a BEIR folder to ranked results and metrics.

Subpackages: :mod:`sparsearch.encoders` (text to sparse vectors), :mod:`sparsearch.backends`
(embedded index, OpenSearch, Elasticsearch), :mod:`sparsearch.jobs` (batch indexing and encoding),
:mod:`sparsearch.training`, :mod:`sparsearch.eval` (BEIR evaluation) and :mod:`sparsearch.api` (the
REST service). Importing this package loads nothing heavy.
"""

__version__ = "0.1.0"
