"""CSR document batches and the shared pooling/pruning kernels, against reference computations."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsearch.encoders import vocabulary
from sparsearch.encoders.sparse_batch import SparseBatch, dense_to_batch, pool_passages, splade_max_pool

torch = pytest.importorskip("torch")


def random_batch(rng: np.random.Generator, rows: int, vocab: int) -> tuple[SparseBatch, np.ndarray]:
    dense = rng.random((rows, vocab)).astype(np.float32)
    dense[dense < 0.6] = 0
    return dense_to_batch(torch.from_numpy(dense.copy())), dense


@given(st.integers(0, 6), st.integers(1, 12), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_csr_round_trip_take_and_concatenate(rows: int, vocab: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, dense = random_batch(rng, rows, vocab)
    tokens = [f"t{i}" for i in range(vocab)]
    assert batch.to_dicts(tokens) == [{tokens[j]: float(row[j]) for j in np.flatnonzero(row)} for row in dense]
    order = rng.permutation(rows)
    assert batch.take(order).to_dicts(tokens) == [batch.to_dicts(tokens)[i] for i in order]
    other, _ = random_batch(rng, 3, vocab)
    both = SparseBatch.concatenate([batch, other])
    assert both.to_dicts(tokens) == batch.to_dicts(tokens) + other.to_dicts(tokens)
    assert both.indptr.dtype == np.int64 and both.term_ids.dtype == np.int32 and both.weights.dtype == np.float32


def test_splade_max_pool_equals_sentence_transformers_pooling() -> None:
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=generator) * 3
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    pooling = SpladePooling(pooling_strategy="max", activation_function="relu").eval()
    expected = pooling({"token_embeddings": logits.clone(), "attention_mask": mask})["sentence_embedding"]
    assert torch.allclose(splade_max_pool(logits.clone(), mask), expected, atol=1e-6)


def test_pool_passages_takes_the_elementwise_maximum() -> None:
    docs = torch.zeros(3, 4)
    passages = torch.tensor([[1.0, 0, 2, 0], [0.5, 3, 0, 0], [0, 0, 0, 1]])
    pool_passages(docs, passages, torch.tensor([0, 0, 2]))
    assert docs.tolist() == [[1.0, 3, 2, 0], [0, 0, 0, 0], [0, 0, 0, 1]]


def test_pruning_keeps_the_largest_weights_and_drops_special_ids() -> None:
    dense = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.05], [0.0, 0.2, 0.0, 0.0, 0.3]])
    batch = dense_to_batch(dense.clone(), zero_ids=[1], max_active_dims=2, min_weight=0.08)
    tokens = list("abcde")
    assert batch.to_dicts(tokens) == [
        {"c": pytest.approx(0.5), "d": pytest.approx(0.7)},
        {"e": pytest.approx(0.3)},
    ]


def test_vocabulary_docstring_examples_run() -> None:
    results = doctest.testmod(vocabulary)
    assert results.attempted > 0 and results.failed == 0
