"""Teacher scores for label-free distillation (docs/method.md#teachers-and-candidates).

For each pseudo-query: candidates = BM25 top-k ∪ dense top-k ∪ its source document; every candidate
is scored by every teacher (raw scores are kept, so scale and weights can be re-tuned without
re-scoring); queries whose source no teacher ranks in its top ``consistency_depth`` are dropped
(round-trip consistency). The source document is scored as the student will see it
(``positive_text``, with the query cut out most of the time).

Teachers: word-level BM25 (the lexical teacher) and all-MiniLM-L6-v2 cosine (the dense teacher; a
long document scores its best window).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse

from sparsearch.encoders.bm25 import BM25Encoder, bm25_words
from sparsearch.encoders.dense import embed, embed_windows
from sparsearch.training.pseudo_queries import PseudoQuery, PseudoQueryGenerator
from sparsearch.types import Document, dot

if TYPE_CHECKING:
    from sparsearch.training.config import TrainConfig

TEACHERS = ("dense", "bm25")


@dataclass
class TeacherExample:
    """One pseudo-query with its candidates and raw teacher scores.

    Attributes:
        query: the pseudo-query (its ``doc_id`` is the positive).
        candidates: candidate doc ids; the positive is always ``candidates[0]``.
        scores: teacher name -> raw scores aligned with ``candidates``.
    """

    query: PseudoQuery
    candidates: list[str]
    scores: dict[str, list[float]]

    def to_dict(self) -> dict[str, object]:
        return {"query": self.query.to_dict(), "candidates": self.candidates, "scores": self.scores}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TeacherExample:
        return cls(PseudoQuery(**data["query"]), list(data["candidates"]), dict(data["scores"]))  # type: ignore[arg-type]


def minmax_normalise(scores: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-row min-max normalisation over the last axis; a constant row becomes all zeros."""
    low = scores.min(axis=-1, keepdims=True)
    high = scores.max(axis=-1, keepdims=True)
    return (scores - low) / (high - low + eps)


def ensemble_targets(scores: Mapping[str, np.ndarray], weights: Mapping[str, float], scale: float) -> np.ndarray:
    """``scale x`` weighted mean of the per-query min-max normalised teacher scores.

    Args:
        scores: teacher -> raw scores, shape (n_queries, n_candidates) or (n_candidates,).
        weights: teacher -> weight (normalised to sum to 1 over the teachers present).
        scale: S in docs/method.md#heterogeneous-ensemble-distillation (10-30).
    """
    total = sum(weights[name] for name in scores)
    mixed = sum(
        weights[name] / total * minmax_normalise(np.asarray(values, dtype=np.float64))
        for name, values in scores.items()
    )
    return scale * np.asarray(mixed)


def max_per_document(
    similarities: np.ndarray, owners: np.ndarray, n_docs: int, fill: float = -1.0, dtype: type = np.float32
) -> np.ndarray:
    """(queries, windows) -> (queries, documents): each document's best window; ``fill`` for a document
    without text (no window). ``owners`` (windows,) are document rows, ascending (as ``embed_windows``
    gives them)."""
    out = np.full((similarities.shape[0], n_docs), fill, dtype=dtype)
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    out[:, owners[starts]] = np.maximum.reduceat(similarities, starts, axis=1)
    return out


def sparse_matrix(
    vectors: Sequence[Mapping[str, float]], vocabulary: dict[str, int] | None = None
) -> tuple[scipy.sparse.csr_matrix, dict[str, int]]:
    """Rows of ``token -> weight`` maps as a CSR matrix (float64); tokens missing from a given
    ``vocabulary`` are dropped, else the vocabulary grows. Returns the matrix and the vocabulary."""
    grow = vocabulary is None
    vocabulary = {} if vocabulary is None else vocabulary
    indptr, indices, data = [0], [], []
    for vector in vectors:
        for token, weight in vector.items():
            column = vocabulary.setdefault(token, len(vocabulary)) if grow else vocabulary.get(token)
            if column is not None:
                indices.append(column)
                data.append(weight)
        indptr.append(len(indices))
    shape = (len(vectors), max(len(vocabulary), 1))
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=shape, dtype=np.float64), vocabulary


def mine_and_score(
    documents: Sequence[Document],
    queries: Sequence[PseudoQuery],
    candidates_per_teacher: int = 20,
    consistency_depth: int = 10,
) -> list[TeacherExample]:
    """Candidates and raw teacher scores for every query that passes the consistency filter."""
    doc_row = {d.doc_id: i for i, d in enumerate(documents)}
    bm25 = bm25_words()
    bm25.fit(d.full_text for d in documents)
    doc_matrix, vocabulary = sparse_matrix(bm25.encode_document([d.full_text for d in documents]))
    encoded_queries = [bm25.encode_query(q.text).weights for q in queries]
    query_matrix, _ = sparse_matrix(encoded_queries, vocabulary)
    bm25_scores = (query_matrix @ doc_matrix.T).toarray()  # (queries, documents)
    window_embeddings, owners = embed_windows([d.full_text for d in documents])
    query_embeddings = embed([q.text for q in queries])
    positive_embeddings = embed([q.positive_text for q in queries])
    dense_scores = max_per_document(query_embeddings @ window_embeddings.T, owners, len(documents))

    examples = []
    for i, query in enumerate(queries):
        encoded = encoded_queries[i]
        bm25_all, dense_all = bm25_scores[i], dense_scores[i]
        bm25_top = np.argsort(-bm25_all, kind="stable")[:candidates_per_teacher]
        dense_top = np.argsort(-dense_all, kind="stable")[:candidates_per_teacher]
        source = doc_row[query.doc_id]
        if source not in bm25_top[:consistency_depth] and source not in dense_top[:consistency_depth]:
            continue
        others = [int(d) for d in dict.fromkeys([*bm25_top.tolist(), *dense_top.tolist()]) if d != source]
        positive_bm25 = dot(encoded, bm25.encode_document([query.positive_text])[0])
        positive_dense = float(query_embeddings[i] @ positive_embeddings[i])
        examples.append(
            TeacherExample(
                query=query,
                candidates=[query.doc_id] + [documents[d].doc_id for d in others],
                scores={
                    "bm25": [positive_bm25] + [float(bm25_all[d]) for d in others],
                    "dense": [positive_dense] + [float(dense_all[d]) for d in others],
                },
            )
        )
    return examples


def score_candidates(
    bm25: BM25Encoder, queries: Sequence[str], candidates: Sequence[Sequence[str]]
) -> dict[str, list[list[float]]]:
    """Raw scores of given candidates by both teachers (for data that comes without teacher scores).

    Args:
        bm25: word BM25 fitted on the collection (:func:`~sparsearch.encoders.bm25.bm25_words`).
        queries: query texts, one per row.
        candidates: per query, its candidate document texts (any number per query).

    Returns:
        ``{"bm25": ..., "dense": ...}``, each a list (one per query) of raw scores aligned with
        ``candidates``; dense = all-MiniLM-L6-v2 cosine of the document's best window.
    """
    flat = [text for row in candidates for text in row]
    window_embeddings, owners = embed_windows(flat)
    query_embeddings = embed(list(queries))
    bm25_documents = bm25.encode_document(flat)
    scores: dict[str, list[list[float]]] = {"bm25": [], "dense": []}
    start = 0
    for i, (query, row) in enumerate(zip(queries, candidates, strict=True)):
        rows = np.arange(start, start + len(row))
        low, high = np.searchsorted(owners, [start, start + len(row)])  # owners ascend: this row's windows
        dense = np.full(len(row), -1.0, dtype=np.float32)  # a blank candidate has no window
        if high > low:
            similarities = query_embeddings[i : i + 1] @ window_embeddings[low:high].T
            dense = max_per_document(similarities, owners[low:high] - start, len(row))[0]
        encoded = bm25.encode_query(query).weights
        scores["bm25"].append([dot(encoded, bm25_documents[j]) for j in rows])
        scores["dense"].append([float(x) for x in dense])
        start += len(row)
    return scores


def save_examples(examples: Sequence[TeacherExample], path: Path) -> None:
    """One JSON object per line (raw scores kept)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_examples(path: Path) -> list[TeacherExample]:
    with path.open(encoding="utf-8") as handle:
        return [TeacherExample.from_dict(json.loads(line)) for line in handle if line.strip()]


def prepare_examples(
    config: TrainConfig, documents: Sequence[Document], cache: Path | None = None
) -> list[TeacherExample]:
    """Pseudo-queries + teacher scores, cached in ``cache`` (default: ``teachers.jsonl`` in the run
    directory)."""
    cache = cache or config.resolved_run_dir / "teachers.jsonl"
    if cache.is_file():
        return load_examples(cache)
    queries = PseudoQueryGenerator(
        documents,
        seed=config.seed,
        max_per_document=config.queries_per_document,
        heldout_fraction=config.heldout_fraction,
    ).generate()
    examples = mine_and_score(documents, queries, candidates_per_teacher=config.candidates_per_teacher)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_examples(examples, cache)
    return examples
