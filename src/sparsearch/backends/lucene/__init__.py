"""The Lucene backend: a read-only Lucene impact index built and searched through pyserini (Anserini),
from an embedded index's vectors. Needs ``pip install 'sparsearch[lucene]'`` and a Java 21+ JDK."""

from __future__ import annotations

from sparsearch._lazy import lazy_exports

_EXPORTS = {
    "LuceneIndex": "sparsearch.backends.lucene.index",
    "find_java_home": "sparsearch.backends.lucene.java",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
