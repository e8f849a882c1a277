"""The trained vocabulary head of the semantic channel and its training loop (semantic-head student)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparsearch.encoders.registry import load_encoder
from sparsearch.encoders.semantic import SemanticChannelEncoder, VocabularyHead
from sparsearch.errors import IndexFormatError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.training.config import TrainConfig
from sparsearch.training.head_student import HeadStudent
from sparsearch.training.run import run_training
from tests.encoders.test_semantic_two_channel import TOKENS

CORPUS = ["Wing lift in a propeller slipstream.", "Heat conduction in composite slabs.", "Buckling of thin shells."]


def _random_head(seed: int = 0) -> VocabularyHead:
    rng = np.random.default_rng(seed)
    projection = np.eye(384, dtype=np.float32) + 0.05 * rng.standard_normal((384, 384)).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, len(TOKENS)).astype(np.float32)
    bias = rng.uniform(0.0, 0.4, len(TOKENS)).astype(np.float32)
    return VocabularyHead(projection, scale, bias)


def test_identity_head_is_the_training_free_channel() -> None:
    plain = SemanticChannelEncoder(threshold=0.2, top_k=8, candidate_tokens=TOKENS)
    headed = SemanticChannelEncoder(top_k=8, candidate_tokens=TOKENS, head=VocabularyHead.identity(len(TOKENS), 0.2))
    for a, b in zip(plain.encode_document(CORPUS), headed.encode_document(CORPUS), strict=True):
        assert a.keys() == b.keys()
        assert all(a[t] == pytest.approx(b[t], abs=1e-6) for t in a)


def test_head_round_trips_and_changes_the_fingerprint(tmp_path: Path) -> None:
    head = _random_head()
    encoder = SemanticChannelEncoder(top_k=8, candidate_tokens=TOKENS, head=head, name="semantic-head")
    encoder.fit(CORPUS)
    encoder.save(tmp_path / "model")
    loaded = load_encoder(tmp_path / "model")
    assert loaded.encode_document(CORPUS) == encoder.encode_document(CORPUS)
    assert loaded.fingerprint == encoder.fingerprint
    plain = SemanticChannelEncoder(top_k=8, candidate_tokens=TOKENS)
    plain.fit(CORPUS)
    assert plain.fingerprint != encoder.fingerprint  # an index refuses queries of the other head


def test_head_that_does_not_fit_the_tokens_is_refused(tmp_path: Path) -> None:
    _random_head().save(tmp_path / "head.safetensors")
    with pytest.raises(IndexFormatError, match="do not fit 5 candidate tokens"):
        VocabularyHead.load(tmp_path / "head.safetensors", n_tokens=5)
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(IndexFormatError, match="not a vocabulary head"):
        VocabularyHead.load(tmp_path / "bad.safetensors", n_tokens=len(TOKENS))


def test_training_forward_equals_the_indexing_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch forward used in training gives the weights `sparsearch index` stores (windows pooled,
    then max(0, .) and the top-k), with the exact torch runtime (the int8 ONNX default is bounded in
    tests/encoders/test_fast_encoding.py)."""
    import torch

    monkeypatch.setenv("SPARSEARCH_ENCODER_RUNTIME", "torch")

    from sparsearch.encoders.dense import embed, split_words

    head = _random_head(1)
    encoder = SemanticChannelEncoder(top_k=6, candidate_tokens=TOKENS, head=head)
    texts = ["the propeller wing lift " * 60 + "heat slab " * 60, "Buckling of thin shells."]
    windows = [split_words(t) for t in texts]
    owners = torch.tensor([row for row, w in enumerate(windows) for _ in w])
    embeddings = torch.tensor(embed([w for ws in windows for w in ws]))
    student = HeadStudent(head, encoder.token_matrix(), top_k=6)
    weights = student.document_weights(embeddings, owners, len(texts)).detach().numpy()
    for row, vector in enumerate(encoder.encode_document(texts)):
        expected = np.zeros(len(TOKENS), dtype=np.float32)
        for token, weight in vector.items():
            expected[TOKENS.index(token)] = weight
        np.testing.assert_allclose(weights[row], expected, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainConfig, object]:
    output = tmp_path_factory.mktemp("head") / "adapted"
    config = TrainConfig(
        data=tiny_data,
        output=output,
        candidate_tokens=TOKENS,
        top_k=8,
        minutes=None,
        max_steps=4,
        batch_queries=2,
        heldout_fraction=0.3,
        candidates_per_teacher=3,
        head_learning_rate=0.05,
        mixing_weights=[0.5, 1.0, 2.0],
        eval_every=0,  # the last step's head (checkpoint selection has its own test)
    )
    return config, run_training(config)


def test_head_training_writes_a_run_and_a_model_that_indexes(trained, tiny_data: Path, tmp_path: Path) -> None:  # noqa: ANN001
    config, report = trained
    run = config.resolved_run_dir
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4] and report.steps == 4
    assert all(np.isfinite(r["loss"]) for r in lines)
    assert set(report.heldout_ndcg_by_weight) == set(report.heldout_kl_by_weight) == {"0.5", "1.0", "2.0"}
    kl = report.heldout_kl_by_weight
    assert report.chosen_weight == float(min(kl, key=kl.get))  # the training objective on held-out queries

    model = load_encoder(config.output)
    assert model.learned.head is not None and not model.is_fitted
    assert not np.allclose(model.learned.head.bias, 0.4)  # the optimiser moved the head (start: 2 x 0.2)
    index, _ = build_embedded_index(tiny_data, tmp_path / "index", model)
    assert index.search(load_encoder(index.encoder_dir).encode_query("propeller slipstream"), 3)


def test_head_training_is_reproducible(trained, tmp_path: Path) -> None:  # noqa: ANN001
    config, _ = trained
    again = config.model_copy(update={"output": tmp_path / "again", "run_dir": tmp_path / "again.run"})
    run_training(again)
    first = (config.output / "learned" / "head.safetensors").read_bytes()
    assert (again.output / "learned" / "head.safetensors").read_bytes() == first


def test_adaptation_starts_from_the_init_model(trained, tmp_path: Path) -> None:  # noqa: ANN001
    config, _ = trained
    start = load_encoder(config.output)
    same = config.model_copy(
        update={
            "output": tmp_path / "same",
            "run_dir": tmp_path / "same.run",
            "init_model": config.output,
            "max_steps": 1,
            "head_learning_rate": 1e-12,  # the head must come back as it started
        }
    )
    run_training(same)
    end = load_encoder(tmp_path / "same").learned.head
    # the start's learned weight is folded into the head: a·max(0, s·c − b) = max(0, a·s·c − a·b)
    weight = start.learned_weight
    np.testing.assert_allclose(end.bias, weight * start.learned.head.bias, atol=1e-5)
    np.testing.assert_allclose(end.scale, weight * start.learned.head.scale, atol=1e-5)
    np.testing.assert_allclose(end.projection, start.learned.head.projection, atol=1e-6)


def test_the_checkpoint_with_the_lowest_heldout_kl_is_kept(
    trained,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    """Evaluated every ``eval_every`` steps and before the first; the saved head is the best one's."""
    from sparsearch.training import head_student as head_training

    config, _ = trained
    # scripted held-out KL per evaluation (steps 0, 2, 4): step 2 is best, at mixing weight 1.0
    scripted = iter([{"0.5": 0.9, "1.0": 0.8, "2.0": 0.85}, {"0.5": 0.7, "1.0": 0.6, "2.0": 0.65},
                     {"0.5": 0.75, "1.0": 0.7, "2.0": 0.62}])  # fmt: skip
    monkeypatch.setattr(head_training, "_heldout_kl", lambda *args: next(scripted))
    every_two = config.model_copy(update={"output": tmp_path / "e", "run_dir": tmp_path / "e.run", "eval_every": 2})
    report = run_training(every_two)
    lines = [json.loads(line) for line in (tmp_path / "e.run" / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in lines if "eval_step" in r]
    assert [r["eval_step"] for r in evaluations] == [0, 2, 4]
    assert [r["heldout_kl"] for r in evaluations] == [0.8, 0.6, 0.62]
    assert report.checkpoint_step == 2 and report.chosen_weight == 1.0 and report.steps == 4

    # the same seed stopped after two steps has the step-2 head
    monkeypatch.undo()
    two_steps = config.model_copy(
        update={"output": tmp_path / "two", "run_dir": tmp_path / "two.run", "max_steps": 2, "eval_every": 0}
    )
    run_training(two_steps)
    kept, expected = load_encoder(tmp_path / "e").learned.head, load_encoder(tmp_path / "two").learned.head
    for name in ("projection", "scale", "bias"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(expected, name))
    last = load_encoder(config.output).learned.head  # four steps, no selection: a different head
    assert not np.array_equal(kept.bias, last.bias)


def test_cuda_without_a_gpu_is_refused_before_any_work(trained, tmp_path: Path) -> None:  # noqa: ANN001
    import torch

    from sparsearch.errors import UsageError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: device = cuda is valid here")
    config, _ = trained
    on_gpu = config.model_copy(update={"output": tmp_path / "g", "run_dir": tmp_path / "g.run", "device": "cuda"})
    with pytest.raises(UsageError, match='torch sees no GPU here: use device = "auto" or "cpu"'):
        run_training(on_gpu)
    assert not (tmp_path / "g.run").exists()


def test_corpus_weights_must_match_the_corpora(trained, tmp_path: Path) -> None:  # noqa: ANN001
    from sparsearch.errors import UsageError

    config, _ = trained
    wrong = config.model_copy(
        update={"output": tmp_path / "w", "run_dir": tmp_path / "w.run", "corpus_weights": [1, 2]}
    )
    with pytest.raises(UsageError, match="corpus_weights has 2 entries for 1 corpora"):
        run_training(wrong)


def test_head_training_refuses_margin_mse(trained, tmp_path: Path) -> None:  # noqa: ANN001
    from sparsearch.errors import UsageError

    config, _ = trained
    margin = config.model_copy(update={"output": tmp_path / "m", "run_dir": tmp_path / "m.run", "loss": "margin_mse"})
    with pytest.raises(UsageError, match='trains with loss = "kl"'):
        run_training(margin)


def test_init_model_must_be_a_semantic_model(tiny_data: Path, tmp_path: Path) -> None:
    from sparsearch.encoders.bm25 import bm25_words
    from sparsearch.errors import UsageError
    from sparsearch.training.head_student import initial_head

    bm25_words().save(tmp_path / "bm25")
    with pytest.raises(UsageError, match="must be a semantic or two-channel"):
        initial_head(tmp_path / "bm25", len(TOKENS), 0.2, 2.0)


def test_sparse_recompute_has_the_dense_gradient() -> None:
    """Gradients through the top-k recompute equal those of the dense pooled computation."""
    import torch

    rng = np.random.default_rng(3)
    tokens = rng.standard_normal((40, 384)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    head = VocabularyHead(
        np.eye(384, dtype=np.float32) + 0.1 * rng.standard_normal((384, 384)).astype(np.float32),
        rng.uniform(0.5, 2, 40).astype(np.float32),
        rng.uniform(-0.1, 0.1, 40).astype(np.float32),
    )
    embeddings = torch.tensor(rng.standard_normal((5, 384)).astype(np.float32))
    owners = torch.tensor([0, 0, 1, 2, 2])
    queries = torch.tensor(rng.uniform(0, 3, (3, 40)).astype(np.float32))

    sparse = HeadStudent(head, tokens, top_k=7)
    (queries @ sparse.document_weights(embeddings, owners, 3).T).sum().backward()

    dense = HeadStudent(head, tokens, top_k=7)
    mapped = torch.nn.functional.normalize(embeddings @ dense.projection.T, dim=-1)
    scores = dense.scale * (mapped @ dense.tokens.T) - dense.bias
    pooled = torch.stack([scores[owners == d].max(0).values for d in range(3)])
    values, columns = torch.relu(pooled).topk(7, dim=1)
    (queries @ torch.zeros_like(pooled).scatter(1, columns, values).T).sum().backward()

    for a, b in zip(sparse.parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    assert sparse.bias.grad.abs().sum() > 0


def test_saved_head_is_read_only_to_encode_document(tmp_path: Path) -> None:
    """A query server loads the model without reading the head (no safetensors needed for queries);
    documents read it, and a head that no longer matches its recorded digest is refused."""
    encoder = SemanticChannelEncoder(top_k=8, candidate_tokens=TOKENS, head=_random_head(), name="semantic-head")
    encoder.fit(CORPUS)
    encoder.save(tmp_path / "model")
    loaded = load_encoder(tmp_path / "model")
    assert loaded.encode_query("propeller wing").weights and loaded._head is None
    assert loaded.fingerprint == encoder.fingerprint
    assert loaded.encode_document(CORPUS) == encoder.encode_document(CORPUS)

    _random_head(seed=9).save(tmp_path / "model" / "head.safetensors")  # swapped behind the config's back
    with pytest.raises(IndexFormatError, match="do not match the digest"):
        load_encoder(tmp_path / "model").encode_document(CORPUS)
