"""The Lucene indexing job: a Lucene backend index from an embedded index: export its vectors as a JsonVectorCollection
(:mod:`sparsearch.jobs.export`), index them with pyserini's Lucene indexer (a JVM subprocess), and keep
the encoder and the documents beside the Lucene index (layout: :mod:`sparsearch.backends.lucene.index`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from sparsearch import __version__
from sparsearch._files import directory_bytes, fsync_dir, write_json_atomic, write_text_synced
from sparsearch.backends.embedded.docstore import DocStoreWriter
from sparsearch.backends.embedded.index import EmbeddedIndex, check_index_target
from sparsearch.backends.lucene.impacts import MAX_IMPACT
from sparsearch.backends.lucene.index import (
    DOC_IDS_FILE,
    ENCODER_DIR,
    FORMAT,
    FORMAT_VERSION,
    LUCENE_DIR,
    MANIFEST_FILE,
    QUERY_MAX_IMPACT,
    LuceneIndex,
)
from sparsearch.backends.lucene.java import java_environment, java_version
from sparsearch.errors import SparsearchError
from sparsearch.jobs.export import export_jsonvector
from sparsearch.jobs.jsonvector import DOCS_DIR, pyserini_index_command


class LuceneBuildError(SparsearchError):
    """pyserini's indexer failed (its last output lines are in the message)."""


@dataclass
class LuceneBuildSummary:
    """What a Lucene build did: counts, the scale, and the time of each step (seconds)."""

    path: str
    documents: int
    postings: int
    dropped: int
    doc_scale: float
    export_seconds: float
    lucene_seconds: float
    bytes: int


def build_lucene_index(
    embedded_path: str | Path,
    index_path: str | Path,
    *,
    threads: int = 2,
    max_impact: int = MAX_IMPACT,
    overwrite: bool = False,
) -> tuple[LuceneIndex, LuceneBuildSummary]:
    """Build the Lucene backend index ``index_path`` from the embedded index ``embedded_path``.

    Args:
        embedded_path: the embedded index whose vectors, documents and encoder are used.
        index_path: the Lucene backend directory to create (built in ``INDEX.tmp``, renamed when complete).
        threads: indexing threads of pyserini (one collection file each).
        max_impact: the integer the largest document weight maps to (see
            :func:`~sparsearch.backends.lucene.impacts.impact_scale`).
        overwrite: replace an existing ``index_path``.

    Raises:
        IndexExistsError: ``index_path`` exists and ``overwrite`` is false.
        JavaNotFoundError: no Java 21+ JDK.
        LuceneBuildError: pyserini's indexer failed.
    """
    target = Path(index_path)
    check_index_target(target, overwrite=overwrite)
    env = java_environment()  # before the export: no JDK, no work
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    export = export_jsonvector(embedded_path, tmp / "export", max_impact=max_impact)
    started = time.perf_counter()
    command = [sys.executable, *pyserini_index_command(tmp / "export" / DOCS_DIR, tmp / LUCENE_DIR, threads)[1:]]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise LuceneBuildError(f"pyserini's Lucene indexer failed (exit {done.returncode}); its last lines:\n{tail}")
    lucene_seconds = time.perf_counter() - started
    shutil.move(tmp / "export" / ENCODER_DIR, tmp / ENCODER_DIR)
    shutil.rmtree(tmp / "export")
    _write_documents(EmbeddedIndex.open(embedded_path), tmp)
    info = export.info
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "encoder": info.encoder.to_dict(),
        "doc_scale": info.scale,
        "doc_max_impact": info.max_impact,
        "query_max_impact": QUERY_MAX_IMPACT,
        "quantisation": "impact = round(weight x scale), 0 dropped; query scale = query_max_impact / max query weight",
        "n_docs": info.documents,
        "postings": info.postings,
        "dropped_postings": info.dropped,
        "avg_terms_per_doc": info.postings / info.documents if info.documents else 0.0,
        "source_index": str(Path(embedded_path).resolve()),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sparsearch_version": __version__,
        "pyserini_version": version("pyserini"),
        "java_home": env["JAVA_HOME"],
        "java_version": java_version(Path(env["JAVA_HOME"])),
    }
    write_json_atomic(tmp / MANIFEST_FILE, manifest)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    fsync_dir(target.parent)
    summary = LuceneBuildSummary(
        path=str(target),
        documents=info.documents,
        postings=info.postings,
        dropped=info.dropped,
        doc_scale=info.scale,
        export_seconds=export.seconds,
        lucene_seconds=lucene_seconds,
        bytes=directory_bytes(target),
    )
    return LuceneIndex.open(target, threads=threads), summary


def _write_documents(index: EmbeddedIndex, directory: Path) -> None:
    """The live documents' ids, titles and texts, in the embedded index's order, as the embedded doc store."""
    store = DocStoreWriter(directory)
    doc_ids: list[str] = []
    for view in index.snapshot().views:
        live = (view.live_rank >= 0).tolist()
        for doc_id, row, alive in zip(view.reader.doc_ids, view.reader.store.iter_rows(), live, strict=True):
            if alive:
                doc_ids.append(doc_id)
                store.add(*row)
    store.close()
    write_text_synced(directory / DOC_IDS_FILE, json.dumps(doc_ids, ensure_ascii=False))
