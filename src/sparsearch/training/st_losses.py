"""Our training objectives as sentence-transformers losses, for ``SparseEncoderTrainer`` + ``SpladeLoss``.

* :class:`EnsembleDistillKLLoss`: heterogeneous ensemble distillation (Geng et al., 2024): raw scores
  of several teachers per candidate, min-max normalised per query and teacher, mixed and scaled
  (:func:`~sparsearch.training.teachers.ensemble_targets`), then KL to the student's softmax
  (:func:`~sparsearch.training.losses.distillation_kl`). The principal loss inside ``SpladeLoss``.
* :class:`IdfAwareFlopsLoss`: the IDF-aware FLOPS document regulariser, with ``FlopsLoss``'s call
  signature. For an inference-free student it is FLOPS on the raw document weights: the Router's
  query side multiplies each document weight by its token's IDF in the ranking score while the
  penalty does not, which is the IDF-aware form (docs/method.md#idf-aware-flops). It refuses a
  model without that query side, where no IDF enters the score.

Both reuse :mod:`sparsearch.training.losses`, the functions our own training loops call, so the two
training paths compute the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sparsearch.errors import require
from sparsearch.training.losses import distillation_kl, flops_regulariser
from sparsearch.training.teachers import ensemble_targets

torch = require("torch", "train")
nn = torch.nn


def static_query_weights(model: Any) -> Any | None:  # noqa: ANN401 - a SparseEncoder; returns a tensor
    """The (V,) query weights of an inference-free Router (its ``SparseStaticEmbedding``), else ``None``."""
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding

    first = model[0] if len(model) else None
    if not isinstance(first, Router) or "query" not in first.sub_modules:
        return None
    query = first.sub_modules["query"]
    if len(query) != 1 or not isinstance(query[0], SparseStaticEmbedding):
        return None
    return query[0].weight


class IdfAwareFlopsLoss(nn.Module):
    """IDF-aware FLOPS on document vectors, a drop-in ``document_regularizer`` for ``SpladeLoss``.

    With ``w_t(d)`` the document weights the model outputs and ``IDF(t)`` the query side's static
    weights, the ranking score is ``Σ_t IDF(t) · w_t(d)`` and the penalty is

        Σ_t ( mean_b m_b · w_t(d_b) )²  =  Σ_t ( mean_b m_b · u_t(d_b) / IDF(t) )²,   u_t = IDF(t) · w_t

    i.e. over the contributions ``u`` the ranking sees, a FLOPS weighted by 1 / IDF(t)²: keeping a
    common token costs more than keeping a rare one (Geng et al., 2024, arXiv:2411.04403; the
    derivation is in docs/method.md#idf-aware-flops). ``m_b`` is the optional ℓ0 mask: documents
    with at most ``threshold`` non-zero weights are left out (Shen et al., 2025).

    Weighting the raw weights by IDF once more would count IDF twice, so the computation is
    sentence-transformers' ``FlopsLoss`` (via :func:`~sparsearch.training.losses.flops_regulariser`);
    what this class adds is the check that IDF is in the score at all.

    Args:
        model: an inference-free ``SparseEncoder``: a ``Router`` whose ``query`` route is one
            ``SparseStaticEmbedding`` (the IDF table).
        threshold: ℓ0 mask τ (``None``: every document counts).

    Raises:
        ValueError: ``model`` has no static query weights (e.g. a siamese model: use ``FlopsLoss``
            on both sides, as SPLADE does).
    """

    def __init__(self, model: Any, threshold: int | None = None) -> None:  # noqa: ANN401 - a SparseEncoder
        super().__init__()
        if static_query_weights(model) is None:
            raise ValueError(
                "IdfAwareFlopsLoss needs an inference-free model (a Router whose query route is a "
                "SparseStaticEmbedding holding IDF); for a siamese model use FlopsLoss on queries and documents"
            )
        self.model = model
        self.threshold = threshold

    def forward(self, sentence_features: Iterable[dict[str, Any]], labels: Any) -> Any:  # noqa: ANN401
        raise AttributeError("IdfAwareFlopsLoss is a regulariser: pass it to SpladeLoss(document_regularizer=...)")

    def compute_loss_from_embeddings(self, embeddings: Any) -> Any:  # noqa: ANN401 - tensors
        """Args: embeddings: (n_documents, V) document weights. Returns: a scalar tensor."""
        return flops_regulariser(embeddings, self.threshold)

    def get_config_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class EnsembleDistillKLLoss(nn.Module):
    """KL distillation from a teacher ensemble over each query's candidates (a ``SpladeLoss`` principal loss).

    Inputs (one row per query; the column names are free, their order is not):

    +------------------------------------------+----------------------------------------------------+
    | texts                                    | label                                              |
    +==========================================+====================================================+
    | (query, candidate_1, ..., candidate_n),  | raw teacher scores, (n_teachers, n), teachers in   |
    | n ≥ 2                                    | the order of ``teachers``                          |
    +------------------------------------------+----------------------------------------------------+

    The target of a query is ``scale x Σ_k w_k · minmax_k(scores_k)`` over its n candidates
    (:func:`~sparsearch.training.teachers.ensemble_targets`); the loss is the mean over queries of
    ``KL(softmax(target / τ) ‖ softmax(s / τ))`` with ``s_i`` the student's dot product of the query
    and candidate i (:func:`~sparsearch.training.losses.distillation_kl`).

    Args:
        model: the student ``SparseEncoder``.
        teachers: teacher names, in the order of the label's rows (e.g. ``("dense", "bm25")``).
        teacher_weights: teacher name -> w_k (normalised over ``teachers``).
        scale: S, the targets' scale (10-30 is sensible; docs/method.md#heterogeneous-ensemble-distillation).
        temperature: τ.
    """

    def __init__(
        self,
        model: Any,  # noqa: ANN401 - a SparseEncoder
        teachers: Sequence[str],
        teacher_weights: Mapping[str, float],
        scale: float = 20.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        missing = [name for name in teachers if name not in teacher_weights]
        if not teachers or missing:
            raise ValueError(f"teachers {list(teachers)}: no weight for {missing} in {dict(teacher_weights)}")
        self.model = model
        self.teachers = tuple(teachers)
        self.teacher_weights = {name: float(teacher_weights[name]) for name in self.teachers}
        self.scale = scale
        self.temperature = temperature

    def forward(self, sentence_features: Iterable[dict[str, Any]], labels: Any) -> Any:  # noqa: ANN401
        raise AttributeError("EnsembleDistillKLLoss is used inside SpladeLoss(loss=...)")

    def targets(self, labels: Any) -> Any:  # noqa: ANN401 - tensors
        """(batch, n_teachers, n) raw scores -> (batch, n) targets, on the labels' device, float32."""
        if labels.dim() != 3 or labels.shape[1] != len(self.teachers):
            raise ValueError(
                f"labels of shape {tuple(labels.shape)}; expected (batch, {len(self.teachers)} teachers, candidates)"
            )
        raw = labels.detach().float().cpu().numpy()
        by_teacher = {name: raw[:, k] for k, name in enumerate(self.teachers)}
        mixed = ensemble_targets(by_teacher, self.teacher_weights, self.scale)
        return torch.as_tensor(np.asarray(mixed, dtype=np.float32), device=labels.device)

    def compute_loss_from_embeddings(self, embeddings: list[Any], labels: Any) -> Any:  # noqa: ANN401 - tensors
        """Args: embeddings: [queries (B, V), candidate 1 (B, V), ...]; labels: (B, n_teachers, n).

        Returns:
            A scalar tensor.
        """
        if len(embeddings) < 3:
            raise ValueError(f"{len(embeddings) - 1} candidate column(s); a softmax needs at least 2")
        queries = embeddings[0]
        scores = torch.stack([(queries * candidates).sum(-1) for candidates in embeddings[1:]], dim=1)
        targets = self.targets(labels)
        if targets.shape != scores.shape:
            raise ValueError(f"teacher scores for {targets.shape[1]} candidates, {scores.shape[1]} candidate columns")
        return distillation_kl(scores.float(), targets, self.temperature)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "teachers": list(self.teachers),
            "teacher_weights": self.teacher_weights,
            "scale": self.scale,
            "temperature": self.temperature,
        }

    @property
    def citation(self) -> str:
        return (
            "@misc{geng2024competitive, title={Towards Competitive Search Relevance For Inference-Free Learned "
            "Sparse Retrievers}, author={Zhichao Geng and Dongyu Ru and Yang Yang}, year={2024}, "
            "eprint={2411.04403}, archivePrefix={arXiv}}"
        )
