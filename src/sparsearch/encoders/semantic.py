"""A training-free learned channel: dense-teacher similarity between a document and vocabulary words.

Each whole-word WordPiece vocabulary entry is embedded on its own, once, with the dense teacher.
A document's weight for token t is ``max(0, cos(e_d, e_t) - threshold)`` on its ``top_k`` most
similar tokens, so a document about "hypersonic flow" also carries "supersonic", "shock", "mach".
The query side is inference-free: the query's distinct WordPiece tokens weighted by IDF. Documents
longer than one model window are split into overlapping windows and their weights max-pooled.

This is the training-free baseline of docs/method.md#the-semantic-vocabulary-head; its scores are in
the History section of the default model's card (``encoders/default_model/README.md``).

A trained :class:`VocabularyHead` generalises the rule: ``w_t(d) = max(0, s_t · cos(A e_d, e_t) − b_t)``
with a learned 384x384 map ``A`` and per-token scales ``s_t`` and thresholds ``b_t``. The training-free
channel is the head ``A = I, s = 1, b = threshold``, which is where training starts
(:mod:`~sparsearch.training.head_student`). The head is a small delta (771 KB) on the pip-installed
dense model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsearch._cache import cache_root
from sparsearch.encoders.analyzers import WordPieceAnalyzer
from sparsearch.encoders.dense import DENSE_MODEL_NAME, DenseWindows, embed, embed_windows
from sparsearch.encoders.idf import IdfTable
from sparsearch.errors import IndexFormatError, require
from sparsearch.types import BaseEncoder, EncodedQuery, EncoderFingerprint, SparseVector, stable_hash

CONFIG_FILE = "config.json"
IDF_FILE = "idf.json"
HEAD_FILE = "head.safetensors"
EMBEDDING_DIM = 384


@dataclass
class VocabularyHead:
    """The trained part of the semantic channel, over the channel's candidate tokens.

    Attributes:
        projection: float32 (384, 384) ``A``; document embeddings are mapped by ``e @ A.T``.
        scale: float32 (n_tokens,) ``s_t``.
        bias: float32 (n_tokens,) ``b_t`` (a per-token cosine threshold when ``s_t = 1``).
    """

    projection: np.ndarray
    scale: np.ndarray
    bias: np.ndarray

    @classmethod
    def identity(cls, n_tokens: int, threshold: float) -> VocabularyHead:
        """The training-free channel as a head: ``A = I``, ``s = 1``, ``b = threshold``."""
        return cls(
            np.eye(EMBEDDING_DIM, dtype=np.float32),
            np.ones(n_tokens, dtype=np.float32),
            np.full(n_tokens, threshold, dtype=np.float32),
        )

    def weights(self, embeddings: np.ndarray, token_matrix: np.ndarray) -> np.ndarray:
        """(n, 384) document embeddings -> (n, n_tokens) weights before the ``max(0, ·)``."""
        mapped = embeddings @ self.projection.T
        mapped /= np.maximum(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-12)
        return self.scale * (mapped @ token_matrix.T) - self.bias

    @property
    def digest(self) -> str:
        hasher = hashlib.sha256()
        for array in (self.projection, self.scale, self.bias):
            hasher.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return hasher.hexdigest()[:16]

    def save(self, path: Path) -> None:
        require("safetensors", "neural")
        from safetensors.numpy import save_file

        save_file({"projection": self.projection, "scale": self.scale, "bias": self.bias}, str(path))

    @classmethod
    def load(cls, path: Path, n_tokens: int) -> VocabularyHead:
        """Raises IndexFormatError when the file does not match the channel's tokens."""
        safetensors = require("safetensors", "neural")
        from safetensors.numpy import load_file

        SafetensorError = safetensors.SafetensorError  # noqa: N806 - the library's class name

        try:
            arrays = load_file(str(path))
            head = cls(arrays["projection"], arrays["scale"], arrays["bias"])
        except (OSError, KeyError, ValueError, SafetensorError) as error:
            raise IndexFormatError(f"{path}: not a vocabulary head ({error}); retrain or restore the file") from None
        shapes = (head.projection.shape, head.scale.shape, head.bias.shape)
        if shapes != ((EMBEDDING_DIM, EMBEDDING_DIM), (n_tokens,), (n_tokens,)):
            raise IndexFormatError(
                f"{path}: head shapes {head.projection.shape}, {head.scale.shape}, {head.bias.shape} do not fit "
                f"{n_tokens} candidate tokens and {EMBEDDING_DIM}-dimensional embeddings"
            )
        return head


def whole_word_tokens(vocabulary: Sequence[str]) -> list[str]:
    """Vocabulary entries that are whole ASCII words or numbers of 2+ characters (no ``##`` pieces,
    no special or unused tokens): the candidates for semantic expansion."""
    return [t for t in vocabulary if len(t) >= 2 and t.isascii() and t.isalnum()]


def _cache_dir() -> Path:
    return cache_root() / "token-embeddings"


def token_embeddings(tokens: Sequence[str]) -> np.ndarray:
    """Dense-teacher embeddings of ``tokens``, float32 (len(tokens), 384), cached on disk by content."""
    key = hashlib.sha256(("\n".join(tokens) + DENSE_MODEL_NAME).encode()).hexdigest()[:16]
    path = _cache_dir() / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    matrix = embed(tokens, batch_size=512)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, matrix)
    os.replace(tmp, path)
    return matrix


class SemanticChannelEncoder(BaseEncoder):
    """Document weights from dense similarity to vocabulary words; query weights from IDF.

    Args:
        threshold: cosine below which a token gets no weight (τ, 0.2).
        top_k: most similar tokens kept per document (K, 100).
        candidate_tokens: restrict expansion to these vocabulary entries (default: every whole-word
            entry, ~22.7k; embedding them takes ~40 s on 2 CPU cores, once, then cached).
        head: a trained :class:`VocabularyHead` (``threshold`` is then unused: ``b_t`` replaces it).
        name: model name recorded in fingerprints.
    """

    def __init__(
        self,
        threshold: float = 0.2,
        top_k: int = 100,
        candidate_tokens: Sequence[str] | None = None,
        head: VocabularyHead | None = None,
        name: str = "semantic",
    ):
        self.threshold = threshold
        self.name = name
        self.top_k = top_k
        self.analyzer = WordPieceAnalyzer()
        self.idf: IdfTable | None = None
        self.candidate_tokens = list(candidate_tokens) if candidate_tokens is not None else None
        vocabulary = set(self.analyzer.vocabulary)
        unknown = [t for t in self.candidate_tokens or [] if t not in vocabulary]
        if unknown:
            raise ValueError(f"candidate tokens not in the WordPiece vocabulary: {unknown[:5]}")
        self._tokens = self.candidate_tokens or whole_word_tokens(self.analyzer.vocabulary)
        if head is not None and head.scale.shape != (len(self._tokens),):
            raise ValueError(f"the head has {head.scale.shape[0]} token weights for {len(self._tokens)} tokens")
        self._head_file: Path | None = None  # a saved head not read yet (queries never need it)
        self.head = head
        self._matrix: np.ndarray | None = None
        self._fingerprint: EncoderFingerprint | None = None

    @property
    def is_fitted(self) -> bool:
        return self.idf is not None

    @property
    def head(self) -> VocabularyHead | None:
        """The trained head, read from disk on first use (encoding documents), so that a query
        server needs neither the file's reader (safetensors) nor its memory."""
        if self._head is None and self._head_file is not None:
            head = VocabularyHead.load(self._head_file, len(self._tokens))
            if head.digest != self._head_digest:
                raise IndexFormatError(
                    f"{self._head_file}: its weights do not match the digest in {CONFIG_FILE} (a changed or "
                    "corrupt file); restore the model directory or rebuild the index"
                )
            self._head = head
        return self._head

    @head.setter
    def head(self, head: VocabularyHead | None) -> None:
        self._head, self._head_file = head, None
        self._head_digest = head.digest if head is not None else None
        self._fingerprint = None

    def fit(self, texts: Iterable[str]) -> None:
        """Compute the query-side IDF table over the corpus (WordPiece tokens, once per document)."""
        self.idf = IdfTable.from_token_lists(
            (self.analyzer.tokenize(text) for text in texts), analyzer=self.analyzer.identity
        )
        self._fingerprint = None

    @property
    def fingerprint(self) -> EncoderFingerprint:
        if self._fingerprint is None:
            if self.idf is None:
                raise IndexFormatError("the semantic channel has no IDF table yet: fit it on the corpus first")
            self._fingerprint = EncoderFingerprint(
                name=self.name,
                vocab_hash=stable_hash(self.analyzer.identity),
                idf_hash=stable_hash(
                    {
                        "idf": self.idf.hash,
                        "threshold": self.threshold,
                        "top_k": self.top_k,
                        "tokens": self._tokens,
                        "head": self._head_digest,
                    }
                ),
            )
        return self._fingerprint

    @property
    def tokens(self) -> list[str]:
        """The candidate tokens, in the column order of the head and the token matrix."""
        return self._tokens

    def token_matrix(self) -> np.ndarray:
        """float32 (n_tokens, 384) dense-teacher embeddings of the candidate tokens (cached)."""
        if self._matrix is None:
            self._matrix = token_embeddings(self._tokens)
        return self._matrix

    def encode_document(self, texts: Sequence[str]) -> list[SparseVector]:
        """Top-``top_k`` tokens by cosine above ``threshold``; empty texts give empty maps."""
        return self.encode_document_with_windows(texts)[0]

    def encode_document_with_windows(self, texts: Sequence[str]) -> tuple[list[SparseVector], DenseWindows]:
        """:meth:`encode_document` plus the dense-model window embeddings it computed on the way (the
        ones ``sparsearch index --dense`` stores for hybrid search: no second forward pass)."""
        embeddings, owners = embed_windows(texts)
        return self._weights(texts, embeddings, owners), DenseWindows.from_owners(embeddings, owners, len(texts))

    def _weights(self, texts: Sequence[str], embeddings: np.ndarray, owners: np.ndarray) -> list[SparseVector]:
        vectors: list[SparseVector] = [{} for _ in texts]
        if not len(owners):
            return vectors
        head = self.head or VocabularyHead.identity(len(self._tokens), self.threshold)
        scores = head.weights(embeddings, self.token_matrix())  # (windows, tokens)
        if np.any(owners[1:] < owners[:-1]):  # embed_windows gives one contiguous run per document already
            order = np.argsort(owners, kind="stable")
            scores, owners = scores[order], owners[order]
        rows, starts = np.unique(owners, return_index=True)
        pooled = np.maximum.reduceat(scores, starts, axis=0)  # max over a document's windows
        k = min(self.top_k, pooled.shape[1])
        top = np.argpartition(-pooled, k - 1, axis=1)[:, :k]
        for position, row in enumerate(rows.tolist()):
            weights = pooled[position, top[position]]
            for column, weight in zip(top[position].tolist(), weights.tolist(), strict=True):
                if weight > 0:
                    vectors[row][self._tokens[column]] = weight
        return vectors

    def encode_query(self, text: str) -> EncodedQuery:
        if self.idf is None:
            raise IndexFormatError("the semantic channel has no IDF table yet: fit it on the corpus first")
        return EncodedQuery(self.idf.weights(self.analyzer.tokenize(text)), self.fingerprint, text)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "type": "semantic",
            "name": self.name,
            "threshold": self.threshold,
            "top_k": self.top_k,
            "candidate_tokens": self.candidate_tokens,
            "head": HEAD_FILE if self._head_digest is not None else None,
            "head_digest": self._head_digest,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        if self.head is not None:
            self.head.save(directory / HEAD_FILE)
        if self.idf is not None:
            self.idf.save(directory / IDF_FILE)

    @classmethod
    def load(cls, directory: Path) -> SemanticChannelEncoder:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        encoder = cls(
            threshold=float(config["threshold"]),
            top_k=int(config["top_k"]),
            candidate_tokens=config.get("candidate_tokens"),
            name=config.get("name", "semantic"),
        )
        if config.get("head") and config.get("head_digest"):
            encoder._head_file, encoder._head_digest = directory / config["head"], config["head_digest"]
        elif config.get("head"):  # saved before digests were recorded: read it now
            encoder.head = VocabularyHead.load(directory / config["head"], len(encoder.tokens))
        if (directory / IDF_FILE).is_file():
            encoder.idf = IdfTable.load(directory / IDF_FILE)
        return encoder
