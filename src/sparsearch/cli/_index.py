"""``sparsearch index``: encode a corpus into an index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from sparsearch.cli._common import (
    BackendOption,
    Command,
    DenseOption,
    ModelKindOption,
    NumGpusOption,
    RayOption,
    RefitIdfOption,
    UrlOption,
    WorkersOption,
    app,
    build_index_with_progress,
    check_url_option,
    encode_on_ray_with_progress,
    human_bytes,
    index_engine_with_progress,
    model_description,
    ray_cluster,
    stderr,
    stdout,
    user_errors,
    warn_empty_documents,
)
from sparsearch.errors import UsageError

NEVER_MATCH = "have no indexable text and can never match (kept in the index)"

if TYPE_CHECKING:
    from sparsearch.jobs.source import Source


# -- index ---------------------------------------------------------------------------------------------
def builtin_models_panel() -> Panel:
    """The built-in ``--model`` names, one line each, from the registry in :mod:`sparsearch.encoders.registry`."""
    from sparsearch.encoders.registry import BUILTIN_MODELS, DEFAULT_MODEL

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for name, model in BUILTIN_MODELS.items():
        table.add_row(name, model.description + (" (the default)" if name == DEFAULT_MODEL else ""))
    return Panel(table, title="Built-in models (--model NAME)", title_align="left", border_style="dim")


class _IndexCommand(Command):
    """``sparsearch index``, whose help ends with the built-in models.

    The list is read from the registry when the help is printed: importing the registry at startup
    (it pulls in numpy and the encoders) would slow down every command.
    """

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:  # noqa: ANN401 - click's HelpFormatter
        super().format_help(ctx, formatter)
        Console().print(builtin_models_panel())  # after Typer's own panels, on stdout as they are


@app.command(cls=_IndexCommand)
def index(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="BEIR folder (with corpus.jsonl), a corpus .jsonl file, a `sparsearch encode` output, or a "
            "JsonVectorCollection folder (a `sparsearch export`, or integer vectors from pyserini: give --scale).",
        ),
    ],
    index: Annotated[
        str, typer.Option("--index", help="Embedded: directory of the index to create. Engines: the alias name.")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="A built-in model (listed below) or a saved model directory.",
        ),
    ] = None,
    model_kind: ModelKindOption = None,
    refit_idf: RefitIdfOption = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents encoded per batch.")] = 256,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing embedded index.")] = False,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Build an index even when the corpus has no documents (refused otherwise)."),
    ] = False,
    scale: Annotated[
        float | None,
        typer.Option(
            "--scale",
            help="JsonVectorCollection without a sparsearch sidecar: divide its integer weights by this "
            "(e.g. 100 for pyserini's encoded corpora; 1 keeps them). Needs --model for the queries.",
        ),
    ] = None,
    backend: BackendOption = "embedded",
    url: UrlOption = None,
    threads: Annotated[
        int, typer.Option("--threads", min=1, max=64, help="Engines: parallel bulk requests. Lucene: indexing threads.")
    ] = 2,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, max=10000, help="Engines: documents per bulk request.")
    ] = 500,
    shards: Annotated[int, typer.Option("--shards", min=1, help="Engines: primary shards of the new version.")] = 1,
    replicas: Annotated[
        int | None, typer.Option("--replicas", min=0, help="Engines: replicas (default 0 on one node, 1 on a cluster).")
    ] = None,
    keep_old: Annotated[
        int, typer.Option("--keep-old", min=0, help="Engines: old versions kept after the alias swap (0 prunes all).")
    ] = 1,
    failures: Annotated[
        Path | None,
        typer.Option(
            "--failures", help="Engines: JSONL of failed documents, retried by a rerun (default INDEX.failures.jsonl)."
        ),
    ] = None,
    field_type: Annotated[
        str, typer.Option("--field-type", help="Engines: rank_features, or sparse_vector (Elasticsearch 8.15+).")
    ] = "rank_features",
    dense: DenseOption = False,
    ray: RayOption = None,
    workers: WorkersOption = 2,
    num_gpus: NumGpusOption = 0.0,
) -> None:
    """Encode a corpus into an index: an embedded directory, or a new version behind an engine alias.

    On OpenSearch/Elasticsearch the documents go to INDEX-v00000N, and the alias INDEX moves to it
    atomically once every document is in; a rerun after a crash resumes the unfinished version.
    A corpus without documents stops the command before anything is written or replaced, unless
    --allow-empty. With --ray (a learned --model), --workers actors on a Ray cluster encode the corpus
    into INDEX.encoding (embedded; ALIAS.encoding in the working directory for engines, whose actors
    then bulk-load it); a rerun resumes it, and it is deleted once the index is built.
    """
    from sparsearch.jobs.source import check_not_empty, open_source

    with user_errors():
        check_url_option(backend, url)
        # an empty corpus is nearly always a wrong path: refuse it before a model is loaded, an engine
        # contacted or an index replaced (--overwrite, an alias swap)
        source = open_source(data, scale=scale)
        check_not_empty(source, allow_empty=allow_empty)
        if ray is None and (workers != 2 or num_gpus):
            raise UsageError("--workers and --num-gpus are for --ray")
        if ray is not None:
            if source.corpus_file is None or backend == "lucene" or dense:
                raise UsageError(
                    "--ray encodes a corpus (BEIR folder or .jsonl) into an embedded, opensearch or elasticsearch "
                    "index, without --dense; drop --ray for encoded vectors, lucene or --dense"
                )
            with ray_cluster(ray):  # a bad address fails before the model loads
                ray_options = {"workers": workers, "num_gpus": num_gpus, "batch_size": batch_size}
                if backend == "embedded":
                    _index_embedded_on_ray(data, Path(index), model, model_kind, refit_idf, overwrite, ray_options)
                else:
                    engine_options = {"threads": threads, "chunk_size": chunk_size, "shards": shards}
                    engine_options |= {"replicas": replicas, "field_type": field_type, "keep_old": keep_old}
                    _index_engine_on_ray(data, index, model, model_kind, refit_idf, backend, url,
                                         ray_options | engine_options)  # fmt: skip
            return
        if backend == "lucene":
            _index_lucene(source, Path(index), model, batch_size, overwrite, threads, model_kind, refit_idf)
            return
        if backend != "embedded" and source.jsonvector is not None:
            raise UsageError(
                f"--backend {backend} reads a corpus; import the JsonVectorCollection into an embedded index first "
                "(sparsearch index --data FOLDER --index DIR)"
            )
        if backend != "embedded":
            options = {
                "batch_size": batch_size,
                "threads": threads,
                "chunk_size": chunk_size,
                "shards": shards,
                "replicas": replicas,
                "field_type": field_type,
                "keep_old": keep_old,
                "failures_path": failures,
                "allow_empty": allow_empty,
                "dense": dense,
            }
            options.update(model_kind=model_kind, refit_idf=refit_idf)
            _index_engine(data, index, model, backend, url, options)
            return
        built, summary, encoder = build_index_with_progress(
            source,
            Path(index),
            model,
            batch_size,
            overwrite,
            allow_empty,
            model_kind=model_kind,
            refit_idf=refit_idf,
            dense=dense,
        )
        table = Table(title=f"index {summary.path}", show_header=False)
        table.add_row("model", built.fingerprint.name)
        if description := model_description(encoder):
            table.add_row("model kind", description)
        table.add_row("documents", f"{summary.documents:,}")
        table.add_row("postings", f"{summary.postings:,}")
        if dense:
            table.add_row("dense vectors", str(built.dense_identity["model"]))
        table.add_row("avg terms / document", f"{summary.avg_terms_per_doc:.1f}")
        table.add_row("bytes on disk", f"{summary.bytes:,} ({human_bytes(summary.bytes)})")
        table.add_row(
            "seconds", f"{summary.seconds:.2f} ({summary.documents / max(summary.seconds, 1e-9):,.1f} docs/s)"
        )
        stdout.print(table)
        warn_empty_documents(summary.empty_documents, NEVER_MATCH)


def _index_lucene(  # noqa: PLR0913 - the index command's options
    source: Source,
    index: Path,
    model: str | None,
    batch_size: int,
    overwrite: bool,
    threads: int,
    model_kind: str | None,
    refit_idf: bool,
) -> None:
    """``index --backend lucene``: an embedded index in a temporary folder (the encoding), then its vectors
    through pyserini's Lucene indexer (:func:`~sparsearch.jobs.build_lucene.build_lucene_index`)."""
    import tempfile

    from sparsearch.backends.embedded.index import check_index_target
    from sparsearch.backends.lucene.java import java_environment
    from sparsearch.jobs.build_lucene import build_lucene_index

    check_index_target(index, overwrite=overwrite)  # before the encoding
    java_environment()  # no Java 21+: say so before the encoding
    index.resolve().parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sparsearch-lucene-", dir=index.resolve().parent) as tmp:
        _, encoded, encoder = build_index_with_progress(
            source, Path(tmp) / "embedded", model, batch_size, False, model_kind=model_kind, refit_idf=refit_idf
        )
        with stderr.status("indexing with pyserini (Lucene)"):
            built, summary = build_lucene_index(Path(tmp) / "embedded", index, threads=threads, overwrite=overwrite)
    built.close()
    table = Table(title=f"lucene index {summary.path}", show_header=False)
    table.add_row("model", built.fingerprint.name)
    if description := model_description(encoder):
        table.add_row("model kind", description)
    table.add_row("documents", f"{summary.documents:,}")
    table.add_row("postings", f"{summary.postings:,} ({summary.dropped:,} weights rounded to 0, left out)")
    table.add_row("document scale", f"{summary.doc_scale:.6g} (impact = round(weight x scale))")
    table.add_row("bytes on disk", f"{summary.bytes:,} ({human_bytes(summary.bytes)})")
    table.add_row(
        "seconds",
        f"encode {encoded.seconds:.2f}, export {summary.export_seconds:.2f}, pyserini {summary.lucene_seconds:.2f}",
    )
    stdout.print(table)
    warn_empty_documents(encoded.empty_documents, NEVER_MATCH)


def _index_engine(
    data: Path, alias: str, model: str | None, backend_kind: str, url: str | None, options: dict[str, Any]
) -> None:
    from sparsearch.backends.factory import open_engine
    from sparsearch.errors import SparsearchError

    backend = open_engine(backend_kind, alias=alias, url=url)
    try:
        # options: index_corpus's keyword arguments (batch size, bulk threads and chunks, shards, ...)
        summary, encoder = index_engine_with_progress(data, backend, model, **options)
    finally:
        backend.close()
    table = Table(title=f"{backend_kind} index {summary.alias} -> {summary.index}", show_header=False)
    table.add_row("engine", f"{backend.product} {summary.engine_version} at {backend.url}")
    table.add_row("model", encoder.fingerprint.name)
    if description := model_description(encoder):
        table.add_row("model kind", description)
    table.add_row("documents", f"{summary.documents:,}")
    table.add_row("sent", f"{summary.sent:,}")
    if summary.resumed:
        table.add_row("resumed", f"yes ({summary.skipped:,} already written, {summary.removed:,} removed)")
    table.add_row("failed", f"{len(summary.failures):,}")
    table.add_row("alias", f"{summary.alias} -> {summary.index}" if summary.swapped else "not moved")
    if summary.previous:
        table.add_row("previous", ", ".join(summary.previous))
    if summary.pruned:
        table.add_row("pruned", ", ".join(summary.pruned))
    table.add_row("seconds", f"{summary.seconds:.2f} ({summary.sent / max(summary.seconds, 1e-9):,.1f} docs/s)")
    stdout.print(table)
    warn_empty_documents(summary.empty_documents, NEVER_MATCH)
    if summary.failures:
        shown = "; ".join(f"{f.doc_id}: {f.error}" for f in summary.failures[:3])
        raise SparsearchError(
            f"{len(summary.failures)} documents failed ({shown}); they are listed in {summary.failures_file}. The "
            f"alias still points at the previous version: fix them and rerun the same command (it resumes "
            f"{summary.index} and retries only what is missing)"
        )


# -- --ray ---------------------------------------------------------------------------------------------
def _neural_encoder(model: str | None, model_kind: str | None, refit_idf: bool):  # noqa: ANN202
    """``(encoder, model spec)`` for ``--model`` (the default model when ``None``); refuses BM25."""
    from sparsearch.encoders.registry import DEFAULT_MODEL, load_encoder
    from sparsearch.jobs.encode import check_neural

    encoder = load_encoder(model, kind=model_kind, refit_idf=refit_idf)
    try:
        return check_neural(encoder), model or DEFAULT_MODEL
    except UsageError:
        raise UsageError(
            f"--ray encodes with a learned --model (SPLADE or the two-channel default); {encoder.name!r} is indexed "
            "without --ray"
        ) from None


def _index_embedded_on_ray(
    data: Path,
    index: Path,
    model: str | None,
    model_kind: str | None,
    refit_idf: bool,
    overwrite: bool,
    ray_options: dict[str, Any],
) -> None:
    """Encode on Ray into ``INDEX.encoding`` (kept until the index is built: a rerun resumes it), then
    build the embedded index from it as ``sparsearch index --data INDEX.encoding`` does."""
    import shutil

    from sparsearch.backends.embedded.index import check_index_target

    check_index_target(index, overwrite=overwrite)  # before the encoding
    encoder, model_spec = _neural_encoder(model, model_kind, refit_idf)
    work_dir = index.with_name(index.name + ".encoding")
    encoded = encode_on_ray_with_progress(data, work_dir, encoder, model_spec=model_spec, **ray_options)
    built, summary, encoder = build_index_with_progress(work_dir, index, None, ray_options["batch_size"], overwrite)
    shutil.rmtree(work_dir)
    table = Table(title=f"index {summary.path} (encoded on ray)", show_header=False)
    table.add_row("model", built.fingerprint.name)
    table.add_row("ray", f"{encoded.workers} workers, {encoded.num_shards} shards, {encoded.seconds:.2f} s encoding")
    table.add_row("documents", f"{summary.documents:,}")
    table.add_row("postings", f"{summary.postings:,}")
    table.add_row("avg terms / document", f"{summary.avg_terms_per_doc:.1f}")
    table.add_row("bytes on disk", f"{summary.bytes:,} ({human_bytes(summary.bytes)})")
    seconds = encoded.seconds + summary.seconds
    table.add_row("seconds", f"{seconds:.2f} ({summary.documents / max(seconds, 1e-9):,.1f} docs/s)")
    stdout.print(table)
    warn_empty_documents(summary.empty_documents, NEVER_MATCH)


def _index_engine_on_ray(
    data: Path,
    alias: str,
    model: str | None,
    model_kind: str | None,
    refit_idf: bool,
    backend_kind: str,
    url: str | None,
    options: dict[str, Any],
) -> None:
    """Encode on Ray into ``ALIAS.encoding`` (working directory), the actors bulk-load their shards into a
    new version, the driver checks the count and swaps the alias."""
    import shutil

    from sparsearch.backends.factory import open_engine
    from sparsearch.cli._common import progress_bar
    from sparsearch.corpus import count_lines
    from sparsearch.jobs.ray_encode import run_ray_engine_index

    encoder, model_spec = _neural_encoder(model, model_kind, refit_idf)
    work_dir = Path(f"{alias}.encoding")
    backend = open_engine(backend_kind, alias=alias, url=url)
    try:
        with progress_bar("docs") as progress:
            task = progress.add_task("encoding on ray", total=count_lines(data))
            summary = run_ray_engine_index(
                data, backend, backend_kind, url, encoder, work_dir, model_spec=model_spec,
                on_progress=lambda n: progress.advance(task, n), **options,
            )  # fmt: skip
    finally:
        backend.close()
    shutil.rmtree(work_dir)
    table = Table(title=f"{backend_kind} index {summary.alias} -> {summary.index} (on ray)", show_header=False)
    table.add_row("engine", f"{backend.product} at {backend.url}")
    table.add_row("model", encoder.fingerprint.name)
    table.add_row("ray", f"{summary.encoding.workers} workers, {summary.encoding.num_shards} shards")
    table.add_row("documents", f"{summary.documents:,}")
    table.add_row("sent", f"{summary.sent:,}")
    if summary.resumed:
        table.add_row("resumed", "yes")
    table.add_row("alias", f"{summary.alias} -> {summary.index}")
    if summary.previous:
        table.add_row("previous", ", ".join(summary.previous))
    if summary.pruned:
        table.add_row("pruned", ", ".join(summary.pruned))
    table.add_row("seconds", f"{summary.seconds:.2f} ({summary.documents / max(summary.seconds, 1e-9):,.1f} docs/s)")
    stdout.print(table)
    warn_empty_documents(summary.encoding.empty_documents, NEVER_MATCH)
