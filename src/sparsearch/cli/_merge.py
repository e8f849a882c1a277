"""``sparsearch merge``: merge an embedded index's segments into one (a force merge)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import app, stdout, user_errors


@app.command()
def merge(
    index: Annotated[str, typer.Option("--index", help="Embedded index directory.")],
) -> None:
    """Merge every segment of an embedded index into one, dropping deleted documents and the terms only
    they used. Online updates add segments and tombstones, and background merges tidy most of them;
    this makes the index as compact as a fresh build. Searches (the API's too) continue meanwhile."""
    with user_errors():
        from sparsearch.backends.embedded.index import EmbeddedIndex

        opened = EmbeddedIndex.open(index, auto_merge=False)
        before = opened.stats()
        started = time.perf_counter()
        merged = opened.merge()
        seconds = time.perf_counter() - started
        after = opened.stats()
        table = Table(title=f"{index}: merged in {seconds:.2f} s" if merged else f"{index}: already one segment")
        for column in ("", "before", "after"):
            table.add_column(column, justify="right" if column else "left")
        for key, label in (
            ("segments", "segments"),
            ("n_docs", "documents"),
            ("deleted_documents", "deleted documents"),
            ("n_terms", "terms"),
            ("bytes", "bytes on disk"),
        ):
            values = [len(s[key]) if key == "segments" else s.get(key, 0) for s in (before, after)]
            table.add_row(label, *(f"{value:,}" for value in values))
        stdout.print(table)
