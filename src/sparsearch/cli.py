"""The ``sparsearch`` command line: index, search, eval.

Results go to stdout, progress and logs to stderr. Exit status: 0 success, 1 failure, 2 usage error.
Errors print one line (no traceback unless ``--verbose``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sparsearch.errors import SparsearchError, UsageError

app = typer.Typer(
    name="sparsearch",
    help="Learned sparse retrieval: index a collection, search it, evaluate it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("sparsearch.cli")


class _State:
    verbose = False


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and full tracebacks.")] = False,
) -> None:
    _State.verbose = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn exceptions into one readable line and an exit status."""
    try:
        yield
    except SparsearchError as error:
        if _State.verbose:
            raise
        stderr.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:  # noqa: BLE001 - the last line of defence before a traceback
        if _State.verbose:
            raise
        stderr.print(
            f"[bold red]error:[/] {type(error).__name__}: {error} (run with --verbose for details)",
            highlight=False,
        )
        raise typer.Exit(1) from None


def _progress(description: str, total: int | None) -> Progress:
    """A docs/s progress bar on stderr, silent when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.speed:>8.0f} docs/s" if total else ""),
        TimeElapsedColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
        transient=False,
    )


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def _build_index(data: Path, index: Path, model: str | None, batch_size: int, overwrite: bool):
    from sparsearch.indexer.corpus import count_lines
    from sparsearch.indexer.pipeline import build_embedded_index
    from sparsearch.retrieval.models import load_encoder

    encoder = load_encoder(model)
    total = count_lines(data)
    with _progress("indexing", total) as progress:
        task = progress.add_task("indexing", total=total)
        return build_embedded_index(
            data,
            index,
            encoder,
            batch_size=batch_size,
            overwrite=overwrite,
            on_progress=lambda n: progress.advance(task, n),
        ) + (encoder,)


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
    with _user_errors():
        built, summary, _ = _build_index(data, index, model, batch_size, overwrite)
        table = Table(title=f"index {summary.path}", show_header=False)
        table.add_row("model", built.fingerprint.name)
        table.add_row("documents", f"{summary.documents:,}")
        table.add_row("postings", f"{summary.postings:,}")
        table.add_row("avg terms / document", f"{summary.avg_terms_per_doc:.1f}")
        table.add_row("bytes on disk", f"{summary.bytes:,} ({_human_bytes(summary.bytes)})")
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


# -- search --------------------------------------------------------------------------------------------
@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    index: Annotated[Path, typer.Option("--index", help="Index directory.")],
    top_k: Annotated[int, typer.Option("--top-k", "--hits", min=1, max=10000, help="Number of results.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Search an index with a text query."""
    with _user_errors():
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


# -- eval ----------------------------------------------------------------------------------------------
@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")],
    model: Annotated[
        str | None, typer.Option("--model", help="Model to build a fresh index with (default bm25).")
    ] = None,
    index: Annotated[
        Path | None, typer.Option("--index", help="Evaluate this existing index instead of building one.")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="Search engine: embedded.")] = "embedded",
    output: Annotated[Path | None, typer.Option("--output", help="Write the report as JSON here.")] = None,
    run_file: Annotated[Path | None, typer.Option("--run", help="Write the TREC run here.")] = None,
    depth: Annotated[int, typer.Option("--depth", min=1, max=10000, help="Results retrieved per query.")] = 1000,
    split: Annotated[str, typer.Option("--split", help="Qrels split to evaluate.")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 256,
) -> None:
    """Evaluate a model and engine on a BEIR collection (nDCG@10, recall@100/1000, MRR@10, MAP, latency)."""
    with _user_errors():
        from sparsearch.eval.beir_data import load_beir_topics
        from sparsearch.eval.runner import evaluate as run_evaluation
        from sparsearch.eval.trec import write_trec_run
        from sparsearch.indexer.embedded import EmbeddedIndex, directory_bytes
        from sparsearch.indexer.pipeline import fit_if_needed
        from sparsearch.retrieval.models import load_encoder

        if backend != "embedded":
            raise UsageError(f"unknown --backend {backend!r}: this build supports 'embedded'")
        topics = load_beir_topics(data, split)
        with contextlib.ExitStack() as stack:
            if index is None:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sparsearch-eval-")))
                opened, _, encoder = _build_index(data, tmp / "index", model, batch_size, overwrite=False)
            else:
                opened = EmbeddedIndex.open(index)
                encoder = load_encoder(opened.encoder_dir)
                if model is not None:  # an explicit model must be the one the index was built with
                    requested = load_encoder(model)
                    fit_if_needed(requested, data)
                    opened.fingerprint.check_compatible(requested.fingerprint, where=f"index {index}")
            stats = opened.stats()
            index_stats = {
                "postings": stats["nnz"],
                "avg_terms_per_doc": stats["avg_terms_per_doc"],
                "bytes": directory_bytes(opened.path),
            }
            with _progress("querying", len(topics.queries)) as progress:
                task = progress.add_task("querying", total=len(topics.queries))
                report, run = run_evaluation(
                    opened,
                    encoder,
                    topics,
                    dataset=data.name,
                    model=opened.fingerprint.name,
                    index_stats=index_stats,
                    depth=depth,
                    on_progress=lambda n: progress.advance(task, n),
                )
        table = Table(
            title=f"{report.dataset} · {report.model} · {report.backend} · "
            f"{report.queries} queries · {report.docs:,} docs"
        )
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in report.metrics.items():
            table.add_row(name, f"{value:.4f}")
        for name, value in report.latency_ms.items():
            table.add_row(f"{name} (ms)", f"{value:.3f}")
        if report.postings_touched_per_query is not None:
            table.add_row("postings touched / query", f"{report.postings_touched_per_query:,.0f}")
        table.add_row("avg terms / document", f"{report.index['avg_terms_per_doc']:.1f}")
        stdout.print(table)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        if run_file is not None:
            run_file.parent.mkdir(parents=True, exist_ok=True)
            write_trec_run(run, run_file, tag=report.model)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
