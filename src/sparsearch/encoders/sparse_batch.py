"""Sparse document vectors as CSR arrays, and the pooling/pruning steps every neural encoder shares.

A :class:`SparseBatch` is the compact form of ``n`` document vectors over a vocabulary of ``V``
tokens (the encoder's ``term_id -> token`` list): ``indptr`` int64 (n + 1,), ``term_ids`` int32
(nnz,) ascending within a row, ``weights`` float32 (nnz,), every weight > 0. It is what the batch
encoding job writes to disk and what :meth:`IndexWriter.add_csr` reads, so no per-token Python
object is created on the indexing path.

The torch helpers (:func:`splade_max_pool`, :func:`pool_passages`, :func:`dense_to_batch`) import
torch lazily and only run inside the neural encoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sparsearch.types import SparseVector

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


@dataclass
class SparseBatch:
    """CSR document vectors. Shapes: indptr (n + 1,) int64, term_ids (nnz,) int32, weights (nnz,) float32."""

    indptr: np.ndarray
    term_ids: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @classmethod
    def empty(cls, n_rows: int = 0) -> SparseBatch:
        return cls(np.zeros(n_rows + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))

    @classmethod
    def concatenate(cls, batches: Sequence[SparseBatch]) -> SparseBatch:
        """Rows of ``batches`` one after the other."""
        if not batches:
            return cls.empty()
        offsets = np.cumsum([0] + [b.nnz for b in batches[:-1]])
        indptr = np.concatenate([[0]] + [b.indptr[1:] + off for b, off in zip(batches, offsets, strict=True)])
        return cls(
            indptr.astype(np.int64),
            np.concatenate([b.term_ids for b in batches]).astype(np.int32, copy=False),
            np.concatenate([b.weights for b in batches]).astype(np.float32, copy=False),
        )

    def take(self, rows: np.ndarray) -> SparseBatch:
        """The rows ``rows`` (int array), in that order."""
        lengths = np.diff(self.indptr)[rows]
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        if len(rows) == 0 or indptr[-1] == 0:
            return SparseBatch(indptr, np.zeros(0, np.int32), np.zeros(0, np.float32))
        starts = self.indptr[rows]
        # positions of every kept nnz: start of its row + offset within the row
        positions = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return SparseBatch(indptr, self.term_ids[positions], self.weights[positions])

    def to_dicts(self, vocabulary: Sequence[str]) -> list[SparseVector]:
        """One ``token -> weight`` map per row."""
        tokens = [vocabulary[i] for i in self.term_ids.tolist()]
        weights = self.weights.tolist()
        bounds = self.indptr.tolist()
        return [
            dict(zip(tokens[start:end], weights[start:end], strict=True))
            for start, end in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def lengths(self) -> np.ndarray:
        """Number of terms per row, int64 (n,)."""
        return np.diff(self.indptr)


def splade_max_pool(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """SPLADE max pooling, ``w_j = max_i m_i · log(1 + ReLU(z_ij))``, computed as ``log1p(relu(max_i z_ij))``.

    ``log(1 + ReLU(x))`` is non-decreasing, so taking the maximum over positions first gives the
    same value while running the activation on (B, V) instead of (B, L, V) — identical to
    sentence-transformers' ``SpladePooling(pooling_strategy="max")`` at a fraction of the memory
    traffic. Padding positions are set to 0 before the maximum (they then contribute ReLU(0) = 0,
    exactly like ``SpladePooling``'s multiplication by the mask).

    Args:
        logits: (B, L, V) head outputs; overwritten in place.
        attention_mask: (B, L), 1 for real tokens.

    Returns:
        (B, V) float32 weights, all >= 0.
    """
    logits.masked_fill_(attention_mask.unsqueeze(-1) == 0, 0)
    return logits.amax(dim=1).float().relu_().log1p_()


def pool_passages(docs: torch.Tensor, passage_vectors: torch.Tensor, doc_of_passage: torch.Tensor) -> None:
    """Max-pool passage vectors into document vectors, in place: ``docs[r] = max(docs[r], passage)``.

    Args:
        docs: (n_docs, V) float32 accumulator, initialised to 0 (weights are >= 0).
        passage_vectors: (P, V) weights >= 0.
        doc_of_passage: (P,) int64 row of ``docs`` each passage belongs to.
    """
    index = doc_of_passage.unsqueeze(1).expand(-1, docs.shape[1])
    docs.scatter_reduce_(0, index, passage_vectors.float(), "amax", include_self=True)


def dense_to_batch(
    dense: torch.Tensor,
    *,
    zero_ids: Sequence[int] = (),
    max_active_dims: int | None = None,
    min_weight: float = 0.0,
) -> SparseBatch:
    """Prune (B, V) non-negative weights and return them as CSR rows.

    Args:
        dense: (B, V) weights >= 0; modified in place.
        zero_ids: term ids forced to 0 (special tokens).
        max_active_dims: keep at most this many largest weights per row (``None``: all).
        min_weight: drop weights below this value (0 keeps every positive weight).

    Returns:
        The rows as a :class:`SparseBatch`; term ids ascending within each row.
    """
    import torch

    if zero_ids:
        dense[:, list(zero_ids)] = 0
    if min_weight > 0:
        dense[dense < min_weight] = 0
    if max_active_dims is not None and max_active_dims < dense.shape[1]:
        top = torch.topk(dense, max_active_dims, dim=1)
        kept = torch.zeros_like(dense)
        kept.scatter_(1, top.indices, top.values)
        dense = kept
    rows, cols = torch.nonzero(dense, as_tuple=True)
    weights = dense[rows, cols]
    counts = torch.bincount(rows, minlength=dense.shape[0])
    indptr = np.zeros(dense.shape[0] + 1, np.int64)
    np.cumsum(counts.cpu().numpy(), out=indptr[1:])
    return SparseBatch(indptr, cols.cpu().numpy().astype(np.int32), weights.float().cpu().numpy())
