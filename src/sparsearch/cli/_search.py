"""``sparsearch search``: answer a text query from an index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import app, stderr, stdout, user_errors
from sparsearch.errors import UsageError


# -- search --------------------------------------------------------------------------------------------
@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    index: Annotated[Path, typer.Option("--index", help="Index directory.")],
    top_k: Annotated[int, typer.Option("--top-k", "--hits", min=1, max=10000, help="Number of results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Search an index with a text query."""
    with user_errors():
        from sparsearch.indexer.embedded import EmbeddedIndex
        from sparsearch.retrieval.models import load_encoder

        if not query.strip():
            raise UsageError("the query is empty: pass some words to search for")
        opened = EmbeddedIndex.open(index)
        encoder = load_encoder(opened.encoder_dir)
        encoded = encoder.encode_query(query)
        hits = opened.search(encoded, top_k) if not encoded.is_empty else []
        documents = opened.get_documents([h.doc_id for h in hits])
        rows = [
            {"rank": rank, "doc_id": hit.doc_id, "score": hit.score, "title": (doc.title if doc else "")}
            for rank, (hit, doc) in enumerate(zip(hits, documents, strict=True), start=1)
        ]
        if as_json:
            stdout.print_json(json.dumps({"query": query, "model": opened.fingerprint.name, "hits": rows}))
            return
        if encoded.is_empty:
            stderr.print("[yellow]no query terms left after analysis (only stop words or unknown tokens)[/]")
        table = Table(title=f"{len(rows)} hits for {query!r}")
        for column in ("rank", "doc_id", "score", "title"):
            table.add_column(column, overflow="fold" if column == "title" else "ellipsis")
        for row in rows:
            table.add_row(str(row["rank"]), row["doc_id"], f"{row['score']:.4f}", row["title"][:100])
        stdout.print(table)
