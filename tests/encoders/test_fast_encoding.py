"""The int8 ONNX runtime for document windows (encoders/onnx_dense.py) against the exact torch path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("sentence_transformers")

from sparsearch.encoders import dense, onnx_dense  # noqa: E402
from sparsearch.encoders.semantic import SemanticChannelEncoder  # noqa: E402
from sparsearch.errors import UsageError  # noqa: E402

# Real abstracts (cranfield-like), one longer than a window so it is split.
TEXTS = [
    "experimental investigation of the aerodynamics of a wing in a slipstream. an experimental study "
    "of a wing in a propeller slipstream was made in order to determine the spanwise distribution of "
    "the lift increase due to slipstream at different angles of attack of the wing.",
    "heat transfer in a laminar boundary layer on a flat plate with a step change in wall temperature.",
    "buckling of thin cylindrical shells under axial compression. " * 30,
    "the court held that a tenant may deduct the cost of urgent repairs from the rent.",
]

COSINE_FLOOR = 0.98
"""Per window, int8 ONNX against float32 torch. Measured on 96 cranfield windows: min 0.9885, mean
0.993 (per-channel int8 with reduce_range); per-tensor int8 fell to 0.71-0.94, which this catches."""


def test_onnx_windows_match_torch() -> None:
    windows = [w for text in TEXTS for w in dense.split_words(text)]
    exact = dense.embed(windows, device="cpu")
    fast = onnx_dense.embed_onnx(windows)
    assert fast.shape == exact.shape == (len(windows), 384) and fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)  # pooled and normalised in-graph
    cosines = (exact * fast).sum(axis=1)
    assert cosines.min() >= COSINE_FLOOR, cosines


def test_batch_neighbours_move_an_embedding_only_within_the_floor() -> None:
    # int8 activations are quantised per tensor, over the whole batch, so a window's embedding depends
    # slightly on its batch (the float32 graph is padding-invariant to 1e-7); both stay near torch.
    short = TEXTS[3]
    exact = dense.embed([short], device="cpu")[0]
    alone = onnx_dense.embed_onnx([short])[0]
    with_long = onnx_dense.embed_onnx([TEXTS[2][:1500], short])[1]  # padded to the long one's length
    assert alone @ exact >= COSINE_FLOOR and with_long @ exact >= COSINE_FLOOR


def test_batches_run_side_by_side_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_dense, "TOKEN_BUDGET", 200)  # a batch or two of windows each: many batches
    windows = [w for text in TEXTS * 3 for w in dense.split_words(text)]
    one_at_a_time = onnx_dense.embed_onnx(windows, threads=1)
    side_by_side = onnx_dense.embed_onnx(windows, threads=3)
    assert len(windows) >= 6 and np.array_equal(one_at_a_time, side_by_side)
    assert (one_at_a_time * dense.embed(windows, device="cpu")).sum(axis=1).min() >= COSINE_FLOOR  # rows in place


def test_runtime_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(onnx_dense.RUNTIME_ENV, raising=False)
    assert onnx_dense.encoder_runtime("cpu") == onnx_dense.DEFAULT_RUNTIME
    monkeypatch.setenv(onnx_dense.RUNTIME_ENV, "onnx")
    assert onnx_dense.encoder_runtime("cpu") == "onnx"
    assert onnx_dense.encoder_runtime("cuda") == "torch"  # a GPU runs torch in float16
    monkeypatch.setenv(onnx_dense.RUNTIME_ENV, "Torch")
    assert onnx_dense.encoder_runtime("cpu") == "torch"
    monkeypatch.setenv(onnx_dense.RUNTIME_ENV, "tensorrt")
    with pytest.raises(UsageError, match="torch, onnx"):
        onnx_dense.encoder_runtime("cpu")


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_document_windows_go_through_the_chosen_runtime(monkeypatch: pytest.MonkeyPatch, runtime: str) -> None:
    calls: list[str] = []
    monkeypatch.setattr(dense, "embed", lambda texts, **_: calls.append("torch") or np.zeros((len(texts), 384)))
    monkeypatch.setattr(onnx_dense, "embed_onnx", lambda texts: calls.append("onnx") or np.zeros((len(texts), 384)))
    monkeypatch.setenv(onnx_dense.RUNTIME_ENV, runtime)
    embeddings, owners = dense.embed_windows(["one document", "", "another one"])
    assert calls == [runtime] and embeddings.shape == (2, 384) and owners.tolist() == [0, 2]


def test_default_runtime_is_used_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(dense, "embed", lambda texts, **_: calls.append("torch") or np.zeros((len(texts), 384)))
    monkeypatch.setattr(onnx_dense, "embed_onnx", lambda texts: calls.append("onnx") or np.zeros((len(texts), 384)))
    monkeypatch.delenv(onnx_dense.RUNTIME_ENV, raising=False)
    monkeypatch.setattr(dense, "torch_device", lambda: "cpu")
    dense.embed_windows(["a document"])
    assert calls == [onnx_dense.DEFAULT_RUNTIME]


def test_cache_is_built_once_and_rebuilt_when_missing_or_corrupt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path))
    builds: list[Path] = []

    def fake_build(output_dir: Path) -> Path:  # the real export takes ~20 s; the cache logic is what is tested
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True)
        (output_dir / onnx_dense.MODEL_FILE).write_bytes(b"onnx bytes %d" % len(builds))
        sha = onnx_dense._file_sha256(output_dir / onnx_dense.MODEL_FILE)
        (output_dir / onnx_dense.INFO_FILE).write_text(json.dumps({"sha256": sha}), encoding="utf-8")
        builds.append(output_dir)
        return output_dir

    monkeypatch.setattr(onnx_dense, "build_onnx_model", fake_build)
    first = onnx_dense.onnx_model_dir()
    assert first.parent == tmp_path / "models" and len(builds) == 1
    assert onnx_dense.onnx_model_dir() == first and len(builds) == 1  # cached
    (first / onnx_dense.MODEL_FILE).write_bytes(b"truncated")  # corrupt
    assert onnx_dense.onnx_model_dir() == first and len(builds) == 2
    (first / onnx_dense.MODEL_FILE).unlink()  # missing
    assert onnx_dense.onnx_model_dir() == first and len(builds) == 3
    assert [p.name for p in (tmp_path / "models").iterdir()] == [first.name]  # no temp folder left


def test_window_pooling_is_the_same_for_any_owner_order() -> None:
    encoder = SemanticChannelEncoder(
        threshold=-1.0, top_k=5, candidate_tokens=["wing", "lift", "heat", "shell", "flow", "music"]
    )
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(6, 384)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    owners = np.array([0, 0, 2, 2, 2, 3])
    texts = ["a", "", "b", "c"]
    contiguous = encoder._weights(texts, embeddings, owners)
    shuffled = np.array([2, 0, 5, 3, 1, 4])
    reordered = encoder._weights(texts, embeddings[shuffled], owners[shuffled])
    # the same tokens and weights; the last bit may differ, as BLAS may treat a row by its position
    assert [set(d) for d in reordered] == [set(d) for d in contiguous]
    for got, expected in zip(reordered, contiguous, strict=True):
        assert [got[t] for t in expected] == pytest.approx(list(expected.values()), rel=1e-6)
    assert contiguous[1] == {}
