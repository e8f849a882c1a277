"""sparsearch: learned sparse retrieval, from a BEIR folder to ranked results and metrics.

Public entry points live in the subpackages: :mod:`sparsearch.retrieval` (encoders),
:mod:`sparsearch.indexer` (engines and indexing jobs), :mod:`sparsearch.eval` (BEIR evaluation)
and :mod:`sparsearch.api` (the REST service). Importing this package loads nothing heavy.
"""

__version__ = "0.1.0"
