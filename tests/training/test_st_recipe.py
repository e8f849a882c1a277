"""The sentence-transformers recipe: its losses by hand, and a few trainer steps on a tiny MLM (CPU)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

from sentence_transformers import SparseEncoder  # noqa: E402
from sentence_transformers.sparse_encoder.losses import FlopsLoss  # noqa: E402

from sparsearch.encoders.registry import load_encoder  # noqa: E402
from sparsearch.errors import UsageError  # noqa: E402
from sparsearch.training.losses import distillation_kl  # noqa: E402
from sparsearch.training.st_losses import (  # noqa: E402
    EnsembleDistillKLLoss,
    IdfAwareFlopsLoss,
    static_query_weights,
)
from sparsearch.training.st_recipe import (  # noqa: E402
    CandidateList,
    RecipeConfig,
    build_student,
    fit_idf_weights,
    read_candidates,
    use_bf16,
)

DOCS = [
    "a wing in a propeller slipstream",
    "heat conduction in composite slabs of steel",
    "boundary layer separation near the stall",
    "buckling of thin cylindrical shells under compression",
    "pressure distribution on a slender body",
    "flow past a cylinder at low speed",
]
QUERIES = ["propeller wing", "heat in steel slabs", "stall separation", "shell buckling"]
SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}  # the tiny BERT's (tests/tiny_models.py)


@pytest.fixture(scope="module")
def students(tiny_mlm_dir: Path) -> dict[str, SparseEncoder]:
    idf = fit_idf_weights(tiny_mlm_dir, DOCS)
    return {kind: build_student(tiny_mlm_dir, kind, idf, max_length=32) for kind in ("inference-free", "siamese")}


# -- the regulariser -----------------------------------------------------------------------------------
def test_idf_aware_flops_by_hand(students: dict[str, SparseEncoder]) -> None:
    """3 tokens, IDF (4, 1, 0.5); two documents w = (1, 0, 2) and (3, 0, 0)."""
    model = students["inference-free"]
    regulariser = IdfAwareFlopsLoss(model)
    idf = torch.tensor([4.0, 1.0, 0.5])
    raw = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    # mean over documents (2, 0, 1) -> 4 + 0 + 1
    assert regulariser.compute_loss_from_embeddings(raw).item() == pytest.approx(5.0)
    # written over the contributions the ranking sees, u = IDF · w = (4, 0, 1) and (12, 0, 0):
    # Σ_t (mean_b u_t / IDF_t)² = (8/4)² + 0 + (0.5/0.5)², the same 5
    contributions = (idf * raw).requires_grad_()
    value = regulariser.compute_loss_from_embeddings(contributions / idf)
    assert value.item() == pytest.approx((8 / 4) ** 2 + 0 + (0.5 / 0.5) ** 2)
    # plain FLOPS on those contributions differs: mean u = (8, 0, 0.5) -> 64.25
    plain = FlopsLoss(model).compute_loss_from_embeddings(contributions)
    assert plain.item() == pytest.approx(64.25)
    # per contribution, the IDF-aware gradient is plain FLOPS's divided by IDF²: common tokens cost more
    (aware_grad,) = torch.autograd.grad(value, contributions)
    (plain_grad,) = torch.autograd.grad(plain, contributions)
    torch.testing.assert_close(aware_grad[0], torch.tensor([0.5, 0.0, 2.0]))  # 2 · mean_t / IDF_t / n_docs
    torch.testing.assert_close(aware_grad[0], plain_grad[0] / idf**2)
    # the ℓ0 mask: the second document (1 active entry) is left out at threshold 1
    assert IdfAwareFlopsLoss(model, threshold=1).compute_loss_from_embeddings(raw).item() == pytest.approx(0.25 + 1)


def test_idf_aware_flops_refuses_a_siamese_model(students: dict[str, SparseEncoder]) -> None:
    with pytest.raises(ValueError, match="inference-free"):
        IdfAwareFlopsLoss(students["siamese"])


# -- the distillation loss -----------------------------------------------------------------------------
def test_ensemble_distillation_by_hand(students: dict[str, SparseEncoder]) -> None:
    model = students["siamese"]
    loss = EnsembleDistillKLLoss(model, ("dense", "bm25"), {"dense": 0.5, "bm25": 0.5}, scale=20.0)
    query = torch.tensor([[1.0, 0.0, 2.0]])
    docs = [torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.0, 5.0, 0.0]])]
    # student scores (1, 2, 0); dense (0.2, 0.6, 0.4) -> (0, 1, 0.5); bm25 (10, 0, 5) -> (1, 0, 0.5)
    labels = torch.tensor([[[0.2, 0.6, 0.4], [10.0, 0.0, 5.0]]])
    target = np.array([0.5, 0.5, 0.5]) * 20  # every candidate 10: a uniform target
    p_student = np.exp([1.0, 2.0, 0.0]) / np.exp([1.0, 2.0, 0.0]).sum()
    expected = sum(1 / 3 * (math.log(1 / 3) - math.log(q)) for q in p_student)
    value = loss.compute_loss_from_embeddings([query, *docs], labels).item()
    assert value == pytest.approx(expected, rel=1e-4)
    # one shared implementation with our own loops
    scores = torch.tensor([[1.0, 2.0, 0.0]])
    assert value == pytest.approx(distillation_kl(scores, torch.tensor(target[None])).item(), rel=1e-4)
    with pytest.raises(ValueError, match="teachers"):
        loss.compute_loss_from_embeddings([query, *docs], labels[:, :1])


# -- data ----------------------------------------------------------------------------------------------
def test_read_candidates_checks_lengths(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"qid": 3, "pids": [1, 2], "scores": {"dense": [0.1, 0.2]}}) + "\n\n")
    assert read_candidates(good) == [CandidateList("3", ["1", "2"], {"dense": [0.1, 0.2]})]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"qid": "q", "pids": ["1", "2"], "scores": {"bm25": [1.0]}}) + "\n")
    with pytest.raises(UsageError, match=r"bad.jsonl:1: 'scores'"):
        read_candidates(bad)


def test_precision_follows_the_machine() -> None:
    assert use_bf16("fp32") is False and use_bf16("bf16") is True
    assert use_bf16("auto") == bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


# -- a few trainer steps, then both loaders ------------------------------------------------------------
def _rows() -> tuple[list[CandidateList], dict[str, str], dict[str, str]]:
    queries = {f"q{i}": text for i, text in enumerate(QUERIES)}
    passages = {f"p{i}": text for i, text in enumerate(DOCS)}
    rng = np.random.default_rng(0)
    rows = []
    for i in range(len(QUERIES)):
        pids = [f"p{i}", *[f"p{j}" for j in range(len(DOCS)) if j != i]]
        scores = {"dense": rng.random(len(pids)).tolist(), "bm25": (rng.random(len(pids)) * 10).tolist()}
        scores["dense"][0], scores["bm25"][0] = 1.0, 12.0  # the first candidate is the best
        rows.append(CandidateList(f"q{i}", pids, scores))
    return rows * 2, queries, passages


@pytest.mark.parametrize("kind", ["inference-free", "siamese"])
def test_trainer_steps_and_the_saved_model_loads_in_both(kind: str, tiny_mlm_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip(
        "datasets", reason="sentence-transformers' trainer needs `datasets`, not yet in the train extra"
    )
    from sparsearch.training.st_recipe import build_dataset, train

    rows, queries, passages = _rows()
    config = RecipeConfig(
        kind=kind,
        base_model=tiny_mlm_dir,
        max_length=32,
        candidates_per_query=3,
        batch_size=4,
        max_steps=4,
        learning_rate=1e-3,
        document_regularizer_weight=1e-2,
        query_regularizer_weight=1e-2,
        logging_steps=1,
        precision="fp32",
    )
    dataset = build_dataset(rows, queries, passages, config)
    assert dataset.column_names == ["query", "doc_1", "doc_2", "doc_3", "label"]
    assert np.asarray(dataset[0]["label"]).shape == (2, 3)
    idf = fit_idf_weights(tiny_mlm_dir, DOCS)
    model = build_student(tiny_mlm_dir, kind, idf, max_length=32)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    result = train(model, dataset, config, tmp_path / "run", tmp_path / "model")

    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert result.global_step == 4 and len(losses) == 4
    assert all(math.isfinite(x) for x in losses) and len(set(losses)) > 1
    assert any(not torch.equal(before[name], p) for name, p in model.named_parameters() if name in before)
    if kind == "inference-free":  # the IDF query side is frozen: the score keeps the corpus's IDF
        torch.testing.assert_close(static_query_weights(model).cpu(), torch.tensor(idf))

    # the saved folder loads in sentence-transformers and in sparsearch, and both encode alike
    reference = SparseEncoder(str(tmp_path / "model"), device="cpu")
    ours = load_encoder(tmp_path / "model")
    assert ours.kind == kind
    texts = [DOCS[0], DOCS[3]]
    expected = reference.encode_document(texts, convert_to_tensor=True, convert_to_sparse_tensor=False)
    for row, vector in enumerate(ours.encode_document(texts)):
        dense = {t: w for t, w in reference.decode(expected[row].to_sparse()) if t not in SPECIAL and w > 0}
        assert vector.keys() == dense.keys()
        for token, weight in vector.items():
            assert weight == pytest.approx(dense[token], rel=1e-4, abs=1e-5)
    query = reference.encode_query(QUERIES[0], convert_to_tensor=True)
    expected_query = {t: w for t, w in reference.decode(query.to_sparse()) if t not in SPECIAL and w > 0}
    got = ours.encode_query(QUERIES[0]).weights
    assert got.keys() == expected_query.keys()
    for token, weight in got.items():
        assert weight == pytest.approx(expected_query[token], rel=1e-4, abs=1e-5)
