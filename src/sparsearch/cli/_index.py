"""``sparsearch index``: encode a corpus into an index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import app, build_index_with_progress, human_bytes, stderr, stdout, user_errors


# -- index ---------------------------------------------------------------------------------------------
@app.command()
def index(
    data: Annotated[Path, typer.Option("--data", help="BEIR folder (with corpus.jsonl) or a corpus .jsonl file.")],
    index: Annotated[Path, typer.Option("--index", help="Directory of the index to create.")],
    model: Annotated[
        str | None, typer.Option("--model", help="bm25 (default), bm25-wordpiece, or a model directory.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents encoded per batch.")] = 256,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing index.")] = False,
) -> None:
    """Encode a corpus and write an embedded index."""
    with user_errors():
        built, summary, _ = build_index_with_progress(data, index, model, batch_size, overwrite)
        table = Table(title=f"index {summary.path}", show_header=False)
        table.add_row("model", built.fingerprint.name)
        table.add_row("documents", f"{summary.documents:,}")
        table.add_row("postings", f"{summary.postings:,}")
        table.add_row("avg terms / document", f"{summary.avg_terms_per_doc:.1f}")
        table.add_row("bytes on disk", f"{summary.bytes:,} ({human_bytes(summary.bytes)})")
        table.add_row(
            "seconds", f"{summary.seconds:.2f} ({summary.documents / max(summary.seconds, 1e-9):,.0f} docs/s)"
        )
        stdout.print(table)
        if summary.empty_documents:
            shown = ", ".join(summary.empty_documents[:10]) + (" ..." if len(summary.empty_documents) > 10 else "")
            stderr.print(
                f"[yellow]warning:[/] {len(summary.empty_documents)} documents have no indexable text and can "
                f"never match (kept in the index): {shown}"
            )
