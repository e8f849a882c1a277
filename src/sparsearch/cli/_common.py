"""What every ``sparsearch`` subcommand shares: the Typer app, consoles, error handling, progress."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sparsearch.errors import SparsearchError

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
    if not verbose:  # the engine clients log every failed request with a traceback; sparsearch reports it once
        for name in ("opensearch", "elasticsearch", "elastic_transport"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
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


def progress_bar(description: str, total: int | None) -> Progress:
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


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def build_index_with_progress(data: Path, index: Path, model: str | None, batch_size: int, overwrite: bool):
    """Build an embedded index with a docs/s progress bar; returns ``(index, summary, encoder)``."""
    from sparsearch.indexer.encode_job import resolve_index_input
    from sparsearch.indexer.pipeline import build_embedded_index

    encoder, total = resolve_index_input(data, model)  # --data may be a `sparsearch encode` output
    with progress_bar("indexing", total) as progress:
        task = progress.add_task("indexing", total=total)
        return build_embedded_index(
            data,
            index,
            encoder,
            batch_size=batch_size,
            overwrite=overwrite,
            on_progress=lambda n: progress.advance(task, n),
        ) + (encoder,)


# -- search engines (--backend / --url) ----------------------------------------------------------------
BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Search engine: embedded (a local index directory), opensearch or elasticsearch.",
        envvar="SPARSEARCH_BACKEND",
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="OpenSearch/Elasticsearch URL (default http://localhost:9200; credentials as https://user:pass@host:9200).",
        envvar="SPARSEARCH_ENGINE_URL",
        show_envvar=False,
    ),
]


def check_url_option(backend: str, url: str | None) -> None:
    """``--url`` belongs to the engine backends only."""
    from sparsearch.errors import UsageError
    from sparsearch.indexer.backends import check_backend_kind

    check_backend_kind(backend)
    if backend == "embedded" and url is not None:
        raise UsageError("--url is for --backend opensearch or elasticsearch; the embedded engine reads --index DIR")


def index_engine_with_progress(data: Path, backend, model: str | None, **options):  # noqa: ANN001, ANN201
    """Run :func:`sparsearch.indexer.bulk.index_corpus` with a docs/s progress bar; returns ``(summary, encoder)``."""
    from sparsearch.indexer.bulk import index_corpus
    from sparsearch.indexer.corpus import count_lines
    from sparsearch.retrieval.models import load_encoder

    encoder = load_encoder(model)
    total = count_lines(data)
    with progress_bar("indexing", total) as progress:
        task = progress.add_task("indexing", total=total)
        summary = index_corpus(data, backend, encoder, on_progress=lambda n: progress.advance(task, n), **options)
    return summary, encoder
