"""Training objectives for inference-free sparse students (docs/method.md#label-free-training).

* :func:`distillation_kl`: KL(teacher ‖ student) between softmaxes over each query's candidates.
* :func:`margin_mse`: MarginMSE, matching ``s(q, d+) - s(q, d-)`` to the teacher's margins.
* :func:`flops_regulariser`: FLOPS on document vectors, with the optional ℓ0 mask, computed by
  sentence-transformers' ``FlopsLoss``.
* :func:`regulariser_weight`: the quadratic warm-up ``λ(step) = λ · min(1, step / T)²``.

The IDF-aware effect (docs/method.md#idf-aware-flops) needs no extra term: the student's score
multiplies each document weight by the query token's IDF, the regulariser does not (see :func:`inference_free_scores`).

All scores are tensors of shape (n_queries, n_candidates), the positive (if any) in column 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparsearch.errors import require

if TYPE_CHECKING:
    from sparsearch.training.config import TrainConfig


def _torch():  # noqa: ANN202
    return require("torch", "train")


def distillation_kl(student_scores, teacher_scores, temperature: float = 1.0):  # noqa: ANN001, ANN201
    """``mean over queries of Σ_i p_i (log p_i − log p̂_i)`` with ``p = softmax(t/τ)``, ``p̂ = softmax(s/τ)``.

    Args:
        student_scores: (n_queries, n_candidates) student scores s(q, d_i).
        teacher_scores: (n_queries, n_candidates) teacher targets t_i (already scaled).
        temperature: τ (1 in the reference recipe).
    """
    torch = _torch()
    log_student = torch.log_softmax(student_scores / temperature, dim=-1)
    log_teacher = torch.log_softmax(teacher_scores / temperature, dim=-1)
    return torch.nn.functional.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)


def margin_mse(student_scores, teacher_scores):  # noqa: ANN001, ANN201
    """Mean squared error between student and teacher margins ``score(d+) − score(d_i)``, i ≥ 1."""
    torch = _torch()
    student_margins = student_scores[:, :1] - student_scores[:, 1:]
    teacher_margins = teacher_scores[:, :1] - teacher_scores[:, 1:]
    return torch.nn.functional.mse_loss(student_margins, teacher_margins)


def flops_regulariser(document_vectors, threshold: int | None = None):  # noqa: ANN001, ANN201
    """``Σ_j (mean_b w_j(d_b))²`` over a batch of document vectors (n_docs, vocab); with ``threshold``,
    documents with at most that many non-zero entries are left out (the ℓ0 mask)."""
    losses = require("sentence_transformers.sparse_encoder.losses", "train")
    return losses.FlopsLoss(model=None, threshold=threshold).compute_loss_from_embeddings(document_vectors)


def regulariser_weight(step: int, weight: float, ramp_steps: int) -> float:
    """``weight · min(1, step / ramp_steps)²`` (the full weight from the start when ramp_steps is 0)."""
    if ramp_steps <= 0:
        return weight
    return weight * min(1.0, step / ramp_steps) ** 2


def inference_free_scores(query_weights, document_vectors, candidate_index):  # noqa: ANN001, ANN201
    """Student scores of each query against its own candidates.

    Args:
        query_weights: (n_queries, vocab) IDF of each query's distinct tokens (0 elsewhere).
        document_vectors: (n_docs, vocab) document weights w_t(d).
        candidate_index: long (n_queries, n_candidates), rows of ``document_vectors``.

    Returns:
        (n_queries, n_candidates) ``Σ_t IDF(t) · w_t(d)``.
    """
    all_scores = query_weights @ document_vectors.T  # (n_queries, n_docs)
    return all_scores.gather(1, candidate_index)


def training_loss(scores, targets, documents, config: TrainConfig, step: int, ramp_steps: int):  # noqa: ANN001, ANN201
    """``ranking + λ(step) · FLOPS(documents)``; returns (loss, ranking, flops, λ).

    Args:
        scores, targets: (n_queries, n_candidates) student scores and teacher targets.
        documents: (n_documents, vocab) the batch's document vectors (FLOPS with the ℓ0 mask).
    """
    if config.loss == "kl":
        ranking = distillation_kl(scores, targets, config.temperature)
    else:
        ranking = margin_mse(scores, targets)
    lam = regulariser_weight(step, config.document_regularizer_weight, ramp_steps)
    flops = flops_regulariser(documents, config.l0_threshold)
    return ranking + lam * flops, ranking, flops, lam
