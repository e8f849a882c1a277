"""Held-out pseudo-queries: their judgements, the lexical half of their scores, nDCG@10 per mixing weight
and the rule that picks the weight (docs/method.md#held-out-selection-rules)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sparsearch.training.config import TrainConfig
from sparsearch.training.teachers import (
    TeacherExample,
    ensemble_targets,
    sparse_matrix,
)
from sparsearch.types import Document


def heldout_ndcg(
    documents: Sequence[Document],
    heldout: Sequence[TeacherExample],
    lexical_scores: np.ndarray,
    learned_scores: np.ndarray,
    mixing_weights: Sequence[float],
    qrels: dict[str, dict[str, int]],
) -> dict[str, float]:
    """nDCG@10 of ``lexical + weight x learned`` on held-out pseudo-queries, per mixing weight.
    Scores are (n_heldout, n_documents) arrays; ``qrels`` from :func:`heldout_qrels`."""
    from sparsearch.eval.metrics import aggregate_metrics

    by_weight: dict[str, float] = {}
    for weight in mixing_weights:
        combined = lexical_scores + weight * learned_scores
        run = {}
        for row, example in enumerate(heldout):
            top = np.argsort(-combined[row], kind="stable")[:100]
            run[example.query.query_id] = {
                documents[d].doc_id: float(combined[row, d]) for d in top if combined[row, d] > 0
            }
        by_weight[str(weight)] = aggregate_metrics(qrels, run)["ndcg@10"] if heldout else 0.0
    return by_weight


def lexical_scores(texts: Sequence[str], query_texts: Sequence[str]) -> np.ndarray:
    """float64 (n_queries, n_texts): the lexical channel (word BM25, fitted on ``texts``) scores of
    ``query_texts`` against ``texts``, the frozen half of held-out scores."""
    from sparsearch.encoders.two_channel import lexical_channel

    lexical = lexical_channel()
    lexical.fit(texts)
    documents, vocabulary = sparse_matrix(lexical.encode_document(texts))
    queries, _ = sparse_matrix([lexical.encode_query(t).weights for t in query_texts], vocabulary)
    return (queries @ documents.T).toarray()


def best_weight(by_weight: dict[str, float]) -> float:
    """The mixing weight with the highest held-out nDCG@10, the smallest on ties."""
    return float(max(by_weight, key=lambda w: (by_weight[w], -float(w))))


def heldout_qrels(heldout: Sequence[TeacherExample], config: TrainConfig) -> dict[str, dict[str, int]]:
    """Judgements of the held-out pseudo-queries.

    ``heldout_relevance = "source"``: the source document alone is relevant. Pseudo-queries are cut
    from their documents, so word BM25 alone finds the source ~97% of the time and this barely
    tells mixing weights apart. ``"teachers"`` (default): every mined candidate is judged by the
    teacher ensemble, grade ``round(3 x its per-query min-max ensemble score)`` (0-3), so a mixing
    weight is chosen for agreeing with the teachers' ranking on queries never trained on.
    """
    if config.heldout_relevance == "source":
        return {e.query.query_id: {e.query.doc_id: 1} for e in heldout}
    qrels = {}
    for example in heldout:
        scores = {name: np.asarray(v) for name, v in example.scores.items() if name in config.teacher_weights}
        grades = np.rint(ensemble_targets(scores, config.teacher_weights, 3.0)).astype(int)
        qrels[example.query.query_id] = dict(zip(example.candidates, grades.tolist(), strict=True))
    return qrels
