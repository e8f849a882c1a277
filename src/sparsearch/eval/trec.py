"""TREC run files: ``qid Q0 docid rank score tag``, one line per retrieved document."""

from __future__ import annotations

from pathlib import Path

from sparsearch.eval.metrics import Run


def write_trec_run(run: Run, path: str | Path, tag: str = "sparsearch") -> None:
    """Write ``run`` ranked by score descending, then doc_id ascending; rank starts at 1."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for query_id, docs in run.items():
            ranked = sorted(docs.items(), key=lambda item: (-item[1], item[0]))
            for rank, (doc_id, score) in enumerate(ranked, start=1):
                handle.write(f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n")


def read_trec_run(path: str | Path) -> Run:
    """Read a TREC run file back into ``query_id -> {doc_id: score}``."""
    run: Run = {}
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 6:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run
