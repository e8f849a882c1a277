"""Losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sparsearch.training.losses import (  # noqa: E402
    distillation_kl,
    flops_regulariser,
    inference_free_scores,
    margin_mse,
    regulariser_weight,
)
from sparsearch.training.teachers import ensemble_targets, minmax_normalise  # noqa: E402


def test_kl_by_hand() -> None:
    student = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    # query 1: p = (1/2, 1/2), p̂ = softmax(1, 0); query 2: p = softmax(2, 0), p̂ = (1/2, 1/2)
    ps1 = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    kl1 = sum(0.5 * (math.log(0.5) - math.log(q)) for q in ps1)
    pt2 = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    kl2 = sum(p * (math.log(p) - math.log(0.5)) for p in pt2)
    assert distillation_kl(student, teacher).item() == pytest.approx((kl1 + kl2) / 2, rel=1e-6)
    assert distillation_kl(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_temperature_softens() -> None:
    student, teacher = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    assert distillation_kl(student, teacher, temperature=10.0) < distillation_kl(student, teacher)


def test_margin_mse_by_hand() -> None:
    student = torch.tensor([[5.0, 3.0, 1.0]])  # margins 2, 4
    teacher = torch.tensor([[4.0, 3.0, 0.0]])  # margins 1, 4
    assert margin_mse(student, teacher).item() == pytest.approx(((2 - 1) ** 2 + 0) / 2)


def test_flops_by_hand_and_l0_mask() -> None:
    docs = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # mean over docs = (2, 0, 1) -> 4 + 0 + 1
    assert flops_regulariser(docs).item() == pytest.approx(5.0)
    # threshold 1: the second document (1 active entry) is masked out -> mean = (0.5, 0, 1)
    assert flops_regulariser(docs, threshold=1).item() == pytest.approx(0.25 + 1.0)


def test_quadratic_ramp() -> None:
    assert regulariser_weight(0, 0.01, 100) == 0.0
    assert regulariser_weight(50, 0.01, 100) == pytest.approx(0.0025)
    assert regulariser_weight(500, 0.01, 100) == pytest.approx(0.01)
    assert regulariser_weight(3, 0.01, 0) == 0.01


def test_idf_aware_gradient() -> None:
    """The ranking loss pulls a document weight in proportion to its query token's IDF."""
    query = torch.tensor([[5.0, 0.5]])  # a rare token (IDF 5) and a common one (IDF 0.5)
    docs = torch.tensor([[0.3, 0.3], [0.0, 0.0]], requires_grad=True)
    scores = inference_free_scores(query, docs, torch.tensor([[0, 1]]))
    distillation_kl(scores, torch.tensor([[10.0, 0.0]])).backward()
    grad = docs.grad[0]
    assert grad[0] / grad[1] == pytest.approx(10.0)


def test_minmax_and_ensemble_by_hand() -> None:
    dense = np.array([[0.2, 0.6, 0.4]])
    bm25 = np.array([[10.0, 0.0, 5.0]])
    np.testing.assert_allclose(minmax_normalise(dense), [[0.0, 1.0, 0.5]], atol=1e-5)
    np.testing.assert_allclose(minmax_normalise(np.array([[3.0, 3.0]])), [[0.0, 0.0]])  # constant list
    targets = ensemble_targets({"dense": dense, "bm25": bm25}, {"dense": 0.5, "bm25": 0.5}, scale=20)
    np.testing.assert_allclose(targets, [[10.0, 10.0, 10.0]], atol=1e-3)
    dense_only = ensemble_targets({"dense": dense}, {"dense": 0.5, "bm25": 0.5}, scale=20)
    np.testing.assert_allclose(dense_only, [[0.0, 20.0, 10.0]], atol=1e-3)
