"""Hybrid search: candidates from the sparse (and, on the embedded engine, the dense) side re-scored by
fusing the sparse score with the dense model's cosine (docs/method.md#hybrid-search).

For a query:

1. the query is embedded with the dense model (all-MiniLM-L6-v2, the one query-time model call);
2. the candidates, each with the window embeddings stored at index time (``sparsearch index --dense``),
   are one of the :data:`CANDIDATE_SETS`:

   * ``sparse``: the index's exact sparse top N (N = :data:`CANDIDATES`, inference-free);
   * ``union``: those and the exact dense top N, an exhaustive search over every live document's
     stored windows (best window per document; embedded indexes only: the engines here have no k-NN
     plugin, docs/engines.md); a dense-only candidate carries its exact sparse score, 0 when it shares
     no token with the query;

   a candidate's dense score is its best window's cosine (-1 for a document without text);
3. the two score lists are fused over the candidate set, with :func:`fuse`:

   * ``minmax``: ``(1 - w) * minmax(sparse) + w * minmax(dense)``, min-max taken over the candidates
     (OpenSearch's normalization processor with ``min_max`` and ``arithmetic_mean`` weights ``[1 - w, w]``);
   * ``rrf``: ``(1 - w) / (RRF_K + rank_sparse) + w / (RRF_K + rank_dense)``, ranks from 1 within the
     candidates, ties ranked by ``doc_id`` (Cormack et al., SIGIR 2009, k = 60);

4. the top ``top_k`` by fused score, ties by ``doc_id`` ascending.

The candidate set does not depend on ``top_k``, so the first hits never change with the page size;
in turn a hybrid search returns at most N (``sparse``) or 2N (``union``) hits.

Results are deterministic and equal a brute-force computation of the same fusion over the same
candidates (tests/test_hybrid.py). A query whose encoding is empty (no token of the vocabulary) gets
no hit, as in sparse mode; with ``sparse`` candidates, so does one that matches no document. The
default candidate set and fusion were chosen on held-out pseudo-queries of the four bundled corpora
by ``bench/hybrid_fusion.py``, never on their test queries.

Only the query side needs the dense model (extra ``neural``); nothing here imports torch until a
:class:`HybridBackend` is created without an ``embed_query`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsearch.errors import UsageError
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, Hit

__all__ = [
    "CANDIDATES",
    "CANDIDATE_SETS",
    "DEFAULT_CANDIDATE_SET",
    "DEFAULT_FUSION",
    "FUSION_METHODS",
    "RRF_K",
    "Fusion",
    "HybridBackend",
    "fuse",
    "fused_top_k",
]

CANDIDATES = 100
"""Sparse candidates fused per query, whatever ``top_k`` (the depth of the ensemble reference)."""

CANDIDATE_SETS = ("sparse", "union")
"""``sparse``: the sparse top :data:`CANDIDATES`; ``union``: those and the exact dense top
:data:`CANDIDATES` (exhaustive over the stored windows; embedded indexes only)."""

DEFAULT_CANDIDATE_SET = "sparse"
"""Chosen by ``bench/hybrid_fusion.py``'s rule together with :data:`DEFAULT_FUSION`: the union's best
(min-max, w = 0.3: 0.63955 mean held-out nDCG@10) lost to sparse-only min-max w = 0.4 (0.63961), so the
simpler candidate set stays the default; ``union`` remains an option (``bench/results/hybrid_fusion.md``)."""

RRF_K = 60
"""Reciprocal rank fusion's constant (Cormack, Clarke and Buettcher 2009; OpenSearch's default too)."""

FUSION_METHODS = ("minmax", "rrf")
SEARCH_MODES = ("sparse", "hybrid")


@dataclass(frozen=True)
class Fusion:
    """How sparse and dense scores are combined.

    Attributes:
        method: ``"minmax"`` or ``"rrf"`` (see the module docstring).
        dense_weight: ``w`` in [0, 1], the dense side's share (0: the sparse order; 1: the dense order
            of the sparse candidates).

    Raises:
        UsageError: an unknown method or a weight outside [0, 1].
    """

    method: str
    dense_weight: float

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise UsageError(f"unknown fusion {self.method!r}: use one of {', '.join(FUSION_METHODS)}")
        if not 0.0 <= float(self.dense_weight) <= 1.0:
            raise UsageError(f"dense_weight must be between 0 and 1 (got {self.dense_weight!r})")


DEFAULT_FUSION = Fusion("minmax", 0.4)
"""Chosen by ``bench/hybrid_fusion.py``'s rule (best mean held-out pseudo-query nDCG@10 over cranfield,
cisi, cacm and npl, over both candidate sets; ties to min-max, then the smaller weight, then sparse-only):
sparse-only min-max w = 0.4, 0.6396, against 0.63955 for the union with w = 0.3, 0.6392 for the union with
w = 0.4, 0.6385 for sparse-only w = 0.5 and 0.6276 for the sparse order (w = 0); RRF was below the
sparse order at every weight above 0; ``bench/results/hybrid_fusion.md``."""


def minmax(scores: np.ndarray) -> np.ndarray:
    """float64 ``(s - min) / (max - min)`` over the last axis; a constant row (one candidate) maps to 0."""
    scores = np.asarray(scores, dtype=np.float64)
    low = scores.min(axis=-1, keepdims=True)
    span = scores.max(axis=-1, keepdims=True) - low
    return np.divide(scores - low, span, out=np.zeros_like(scores), where=span > 0)


def ranks(scores: np.ndarray, doc_ids: Sequence[str]) -> np.ndarray:
    """int64 1-based ranks of (n,) ``scores``: score descending, then ``doc_id`` ascending."""
    order = sorted(range(len(doc_ids)), key=lambda i: (-float(scores[i]), doc_ids[i]))
    result = np.empty(len(doc_ids), dtype=np.int64)
    result[order] = np.arange(1, len(doc_ids) + 1)
    return result


def fuse(doc_ids: Sequence[str], sparse: np.ndarray, dense: np.ndarray, fusion: Fusion = DEFAULT_FUSION) -> np.ndarray:
    """Fused scores of one query's candidates.

    Args:
        doc_ids: (n,) the candidates' ids (the RRF tie-break).
        sparse: (n,) their sparse scores.
        dense: (n,) their dense scores (cosines).
        fusion: method and weight.

    Returns:
        float64 (n,), higher is better.
    """
    w = float(fusion.dense_weight)
    if fusion.method == "minmax":
        return (1.0 - w) * minmax(sparse) + w * minmax(dense)
    return (1.0 - w) / (RRF_K + ranks(sparse, doc_ids)) + w / (RRF_K + ranks(dense, doc_ids))


def fused_top_k(doc_ids: Sequence[str], sparse: np.ndarray, dense: np.ndarray, fusion: Fusion, top_k: int) -> list[Hit]:
    """The ``top_k`` candidates by :func:`fuse`, score descending then ``doc_id`` ascending."""
    if not len(doc_ids):
        return []
    fused = fuse(doc_ids, sparse, dense, fusion)
    order = sorted(range(len(doc_ids)), key=lambda i: (-fused[i], doc_ids[i]))[:top_k]
    return [Hit(doc_ids[i], float(fused[i])) for i in order]


def max_window_scores(query: np.ndarray, windows: Sequence[np.ndarray]) -> np.ndarray:
    """float64 (n,): per candidate, its best ``query · window`` (in float64), -1 without windows.

    Args:
        query: float32 (384,), L2-normalised.
        windows: per candidate, (n_windows_i, 384) float16 as stored.
    """
    query = np.asarray(query, dtype=np.float64)
    scores = np.full(len(windows), -1.0, dtype=np.float64)
    counts = np.asarray([len(rows) for rows in windows], dtype=np.int64)
    if not counts.sum():
        return scores
    # one matrix product over every window, then each candidate's maximum; float64, so the result
    # does not depend on how the product is blocked (float32 sums would differ in the last bits)
    cosines = np.concatenate([rows for rows in windows if len(rows)]).astype(np.float64) @ query
    starts = np.concatenate([[0], np.cumsum(counts[counts > 0])[:-1]])
    scores[counts > 0] = np.maximum.reduceat(cosines, starts)
    return scores


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a ``None`` in ``sys.modules`` blocks it)."""
    import importlib.util
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def check_dense_identity(stored: dict | None, where: str) -> None:
    """Refuse an index without dense vectors, or whose vectors another dense model made.

    Raises:
        UsageError: no dense vectors, or a different model, window or precision.
        MissingExtraError: the dense model's package is not installed (extra ``neural``).
    """
    if not stored:
        raise UsageError(
            f"{where} stores no dense vectors, so it cannot answer hybrid queries: rebuild it with "
            "sparsearch index --dense (or search in the default sparse mode)"
        )
    from sparsearch.encoders.dense import dense_model_identity
    from sparsearch.errors import MissingExtraError

    for module in ("torch", "sentence_transformers"):  # found, not imported: the first query loads them
        if not _installed(module):
            raise MissingExtraError(module, "neural")
    installed = dense_model_identity()
    if dict(stored) != installed:
        raise UsageError(
            f"{where} stores dense vectors of {stored} but the installed dense model is {installed}: rebuild "
            "the index with sparsearch index --dense, or install the model that built it"
        )


class HybridBackend:
    """A backend answering in hybrid mode: same interface as the backend it wraps
    (:class:`~sparsearch.backends.base.SearchBackend`), hits re-scored by :func:`fuse`.

    The wrapped backend provides ``dense_identity`` and ``search_candidates(queries, n)`` (the embedded
    index and the engine backends do); the ``union`` candidate set also needs
    ``search_candidates(queries, n, dense_queries=...)`` and ``dense_search`` (the embedded index only:
    the engines here have no k-NN plugin, docs/engines.md). Scores of the hits are fused scores (in
    [0, 1] for ``minmax``), not dot products.

    Args:
        backend: the opened index.
        fusion: method and weight (default :data:`DEFAULT_FUSION`).
        candidates: N, candidates taken from each side per query; a query returns at most N hits with
            the ``sparse`` set, 2N with ``union``.
        candidate_set: ``"sparse"`` or ``"union"`` (:data:`CANDIDATE_SETS`); ``None``:
            :data:`DEFAULT_CANDIDATE_SET` where the backend can search dense vectors, else ``"sparse"``.
        embed_query: text -> float32 (384,) L2-normalised embedding; ``None``: the dense model
            (checked against the index's record first). Tests pass their own.

    Raises:
        UsageError: the backend cannot search in hybrid mode (or ``union`` asked of one without dense
            search), the index has no dense vectors, or they come from another dense model.
        MissingExtraError: ``embed_query`` is ``None`` and the ``neural`` extra is not installed.
    """

    def __init__(
        self,
        backend: Any,  # noqa: ANN401 - a SearchBackend with search_candidates
        fusion: Fusion = DEFAULT_FUSION,
        *,
        candidates: int = CANDIDATES,
        candidate_set: str | None = None,
        embed_query: Callable[[str], np.ndarray] | None = None,
    ) -> None:
        if not hasattr(backend, "search_candidates"):
            raise UsageError(f"the {getattr(backend, 'name', '?')} backend has no hybrid mode; use the sparse mode")
        if candidates < 1:
            raise UsageError(f"candidates must be at least 1 (got {candidates})")
        can_union = hasattr(backend, "dense_search")
        if candidate_set is None:
            candidate_set = DEFAULT_CANDIDATE_SET if can_union else "sparse"
        if candidate_set not in CANDIDATE_SETS:
            raise UsageError(f"unknown candidate set {candidate_set!r}: use one of {', '.join(CANDIDATE_SETS)}")
        if candidate_set == "union" and not can_union:
            raise UsageError(
                f"the {getattr(backend, 'name', '?')} backend cannot search dense vectors, so its hybrid "
                "candidates are the sparse ones only (candidate_set='sparse')"
            )
        where = f"index {getattr(backend, 'path', None) or getattr(backend, 'index', '')}".strip()
        if embed_query is None:
            check_dense_identity(backend.dense_identity, where)
            from sparsearch.encoders.dense import embed_query as model_embed_query

            embed_query = model_embed_query
        elif not backend.dense_identity:
            check_dense_identity(None, where)
        self.backend = backend
        self.fusion = fusion
        self.candidates = candidates
        self.candidate_set = candidate_set
        self.embed_query = embed_query
        self.name = backend.name

    @property
    def fingerprint(self) -> EncoderFingerprint:
        return self.backend.fingerprint

    def search(self, query: EncodedQuery, top_k: int = 10) -> list[Hit]:
        return self.search_batch([query], top_k)[0]

    def search_batch(self, queries: Sequence[EncodedQuery], top_k: int = 10) -> list[list[Hit]]:
        """One fused hit list per query (see the module docstring); a query with no sparse token gets none."""
        if top_k < 1:
            raise UsageError(f"top_k must be at least 1 (got {top_k})")
        if any(not q.is_empty and not q.text.strip() for q in queries):
            raise UsageError("hybrid search needs the query text (an EncodedQuery made by encode_query(text))")
        non_empty = [q for q in queries if not q.is_empty]
        embeddings = [np.asarray(self.embed_query(q.text), dtype=np.float32) for q in non_empty]
        if not non_empty:
            found = iter([])
        elif self.candidate_set == "union":  # one dense matrix product for the whole batch
            found = iter(self.backend.search_candidates(non_empty, self.candidates, dense_queries=np.stack(embeddings)))
        else:
            found = iter(self.backend.search_candidates(non_empty, self.candidates))
        embedded = iter(embeddings)
        results = []
        for query in queries:
            if query.is_empty:
                results.append([])
                continue
            candidates, embedding = next(found), next(embedded)
            if not candidates:
                results.append([])
                continue
            doc_ids = [hit.doc_id for hit, _ in candidates]
            sparse = np.asarray([hit.score for hit, _ in candidates], dtype=np.float64)
            dense = max_window_scores(embedding, [windows for _, windows in candidates])
            results.append(fused_top_k(doc_ids, sparse, dense, self.fusion, top_k))
        return results

    def get_documents(self, doc_ids: Sequence[str]) -> list[Document | None]:
        return self.backend.get_documents(doc_ids)

    def count(self) -> int:
        return self.backend.count()

    def health(self) -> dict[str, object]:
        return self.backend.health()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - everything else is the wrapped backend's
        if name == "backend":  # not set yet (a failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self.backend, name)
