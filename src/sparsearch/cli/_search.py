"""``sparsearch search``: answer a text query from an index."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import (
    BackendOption,
    ModeOption,
    UrlOption,
    app,
    check_mode,
    check_url_option,
    progress_bar,
    stderr,
    stdout,
    user_errors,
)
from sparsearch.errors import UsageError
from sparsearch.types import Hit


# -- search --------------------------------------------------------------------------------------------
@app.command()
def search(
    index: Annotated[str, typer.Option("--index", help="Index directory (embedded) or alias name (engines).")],
    query: Annotated[str | None, typer.Argument(help="The query text (or --topics FILE for many).")] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", "--hits", min=1, max=10000, help="Number of results (default 10; 1000 per topic with --topics)."
        ),
    ] = None,
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
    topics: Annotated[
        Path | None,
        typer.Option(
            "--topics",
            help="Search every query of this file instead of one: BEIR queries.jsonl (or a BEIR folder) or "
            "pyserini's TSV topics (qid<TAB>text); needs --run. No qrels needed.",
        ),
    ] = None,
    run_file: Annotated[
        Path | None,
        typer.Option("--run", "--output", help="With --topics: write the TREC run (qid Q0 docid rank score tag) here."),
    ] = None,
    run_tag: Annotated[
        str | None, typer.Option("--run-tag", help="The run's tag column (default: the index's model name).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Topics searched per batch (--topics).")] = 64,
    mode: ModeOption = "sparse",
) -> None:
    """Search an index with a text query, or every query of a topics file into a TREC run.

    --mode hybrid re-ranks the top 100 sparse candidates by fusing in the dense model's cosine
    (index built with --dense); it returns at most 100 hits, scored by the fusion."""
    with user_errors():
        from sparsearch.search import Searcher

        check_url_option(backend, url)
        check_mode(mode, backend)
        if topics is not None:
            if query is not None:
                raise UsageError("give either a query or --topics FILE, not both")
            if run_file is None:
                raise UsageError("--topics needs --run FILE: where to write the TREC run")
            if as_json:
                raise UsageError("--json answers one query; --topics writes a TREC run (--run)")
            _search_topics(index, backend, url, model, topics, run_file, run_tag, top_k or 1000, batch_size, mode)
            return
        if run_file is not None or run_tag is not None:
            raise UsageError("--run and --run-tag go with --topics FILE (a single query prints its hits)")
        if query is None or not query.strip():
            raise UsageError("the query is empty: pass some words to search for (or --topics FILE)")
        top_k = top_k or 10
        with Searcher.open(index, backend=backend, url=url, model=model) as searcher:
            started = time.perf_counter()
            encoded = searcher.encode_query(query)
            hits = searcher.search(encoded, top_k, mode=mode)
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


def _search_topics(  # noqa: PLR0913 - the search command's options
    index: str,
    backend: str,
    url: str | None,
    model: str | None,
    topics_file: Path,
    run_file: Path,
    run_tag: str | None,
    hits: int,
    batch_size: int,
    mode: str = "sparse",
) -> None:
    """``search --topics``: every topic through :meth:`Searcher.search_batch`, written as a TREC run."""
    from sparsearch.eval.beir_data import read_topics
    from sparsearch.eval.trec import TrecRunWriter
    from sparsearch.search import Searcher

    topics = read_topics(topics_file)
    items = list(topics.items())
    without_hits = 0
    started = time.perf_counter()
    with Searcher.open(index, backend=backend, url=url, model=model) as searcher:
        tag = run_tag or searcher.backend.fingerprint.name
        with TrecRunWriter(run_file, tag) as writer, progress_bar("queries") as progress:
            task = progress.add_task("searching", total=len(items))
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                hit_lists = searcher.search_batch([text for _, text in batch], hits, with_documents=False, mode=mode)
                for (query_id, _), found in zip(batch, hit_lists, strict=True):
                    writer.write(query_id, {hit.doc_id: hit.score for hit in found})
                    without_hits += not found
                progress.advance(task, len(batch))
    seconds = time.perf_counter() - started
    if without_hits:
        stderr.print(
            f"[yellow]warning:[/] {without_hits:,} of the {len(items):,} topics got no hit (only stop words or "
            "unknown tokens?) and have no line in the run",
            highlight=False,
        )
    stdout.print(
        f"{len(items):,} topics searched ({len(items) / max(seconds, 1e-9):,.1f} queries/s), "
        f"top {hits} each: {run_file} (tag {tag})",
        highlight=False,
    )


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
