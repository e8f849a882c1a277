"""The Lucene backend: a Lucene impact index built by pyserini from our vectors, searched with Anserini's
``SimpleImpactSearcher`` in this process's JVM (:mod:`~sparsearch.backends.lucene.java`). Read-only.

Directory layout (written by :func:`~sparsearch.jobs.build_lucene.build_lucene_index`)::

    INDEX/
      sparsearch-lucene.json   format, encoder fingerprint, doc_scale, query_max_impact, counts, versions
      encoder/                 the encoder that built the vectors (queries are encoded with it)
      lucene/                  the Lucene index (pyserini.index.lucene --impact --pretokenized)
      doc_ids.json, docs.jsonl, docs_offsets.npy   stored ids, titles and texts (for get_documents)

**What is exact and what is quantised.** Lucene stores integer impacts. A document weight ``d`` was
stored as ``round(d x doc_scale)``; a query weight ``q`` is sent as ``round(q x query_scale)`` with
``query_scale = query_max_impact / max(query weights)`` (per query: the ranking of one query does not
depend on its scale, so every query gets the full integer range). Anserini scores a document by the
sum of query impact x document impact, an exact integer (float32 holds integers exactly below 2^24),
and breaks ties by ``doc_id`` ascending, as the embedded engine does. Scores are returned in our units,
``lucene_score / (query_scale x doc_scale)``, so they match the embedded engine's up to quantisation:
a matched token's contribution ``q x d`` is off by at most ``q' x 0.5 / doc_scale + d x 0.5 / query_scale``
(``q'`` the quantised query weight), and the ranking can differ from the exact one only between documents
whose exact scores are closer than the sum of those bounds.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from sparsearch.backends.embedded.docstore import DocStore
from sparsearch.backends.lucene.impacts import MAX_IMPACT, query_impacts
from sparsearch.errors import IndexFormatError, IndexNotFoundError, UsageError
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, Hit, SparseVector

log = logging.getLogger(__name__)

MANIFEST_FILE = "sparsearch-lucene.json"
FORMAT = "sparsearch-lucene"
FORMAT_VERSION = 1
LUCENE_DIR = "lucene"
ENCODER_DIR = "encoder"
DOC_IDS_FILE = "doc_ids.json"
QUERY_MAX_IMPACT = MAX_IMPACT
"""The integer a query's largest weight maps to."""


def is_lucene_index(path: str | Path) -> bool:
    """Whether ``path`` holds a Lucene backend index (its manifest)."""
    return (Path(path) / MANIFEST_FILE).is_file()


class LuceneIndex:
    """An opened Lucene backend index (see the module docstring). Implements ``SearchBackend``; read-only.

    Args:
        path: the index directory.
        threads: Java threads :meth:`search_batch` spreads a batch over.

    Raises:
        IndexNotFoundError: no Lucene backend index at ``path``.
        IndexFormatError: a damaged one.
        MissingExtraError: pyserini is not installed (``pip install 'sparsearch[lucene]'``).
        JavaNotFoundError: no Java 21+ JDK.
    """

    name = "lucene"

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        from sparsearch.backends.lucene.java import anserini_class, anserini_jar

        anserini_jar()  # no pyserini: say which extra to install before anything else
        self.path = path
        if not is_lucene_index(path):
            raise IndexNotFoundError(
                f"no Lucene index at {path} (no {MANIFEST_FILE}); build one with: sparsearch index --backend lucene "
                f"--data CORPUS --index {path}"
            )
        try:
            self.manifest: dict = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
            if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format {self.manifest.get('format')!r} {self.manifest.get('format_version')!r}")
            self._fingerprint = EncoderFingerprint.from_dict(self.manifest["encoder"])
            self.doc_scale = float(self.manifest["doc_scale"])
            self.query_max_impact = int(self.manifest["query_max_impact"])
            self._doc_ids: list[str] = json.loads((path / DOC_IDS_FILE).read_text(encoding="utf-8"))
            self._store = DocStore(path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise IndexFormatError(f"{path}: damaged Lucene backend index ({error}); rebuild it") from error
        self._row = {doc_id: row for row, doc_id in enumerate(self._doc_ids)}
        self.threads = threads or min(4, os.cpu_count() or 1)
        searcher_class = anserini_class("io.anserini.search.SimpleImpactSearcher")
        self._HashMap = anserini_class("java.util.HashMap")
        self._ArrayList = anserini_class("java.util.ArrayList")
        self._Integer = anserini_class("java.lang.Integer")
        try:
            self._searcher = searcher_class(str(path / LUCENE_DIR))
        except Exception as error:  # noqa: BLE001 - pyjnius raises JavaException for Lucene's IOExceptions
            raise IndexFormatError(f"{path / LUCENE_DIR}: Lucene cannot open it ({error}); rebuild it") from error

    @classmethod
    def open(cls, path: str | Path, *, threads: int | None = None) -> LuceneIndex:
        """Open the index at ``path`` (starts the JVM on first use: a few seconds)."""
        return cls(Path(path), threads=threads)

    # -- metadata ----------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> EncoderFingerprint:
        return self._fingerprint

    @property
    def encoder_dir(self) -> Path:
        return self.path / ENCODER_DIR

    def count(self) -> int:
        return len(self._doc_ids)

    def health(self) -> dict[str, object]:
        return {"engine": "lucene", "path": str(self.path), "documents": self.count()}

    def stats(self) -> dict[str, object]:
        """The manifest (scales, counts, versions)."""
        return dict(self.manifest)

    # -- search ------------------------------------------------------------------------------------
    def _java_query(self, query: EncodedQuery) -> tuple[object, float] | None:
        """The query as a Java ``Map<String, Integer>`` and its scale; ``None`` when no impact is left."""
        self._fingerprint.check_compatible(query.encoder, where=f"index {self.path}")
        impacts, scale = query_impacts(query.weights, self.query_max_impact)
        if not impacts:
            return None
        java_query = self._HashMap()
        for token, impact in impacts.items():
            java_query.put(token, self._Integer(impact))
        return java_query, scale

    def _hits(self, scored_docs: Sequence[object], query_scale: float) -> list[Hit]:
        # Anserini lowers tied scores by 1e-6 per place to keep ties in doc_id order: the integer is the score
        unit = query_scale * self.doc_scale
        hits = [Hit(str(d.docid), round(d.score) / unit) for d in scored_docs]  # type: ignore[attr-defined]
        return sorted(hits, key=lambda hit: (-hit.score, hit.doc_id))

    def search(self, query: EncodedQuery, top_k: int = 10) -> list[Hit]:
        """Top ``top_k`` by the quantised dot product (see the module docstring), scores in our units."""
        if top_k < 1:
            raise UsageError(f"top_k must be at least 1 (got {top_k})")
        prepared = self._java_query(query)
        if prepared is None:
            return []
        return self._hits(self._searcher.search(prepared[0], int(top_k)), prepared[1])

    def search_batch(self, queries: Sequence[EncodedQuery], top_k: int = 10) -> list[list[Hit]]:
        """One hit list per query, in order; the batch runs on :attr:`threads` Java threads."""
        if top_k < 1:
            raise UsageError(f"top_k must be at least 1 (got {top_k})")
        prepared = [self._java_query(query) for query in queries]
        java_queries, ids = self._ArrayList(), self._ArrayList()
        for i, item in enumerate(prepared):
            if item is not None:
                java_queries.add(item[0])
                ids.add(str(i))
        found: dict[str, Sequence[object]] = {}
        if java_queries.size():
            results = self._searcher.batch_search(java_queries, ids, int(top_k), int(self.threads))
            found = {entry.getKey(): entry.getValue() for entry in results.entrySet().toArray()}
        return [[] if item is None else self._hits(found.get(str(i), []), item[1]) for i, item in enumerate(prepared)]

    def get_documents(self, doc_ids: Sequence[str]) -> list[Document | None]:
        documents: list[Document | None] = []
        for doc_id in doc_ids:
            row = self._row.get(doc_id)
            if row is None:
                documents.append(None)
            else:
                title, text = self._store.get(row)
                documents.append(Document(doc_id=doc_id, title=title, text=text))
        return documents

    # -- updates: refused ----------------------------------------------------------------------------
    def _read_only(self, operation: str) -> UsageError:
        return UsageError(
            f"the Lucene index {self.path} is read-only ({operation} refused): rebuild it with sparsearch index "
            "--backend lucene --overwrite, or use the embedded backend for updates"
        )

    def upsert(self, documents: Sequence[Document], vectors: Sequence[SparseVector]) -> None:
        raise self._read_only("upsert")

    def delete(self, doc_ids: Sequence[str]) -> int:
        raise self._read_only("delete")

    def close(self) -> None:
        """Close the Lucene reader (the JVM stays up: one per process)."""
        searcher, self._searcher = getattr(self, "_searcher", None), None
        if searcher is not None:
            searcher.close()
