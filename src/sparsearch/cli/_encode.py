"""``sparsearch encode``: encode a corpus into sparse vectors on disk (resumable, shardable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import (
    ModelKindOption,
    NumGpusOption,
    RayOption,
    RefitIdfOption,
    WorkersOption,
    app,
    encode_on_ray_with_progress,
    model_description,
    progress_bar,
    ray_cluster,
    stdout,
    user_errors,
    warn_empty_documents,
)

NO_TERMS = "have no text and get no terms"


# -- encode --------------------------------------------------------------------------------------------
@app.command()
def encode(
    data: Annotated[Path, typer.Option("--data", help="BEIR folder (with corpus.jsonl) or a corpus .jsonl file.")],
    output: Annotated[Path, typer.Option("--output", help="Output directory (created; a rerun resumes it).")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="A learned model: default (the two-channel default), minilm-splade-untrained, a saved model "
            "directory, or a Hugging Face masked-LM / causal-LM directory.",
        ),
    ] = "default",
    model_kind: ModelKindOption = None,
    refit_idf: RefitIdfOption = False,
    shard: Annotated[
        str | None, typer.Option("--shard", help="I/N: encode the documents at positions I, I+N, I+2N, ...")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per encoder call.")] = 64,
    max_length: Annotated[
        int | None, typer.Option("--max-length", min=8, help="Tokens per passage (default: the model's setting).")
    ] = None,
    passage_overlap: Annotated[
        int | None, typer.Option("--passage-overlap", min=0, help="Tokens shared by consecutive passages.")
    ] = None,
    max_active_dims: Annotated[
        int | None,
        typer.Option("--max-active-dims", min=1, help="Keep the top-k weighted terms per document (top-k pruning)."),
    ] = None,
    min_weight: Annotated[
        float | None, typer.Option("--min-weight", min=0.0, help="Drop term weights below this value.")
    ] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="float32 or bfloat16 (model weights and logits).")
    ] = None,
    max_passages: Annotated[
        int | None,
        typer.Option("--max-passages", min=1, help="Encode at most this many passages per document (1 truncates)."),
    ] = None,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Documents per committed chunk (the most a crash loses).")
    ] = 1024,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="torch CPU threads (--ray: CPUs per actor, default 1).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete the output directory first.")] = False,
    ray: RayOption = None,
    workers: WorkersOption = 2,
    num_gpus: NumGpusOption = 0.0,
) -> None:
    """Encode a corpus into sparse vectors (per-shard .npy chunks) that sparsearch index --data reads.

    Re-running the same command after a crash or Ctrl-C continues where it stopped; --shard I/N lets
    N processes or machines split the corpus. Long documents are split into passages of --max-length
    tokens and max-pooled. With --ray, --workers actors on a Ray cluster encode the shards of one
    output (shared filesystem); rerunning the same command resumes it as well.
    """
    with user_errors():
        from sparsearch.corpus import count_lines
        from sparsearch.encoders.registry import load_encoder
        from sparsearch.errors import UsageError
        from sparsearch.jobs.encode import check_neural, parse_shard, run_encode_job

        shard_spec = parse_shard(shard)
        if ray is not None and shard is not None:
            raise UsageError("--shard and --ray: the Ray job splits the corpus into shards itself; drop --shard")
        if ray is None and (workers != 2 or num_gpus):
            raise UsageError("--workers and --num-gpus are for --ray")
        if ray is not None:
            with ray_cluster(ray):  # a bad address fails before the model loads
                _encode_on_ray(data, model, output, model_kind, refit_idf, threads, overwrite, workers, num_gpus,
                               batch_size, chunk_size, max_length=max_length, passage_overlap=passage_overlap,
                               max_active_dims=max_active_dims, min_weight=min_weight, precision=precision,
                               max_passages=max_passages)  # fmt: skip
            return
        if threads is not None:
            from sparsearch.errors import require

            require("torch", "neural").set_num_threads(threads)
        encoder = check_neural(load_encoder(model, kind=model_kind, refit_idf=refit_idf))
        encoder.options = encoder.options.replace(
            max_length=max_length,
            passage_overlap=passage_overlap,
            max_active_dims=max_active_dims,
            min_weight=min_weight,
            precision=precision,
            max_passages=max_passages,
        )
        index, count = shard_spec
        total = len(range(index, count_lines(data), count))
        with progress_bar("docs") as progress:
            task = progress.add_task("encoding", total=total)
            summary = run_encode_job(
                data,
                output,
                encoder,
                model_spec=model,
                shard=shard_spec,
                batch_size=batch_size,
                chunk_size=chunk_size,
                overwrite=overwrite,
                on_progress=lambda n: progress.advance(task, n),
            )
        table = Table(title=f"encode {summary.output} (shard {summary.shard})", show_header=False)
        table.add_row("model", encoder.fingerprint.name)
        if description := model_description(encoder):
            table.add_row("model kind", description)
        table.add_row("documents", f"{summary.documents:,}")
        if summary.resumed_from:
            table.add_row("resumed after", f"{summary.resumed_from:,} documents already encoded")
        table.add_row("postings", f"{summary.postings:,}")
        table.add_row("avg terms / document", f"{summary.avg_terms_per_doc:.1f}")
        table.add_row(
            "seconds", f"{summary.seconds:.2f} ({summary.encoded_now / max(summary.seconds, 1e-9):,.1f} docs/s)"
        )
        stdout.print(table)
        warn_empty_documents(summary.empty_documents, NO_TERMS)


def _encode_on_ray(  # noqa: PLR0913 - the encode command's options
    data: Path,
    model: str,
    output: Path,
    model_kind: str | None,
    refit_idf: bool,
    threads: int | None,
    overwrite: bool,
    workers: int,
    num_gpus: float,
    batch_size: int,
    chunk_size: int,
    **encoding: object,
) -> None:
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.encode import check_neural

    encoder = check_neural(load_encoder(model, kind=model_kind, refit_idf=refit_idf))
    encoder.options = encoder.options.replace(**encoding)
    summary = encode_on_ray_with_progress(
        data,
        output,
        encoder,
        model_spec=model,
        workers=workers,
        num_gpus=num_gpus,
        num_cpus=threads or 1,
        batch_size=batch_size,
        chunk_size=chunk_size,
        overwrite=overwrite,
    )
    table = Table(title=f"encode {summary.output} (on ray)", show_header=False)
    table.add_row("model", encoder.fingerprint.name)
    table.add_row("ray", f"{summary.workers} workers, {summary.num_shards} shards")
    table.add_row("documents", f"{summary.documents:,}")
    if summary.resumed_from:
        table.add_row("resumed after", f"{summary.resumed_from:,} documents already encoded")
    table.add_row("postings", f"{summary.postings:,}")
    table.add_row("avg terms / document", f"{summary.avg_terms_per_doc:.1f}")
    table.add_row("seconds", f"{summary.seconds:.2f} ({summary.encoded_now / max(summary.seconds, 1e-9):,.1f} docs/s)")
    stdout.print(table)
    warn_empty_documents(summary.empty_documents, NO_TERMS)
