"""``sparsearch export``: an embedded index's documents and vectors as Anserini's JsonVectorCollection,
so pyserini / Anserini build a Lucene impact index from them (layout and format:
:mod:`sparsearch.jobs.jsonvector`). Nothing is re-encoded: the stored vectors are read and quantised."""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sparsearch import __version__
from sparsearch._files import fsync_dir, write_json_atomic
from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.lucene.impacts import MAX_IMPACT, impact_scale
from sparsearch.errors import IndexExistsError, UsageError
from sparsearch.jobs.jsonvector import DOCS_DIR, ENCODER_DIR, SIDECAR_FILE, ExportInfo, pyserini_index_command
from sparsearch.types import Document, ProgressCallback

DOCS_PER_FILE = 100_000
"""Documents per collection file: Anserini indexes one file per thread, so several files index in parallel."""


@dataclass
class ExportSummary:
    """What an export wrote (the sidecar's content plus the wall time)."""

    info: ExportInfo
    output: Path
    seconds: float


def iter_index_vectors(index: EmbeddedIndex) -> Iterator[tuple[Document, list[str], np.ndarray]]:
    """Every live document of ``index`` with its stored vector: ``(document, tokens, float32 weights)``,
    segment by segment, in each segment's row order (the order it was indexed in)."""
    for view in index.snapshot().views:
        reader = view.reader
        term_ids, docs, weights = reader.postings.to_coo()  # term-major: regroup by document
        order = np.argsort(docs, kind="stable")
        term_ids, weights = term_ids[order], np.asarray(weights)[order]
        bounds = np.searchsorted(docs[order], np.arange(reader.n_docs + 1))
        vocab = reader.postings.vocab
        live = (view.live_rank >= 0).tolist()
        for row, ((title, text), alive) in enumerate(zip(reader.store.iter_rows(), live, strict=True)):
            if alive:
                lo, hi = int(bounds[row]), int(bounds[row + 1])
                tokens = [vocab[t] for t in term_ids[lo:hi].tolist()]
                yield Document(doc_id=reader.doc_ids[row], title=title, text=text), tokens, weights[lo:hi]


def max_live_weight(index: EmbeddedIndex) -> float:
    """The largest weight of a live document (0.0 for an empty index)."""
    largest = 0.0
    for view in index.snapshot().views:
        _, docs, weights = view.reader.postings.to_coo()
        live = view.live_rank[docs] >= 0 if len(view.deleted) else slice(None)
        selected = np.asarray(weights)[live]
        if len(selected):
            largest = max(largest, float(selected.max()))
    return largest


def export_jsonvector(
    index_path: str | Path,
    output: str | Path,
    *,
    scale: float | None = None,
    max_impact: int = MAX_IMPACT,
    docs_per_file: int = DOCS_PER_FILE,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ExportSummary:
    """Write the embedded index at ``index_path`` as a JsonVectorCollection export at ``output``.

    Each weight ``w`` becomes the integer ``round(w x scale)`` (dropped when 0). Without ``scale`` the
    rule is ``scale = max_impact / (largest weight in the index)``, so impacts range over 1..max_impact.

    Args:
        index_path: an embedded index directory.
        output: the export folder to create (built in ``OUTPUT.tmp`` and renamed when complete).
        scale: the factor to use instead of the rule.
        max_impact: the integer the largest weight maps to under the rule.
        docs_per_file: documents per ``docs/part-NNNNN.jsonl`` file.
        overwrite: replace an existing ``output``.

    Returns:
        The sidecar's content and timing.

    Raises:
        IndexNotFoundError: no index at ``index_path``.
        IndexExistsError: ``output`` exists and ``overwrite`` is false.
        UsageError: a non-positive ``scale``, ``max_impact`` or ``docs_per_file``.
    """
    started = time.perf_counter()
    output = Path(output)
    if output.exists() and not overwrite:
        raise IndexExistsError(f"{output} already exists; pass --overwrite to replace it")
    if docs_per_file < 1:
        raise UsageError(f"documents per file must be at least 1 (got {docs_per_file})")
    if scale is not None and not (scale > 0 and np.isfinite(scale)):
        raise UsageError(f"--scale must be a positive number (got {scale})")
    index = EmbeddedIndex.open(index_path)
    rule_max_impact: int | None = None
    if scale is None:
        scale, rule_max_impact = impact_scale(max_live_weight(index), max_impact), max_impact
    tmp = output.with_name(output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / DOCS_DIR).mkdir(parents=True)
    shutil.copytree(index.encoder_dir, tmp / ENCODER_DIR)
    files: list[str] = []
    documents = postings = dropped = 0
    handle = None
    try:
        for document, tokens, weights in iter_index_vectors(index):
            if documents % docs_per_file == 0:
                if handle is not None:
                    handle.close()
                files.append(f"part-{len(files):05d}.jsonl")
                handle = (tmp / DOCS_DIR / files[-1]).open("w", encoding="utf-8")
            impacts = np.rint(weights.astype(np.float64) * scale).astype(np.int64)
            vector = {token: int(i) for token, i in zip(tokens, impacts.tolist(), strict=True) if i > 0}
            dropped += len(tokens) - len(vector)
            postings += len(vector)
            record: dict[str, object] = {"id": document.doc_id}
            if document.title:
                record["title"] = document.title
            record.update(contents=document.text, vector=vector)
            assert handle is not None
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            documents += 1
            if on_progress is not None and documents % 1000 == 0:
                on_progress(1000)
    finally:
        if handle is not None:
            handle.close()
    if on_progress is not None and documents % 1000:
        on_progress(documents % 1000)
    command = pyserini_index_command(output.resolve() / DOCS_DIR, output.resolve().with_name(output.name + "-lucene"))
    info = ExportInfo(
        scale=float(scale),
        max_impact=rule_max_impact,
        encoder=index.fingerprint,
        documents=documents,
        postings=postings,
        dropped=dropped,
        files=files,
        source_index=str(Path(index_path).resolve()),
        pyserini_command=shlex.join(command),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sparsearch_version=__version__,
    )
    write_json_atomic(tmp / SIDECAR_FILE, info.to_dict())
    if output.exists():
        shutil.rmtree(output)
    tmp.rename(output)
    fsync_dir(output.parent)
    return ExportSummary(info=info, output=output, seconds=time.perf_counter() - started)
