"""``sparsearch train`` and ``sparsearch adapt``: label-free adaptation of the learned channel."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import app, progress_bar, stderr, stdout, user_errors
from sparsearch.errors import UsageError


def _run(config) -> None:  # noqa: ANN001 - a TrainConfig
    from rich.progress import TextColumn

    from sparsearch.retrieval.training import run_training

    # The fields exist from the start (nan until the first step reports), so the format never sees None.
    metrics_column = TextColumn("loss {task.fields[loss]:.3f} · {task.fields[terms]:.0f} terms")
    stderr.print("preparing pseudo-queries and teacher scores (cached in the run directory) ...")
    with progress_bar("steps", metrics_column) as progress:
        task = progress.add_task("preparing", total=None, loss=float("nan"), terms=float("nan"))
        training = False

        def on_progress(step: int, total: int, metrics: dict[str, float]) -> None:
            nonlocal training
            if not training:  # the first step: restart the clock, so rate and ETA count training steps only
                progress.reset(task, total=total, description="training")
                training = True
            progress.update(task, completed=step, total=total, loss=metrics["loss"], terms=metrics["active_terms"])

        report = run_training(config, on_progress=on_progress)
    table = Table(title=f"model {report.output}", show_header=False)
    table.add_row("steps", f"{report.steps} in {report.seconds / 60:.1f} min")
    if report.checkpoint_step is not None:
        table.add_row("kept checkpoint", f"step {report.checkpoint_step} (lowest held-out KL)")
    table.add_row("pseudo-queries", f"{report.train_queries} train, {report.heldout_queries} held out")
    table.add_row("learned terms / document", f"{report.avg_learned_terms:.1f}")
    kl = report.heldout_kl_by_weight or {}
    for weight, ndcg in report.heldout_ndcg_by_weight.items():
        extra = f", KL {kl[weight]:.4f}" if weight in kl else ""
        table.add_row(f"held-out, learned weight {weight}", f"nDCG@10 {ndcg:.4f}{extra}")
    table.add_row("chosen learned weight", f"{report.chosen_weight}")
    stdout.print(table)


@app.command()
def train(
    config: Annotated[Path, typer.Option("--config", help="TOML file with every hyperparameter (see TrainConfig).")],
) -> None:
    """Train a two-channel model as configured (seeds fixed; logs and metrics in the run directory)."""
    with user_errors():
        from pydantic import ValidationError

        from sparsearch.retrieval.training import TrainConfig

        if not config.is_file():
            raise UsageError(f"{config}: no such config file")
        try:
            values = tomllib.loads(config.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"{config}: not valid TOML ({error})") from None
        base = config.parent
        for key in ("data", "output", "run_dir", "base_model", "init_model"):  # paths are relative to the config file
            if isinstance(values.get(key), str):
                values[key] = str(base / Path(values[key]).expanduser())
        if isinstance(values.get("extra_data"), list):
            values["extra_data"] = [
                str(base / Path(p).expanduser()) if isinstance(p, str) else p for p in values["extra_data"]
            ]
        try:
            parsed = TrainConfig(**values)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise UsageError(f"{config}: {problems}") from None
        _run(parsed)


@app.command()
def adapt(
    data: Annotated[Path, typer.Option("--data", help="BEIR folder or corpus .jsonl (only documents are read).")],
    output: Annotated[Path, typer.Option("--output", help="Directory of the adapted model.")],
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimisation steps (fixed, so runs reproduce).")] = 600,
    minutes: Annotated[
        float, typer.Option("--minutes", min=1, help="Safety cap on the whole run; stops early (with a warning).")
    ] = 30,
    seed: Annotated[int, typer.Option("--seed")] = 13,
) -> None:
    """Adapt the default model to a corpus using only its documents (no labels).

    Pseudo-queries are drawn from the documents, scored by the BM25 and dense teachers, and the
    default model's learned channel is trained further on them (a few minutes on 2 CPU cores).
    """
    with user_errors():
        from sparsearch.retrieval.models import default_model_dir
        from sparsearch.retrieval.training import TrainConfig

        config = TrainConfig(
            data=data, output=output, minutes=minutes, max_steps=steps, seed=seed, init_model=default_model_dir()
        )
        _run(config)
