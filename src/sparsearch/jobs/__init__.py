"""Batch work over a corpus: build an embedded index, load an engine, encode once into files."""

from __future__ import annotations

from sparsearch._lazy import lazy_exports

_EXPORTS = {
    "IndexSummary": "sparsearch.jobs.build_embedded",
    "build_embedded_index": "sparsearch.jobs.build_embedded",
    "index_corpus": "sparsearch.jobs.build_engine",
    "build_lucene_index": "sparsearch.jobs.build_lucene",
    "export_jsonvector": "sparsearch.jobs.export",
    "EncodedOutput": "sparsearch.jobs.encode",
    "run_encode_job": "sparsearch.jobs.encode",
    "Source": "sparsearch.jobs.source",
    "open_source": "sparsearch.jobs.source",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
