"""``sparsearch search``: answer a text query from an index."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import BackendOption, UrlOption, app, check_url_option, stderr, stdout, user_errors
from sparsearch.errors import UsageError
from sparsearch.types import Hit


# -- search --------------------------------------------------------------------------------------------
@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    index: Annotated[str, typer.Option("--index", help="Index directory (embedded) or alias name (engines).")],
    top_k: Annotated[int, typer.Option("--top-k", "--hits", min=1, max=10000, help="Number of results.")] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table (the REST API's search response).")
    ] = False,
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
        from sparsearch.search import Searcher

        check_url_option(backend, url)
        if not query.strip():
            raise UsageError("the query is empty: pass some words to search for")
        with Searcher.open(index, backend=backend, url=url, model=model) as searcher:
            started = time.perf_counter()
            encoded = searcher.encode_query(query)
            hits = searcher.search(encoded, top_k)
            took_ms = (time.perf_counter() - started) * 1000.0
            model_name = searcher.backend.fingerprint.name
        if as_json:
            stdout.print_json(json.dumps(_json_response(query, index, model_name, hits, took_ms)))
            return
        rows = [
            {"rank": rank, "doc_id": hit.doc_id, "score": hit.score, "title": hit.title or ""}
            for rank, hit in enumerate(hits, start=1)
        ]
        if encoded.is_empty:
            stderr.print("[yellow]no query terms left after analysis (only stop words or unknown tokens)[/]")
        table = Table(title=f"{len(rows)} hits for {query!r}")
        for column in ("rank", "doc_id", "score", "title"):
            table.add_column(column, overflow="fold" if column == "title" else "ellipsis")
        for row in rows:
            table.add_row(str(row["rank"]), row["doc_id"], f"{row['score']:.4f}", row["title"][:100])
        stdout.print(table)


def _json_response(query: str, index: str, model: str, hits: list[Hit], took_ms: float) -> dict:
    """The body ``POST /v1/search`` answers (hits as ``SearchHit``: ``id``, ``score``, ``title``, ``snippet``,
    snippets as long as the service's default), plus the ``query``.

    Built with the service's own models and snippet function so the two outputs cannot drift apart;
    that needs the ``api`` extra.
    """
    from sparsearch.errors import require

    require("fastapi", "api")
    from sparsearch.api.schemas import SearchHit, SearchResponse
    from sparsearch.api.service import make_snippet
    from sparsearch.api.settings import Settings

    snippet_chars = Settings.model_fields["snippet_chars"].default
    response = SearchResponse(
        hits=[
            SearchHit(
                id=hit.doc_id,
                score=hit.score,
                title=hit.title,
                snippet=make_snippet(hit.text, snippet_chars) if hit.text is not None else None,
            )
            for hit in hits
        ],
        took_ms=took_ms,
        model=model,
        index=index,
    )
    # The service leaves out unset fields (response_model_exclude_none): so does this.
    return {"query": query, **response.model_dump(mode="json", exclude_none=True)}
