"""``sparsearch train`` and ``sparsearch adapt``: label-free adaptation of the learned channel."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import app, progress_bar, stderr, stdout, user_errors


def _run(config) -> None:  # noqa: ANN001 - a TrainConfig
    from rich.progress import TextColumn

    from sparsearch.training.run import run_training

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
        from sparsearch.training.config import TrainConfig

        _run(TrainConfig.from_toml(config))


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
        from sparsearch.encoders.registry import default_model_dir
        from sparsearch.training.config import TrainConfig

        config = TrainConfig(
            data=data, output=output, minutes=minutes, max_steps=steps, seed=seed, init_model=default_model_dir()
        )
        _run(config)
