"""One entry point for every training recipe: the configured student picks its module."""

from __future__ import annotations

from sparsearch.training.config import ProgressCallback, TrainConfig, TrainReport


def run_training(config: TrainConfig, on_progress: ProgressCallback | None = None) -> TrainReport:
    """Train the configured student (``config.student``) and save a two-channel model."""
    if config.student == "semantic-head":
        from sparsearch.training.head_student import train_head

        return train_head(config, on_progress)
    from sparsearch.training.splade_student import train

    return train(config, on_progress)
