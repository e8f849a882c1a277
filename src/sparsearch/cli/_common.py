"""What every ``sparsearch`` subcommand shares: the Typer app, consoles, error handling, progress."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from typer.core import TyperCommand, TyperGroup, TyperOption

from sparsearch.errors import SparsearchError

if TYPE_CHECKING:
    from sparsearch.jobs.source import Source


# -- help: flags shown as flags -------------------------------------------------------------------------
def _flags_as_flags(params: list[Any]) -> list[Any]:
    """Blank the type column of flags: Typer's rich help prints ``--overwrite <bool>`` (as if the flag
    took a value) where its plain help prints ``--overwrite``; it shows an empty metavar instead."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A subcommand whose ``--help`` lists flags (``--overwrite``, ``--help``) without a ``<bool>`` type."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


class Group(TyperGroup):
    """The ``sparsearch`` group, with the same flag display as :class:`Command`."""

    def get_params(self, ctx: typer.Context) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


class _Typer(typer.Typer):
    """A Typer app whose subcommands are :class:`Command` unless a command asks for another class."""

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any):  # noqa: ANN201
        return super().command(name, cls=cls or Command, **kwargs)


app = _Typer(
    name="sparsearch",
    cls=Group,
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
    if not stderr.is_terminal:
        quiet_library_progress_bars()


# Environment switches of the progress bars other libraries draw on stderr with tqdm, whatever the
# stream: Hugging Face Hub and transformers ("Loading weights", "Writing model shards"), datasets
# (map/filter), and tqdm's default for every bar whose caller leaves `disable` unset (beir's loader).
# Each library reads its variable when it is imported.
_PROGRESS_BAR_SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE")


def quiet_library_progress_bars() -> None:
    """Switch off the tqdm progress bars of Hugging Face libraries and tqdm itself (logs stay readable).

    Called when stderr is not a terminal, before any command imports those libraries (they are imported
    lazily), so the environment variables take effect; a user's own setting of a variable is kept.
    Libraries that are already imported (the app run in-process, as tests do) are switched off through
    their own API as well.
    """
    for variable in _PROGRESS_BAR_SWITCHES:
        os.environ.setdefault(variable, "1")
    switches: list[tuple[str, str]] = [
        ("huggingface_hub.utils", "disable_progress_bars"),
        ("transformers.utils.logging", "disable_progress_bar"),
        ("datasets.utils.tqdm", "disable_progress_bars"),
    ]
    for module_name, function in switches:
        module = sys.modules.get(module_name)
        if module is not None and callable(getattr(module, function, None)):
            getattr(module, function)()


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


class RateColumn(ProgressColumn):
    """Items per second, e.g. ``1,234 docs/s``; ``- docs/s`` before the first item is done.

    Rich's stock speed columns count bytes (``TransferSpeedColumn``) or show a rate only for tasks
    without a total (``TaskProgressColumn(show_speed=True)``). ``task.speed`` (rich's estimate over
    recent updates) is ``None`` until the second update, so a plain ``{task.speed:.0f}`` format crashes
    on the first refresh; until then, and for a task done in one update, the average since the start
    stands in.
    """

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.completed and task.elapsed:
            speed = task.completed / task.elapsed
        if speed is None:
            return Text(f"- {self.unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.{0 if speed >= 10 else 2}f} {self.unit}/s", style="progress.data.speed")


def progress_bar(unit: str = "docs", *extra: ProgressColumn) -> Progress:
    """A progress bar on stderr: task, bar, done/total, rate in ``unit``/s, ``extra`` columns, elapsed, ETA.

    Silent when stderr is not a terminal (a log file, CI, a pipe). Tasks may start without a total
    (``total=None``): the bar pulses and the count shows ``done/?`` until a total is set.

    Args:
        unit: what a step of the task counts (``docs``, ``queries``, ``steps``).
        extra: columns shown after the rate (e.g. ``TextColumn("loss {task.fields[loss]:.3f}")``).
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        *extra,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
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


ModelKindOption = Annotated[
    str | None,
    typer.Option(
        "--model-kind",
        help="For a plain Hugging Face *ForMaskedLM directory: inference-free (default; queries are IDF-weighted "
        "tokens) or siamese (queries run the model). Other layouts say their kind in their files.",
    ),
]
RefitIdfOption = Annotated[
    bool,
    typer.Option(
        "--refit-idf",
        help="Ignore the query weights a model ships with (Router SparseStaticEmbedding, OpenSearch idf.json) "
        "and fit IDF on the corpus.",
    ),
]


def warn_empty_documents(empty_documents: list[str], consequence: str) -> None:
    """The warning for documents without text: how many, what follows for them, the first ten ids."""
    if empty_documents:
        shown = ", ".join(empty_documents[:10]) + (" ..." if len(empty_documents) > 10 else "")
        stderr.print(
            f"[yellow]warning:[/] {len(empty_documents)} documents {consequence}: {shown}",
            highlight=False,  # rich's highlighter is quadratic in a word's length (a long id took seconds)
        )


def model_description(encoder: object) -> str | None:
    """How ``--model`` was read and served, for the CLI's summary (``None``: nothing to add)."""
    layout = getattr(encoder, "source_layout", None)
    kind = getattr(encoder, "kind", None)
    return layout or (f"{kind} SPLADE" if kind else None)


def build_index_with_progress(
    data: Path | Source,
    index: Path,
    model: str | None,
    batch_size: int,
    overwrite: bool,
    allow_empty: bool = False,
    model_kind: str | None = None,
    refit_idf: bool = False,
    dense: bool = False,
):
    """Build an embedded index with a docs/s progress bar; returns ``(index, summary, encoder)``.
    ``dense``: store dense window embeddings too (hybrid search)."""
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_embedded import build_embedded_index
    from sparsearch.jobs.source import open_source

    source = open_source(data)  # resolved once: a corpus, a `sparsearch encode` output, a JsonVectorCollection
    # an encode output or an export is indexed with the encoder it was made with unless --model says otherwise
    spec = model if model is not None else source.saved_encoder_dir
    if spec is None and source.jsonvector is not None:
        from sparsearch.errors import UsageError

        raise UsageError(
            f"{source.jsonvector.folder} holds vectors made by another tool (no sparsearch export sidecar): pass "
            "--model, the encoder that encodes the queries (it must use the same tokens as the vectors)"
        )
    encoder = load_encoder(spec, kind=model_kind, refit_idf=refit_idf)
    total = source.count()
    with progress_bar("docs") as progress:
        task = progress.add_task("indexing", total=total)
        return build_embedded_index(
            source,
            index,
            encoder,
            batch_size=batch_size,
            overwrite=overwrite,
            allow_empty=allow_empty,
            on_progress=lambda n: progress.advance(task, n),
            dense=dense,
        ) + (encoder,)


DenseOption = Annotated[
    bool,
    typer.Option(
        "--dense",
        help="Also store each document's all-MiniLM-L6-v2 window embeddings (768 bytes per 160 words) so the "
        "index can answer --mode hybrid (needs the neural extra).",
    ),
]
ModeOption = Annotated[
    str,
    typer.Option(
        "--mode",
        help="sparse (inference-free, the default) or hybrid (sparse candidates fused with the dense model's "
        "cosine; needs an index built with --dense and the neural extra).",
    ),
]


def check_mode(mode: str, backend: str = "embedded", candidates: str | None = None) -> str:
    """Raise :class:`UsageError` for a ``--mode`` other than ``sparse`` or ``hybrid``, or for a hybrid
    search the ``--backend`` cannot run (checked before any encoding; :class:`~sparsearch.hybrid.HybridBackend`
    refuses the same for Python callers): the Lucene backend has no hybrid mode, and only the embedded
    engine searches dense vectors, which ``--candidates union`` needs."""
    from sparsearch.errors import UsageError

    if mode not in ("sparse", "hybrid"):
        raise UsageError(f"--mode {mode!r}: use sparse or hybrid")
    if mode == "hybrid" and backend == "lucene":
        raise UsageError("the lucene backend has no hybrid mode; use --mode sparse, or --backend embedded")
    if mode == "hybrid" and candidates == "union" and backend != "embedded":
        raise UsageError(
            f"the {backend} backend cannot search dense vectors, so its hybrid candidates are the sparse ones "
            "only: drop --candidates union, or use --backend embedded"
        )
    return mode


# -- search engines (--backend / --url) ----------------------------------------------------------------
BackendOption = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Search engine: embedded (a local index directory), lucene (a local read-only Lucene impact index, "
        "through pyserini: needs sparsearch[lucene] and Java 21+), opensearch or elasticsearch.",
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
    from sparsearch.backends.factory import LOCAL_KINDS, check_backend_kind
    from sparsearch.errors import UsageError

    check_backend_kind(backend)
    if backend in LOCAL_KINDS and url is not None:
        raise UsageError(f"--url is for --backend opensearch or elasticsearch; the {backend} backend reads --index DIR")


def index_engine_with_progress(  # noqa: ANN201
    data: Path,
    backend,  # noqa: ANN001
    model: str | None,
    model_kind: str | None = None,
    refit_idf: bool = False,
    **options,
):
    """Run :func:`sparsearch.jobs.build_engine.index_corpus` with a docs/s progress bar.

    Returns:
        ``(summary, encoder)``.
    """
    from sparsearch.corpus import count_lines
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_engine import index_corpus

    encoder = load_encoder(model, kind=model_kind, refit_idf=refit_idf)
    total = count_lines(data)
    with progress_bar("docs") as progress:
        task = progress.add_task("indexing", total=total)
        summary = index_corpus(data, backend, encoder, on_progress=lambda n: progress.advance(task, n), **options)
    return summary, encoder


# -- Ray (--ray / --workers / --num-gpus) --------------------------------------------------------------
RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        help="Encode as a Ray job: auto (the cluster `ray start --head` started), local (an in-process cluster) "
        "or HOST:PORT. Paths must be on a filesystem every node shares. Needs sparsearch[distributed].",
    ),
]
WorkersOption = Annotated[int, typer.Option("--workers", min=1, help="--ray: actors, each with one model.")]
NumGpusOption = Annotated[
    float, typer.Option("--num-gpus", min=0.0, help="--ray: GPUs per actor (0: CPU actors; 1: one GPU each).")
]


@contextlib.contextmanager
def ray_cluster(address: str) -> Iterator[None]:
    """Connected to the Ray cluster at ``address`` for the duration (disconnected after, if we connected)."""
    from sparsearch.jobs.ray_encode import connect, disconnect

    connected = connect(address)
    try:
        yield
    finally:
        if connected:
            disconnect()


def encode_on_ray_with_progress(data: Path, output: Path, encoder: Any, **options: Any):  # noqa: ANN201, ANN401
    """Run :func:`sparsearch.jobs.ray_encode.run_ray_encode_job` with a docs/s bar over the whole cluster."""
    from sparsearch.corpus import count_lines
    from sparsearch.jobs.ray_encode import run_ray_encode_job

    with progress_bar("docs") as progress:
        task = progress.add_task("encoding on ray", total=count_lines(data))
        return run_ray_encode_job(data, output, encoder, on_progress=lambda n: progress.advance(task, n), **options)
