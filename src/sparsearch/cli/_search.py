"""``sparsearch search``: answer a text query from an index."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import BackendOption, UrlOption, app, check_url_option, stderr, stdout, user_errors
from sparsearch.errors import UsageError


# -- search --------------------------------------------------------------------------------------------
@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    index: Annotated[str, typer.Option("--index", help="Index directory (embedded) or alias name (engines).")],
    top_k: Annotated[int, typer.Option("--top-k", "--hits", min=1, max=10000, help="Number of results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    backend: BackendOption = "embedded",
    url: UrlOption = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Saved encoder directory (default: the one stored with the index); must match it."
        ),
    ] = None,
) -> None:
    """Search an index with a text query."""
    with user_errors():
        from sparsearch.indexer.backends import load_backend_encoder, open_backend

        check_url_option(backend, url)
        if not query.strip():
            raise UsageError("the query is empty: pass some words to search for")
        opened = open_backend(backend, index=index, url=url)
        encoder = load_backend_encoder(opened, model)
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
