"""Label-free training end to end on tiny models, and the student's sparse training forward pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from sparsearch.encoders.registry import load_encoder  # noqa: E402
from sparsearch.jobs.build_embedded import build_embedded_index  # noqa: E402
from sparsearch.training.config import TrainConfig  # noqa: E402
from sparsearch.training.splade_student import SparseMLMStudent, train  # noqa: E402


def test_sparse_forward_equals_dense_splade_pooling(tiny_mlm_dir: Path) -> None:
    student = SparseMLMStudent(tiny_mlm_dir, max_length=32)
    texts = ["a wing in a propeller slipstream", "heat conduction in composite slabs of steel"]
    vectors = student.encode(texts)
    batch = student.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = student.model(**batch).logits
        logits = logits.masked_fill(batch["attention_mask"].unsqueeze(-1) == 0, float("-inf"))
        dense = torch.log1p(torch.relu(logits.max(dim=1).values))
        dense[:, student.tokenizer.all_special_ids] = 0
    torch.testing.assert_close(vectors.detach(), dense, atol=2e-2, rtol=2e-2)
    disagreements = ((vectors.detach() > 0) != (dense > 0)).sum().item()
    assert disagreements <= 0.01 * (dense > 0).sum().item()  # only bfloat16 near-ties may differ
    vectors.sum().backward()
    assert student.model.get_output_embeddings().weight.grad.abs().sum() > 0


def test_train_writes_a_run_and_a_model_that_indexes(tiny_data: Path, tiny_mlm_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        data=tiny_data,
        output=tmp_path / "adapted",
        base_model=tiny_mlm_dir,
        minutes=None,
        max_steps=3,
        batch_queries=2,
        docs_per_query=2,
        max_length=32,
        heldout_fraction=0.3,
        candidates_per_teacher=3,
        mixing_weights=[0.0, 1.0],
    )
    report = train(config)
    run = config.resolved_run_dir
    assert report.steps == 3
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["max_steps"] == 3
    assert (run / "teachers.jsonl").is_file() and (run / "report.json").is_file()
    assert set(report.heldout_ndcg_by_weight) == {"0.0", "1.0"}
    assert report.chosen_weight in (0.0, 1.0)

    model = load_encoder(config.output)
    assert not model.is_fitted  # the saved model carries no corpus statistics
    index, _ = build_embedded_index(tiny_data, tmp_path / "index", model)
    assert index.search(load_encoder(index.encoder_dir).encode_query("propeller slipstream"), 3)

    cached = (run / "teachers.jsonl").read_text()
    train(config.model_copy(update={"max_steps": 1, "output": tmp_path / "again"}))
    assert (run / "teachers.jsonl").read_text() == cached  # teacher scores are computed once
