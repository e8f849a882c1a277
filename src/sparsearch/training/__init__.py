"""Label-free training: configs, pseudo-queries, teachers, losses and the two students (never imported
by encoders, backends or the API)."""

from __future__ import annotations

from sparsearch._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "sparsearch.training.config",
    "TrainReport": "sparsearch.training.config",
    "run_training": "sparsearch.training.run",
    "RecipeConfig": "sparsearch.training.st_recipe",
    "EnsembleDistillKLLoss": "sparsearch.training.st_losses",
    "IdfAwareFlopsLoss": "sparsearch.training.st_losses",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
