"""Reference rows of the quality table: dense all-MiniLM-L6-v2 and the teachers' min-max ensemble.

Neither is a sparsearch model: they are the ceilings the learned channel is measured against (the
issue's planning figures). Both run exhaustively in memory on one collection:

* **dense**: cosine of the query's MiniLM embedding with every document, a long document scoring its
  best 160-word window (``encoders/dense.py``, as the dense teacher of training does);
* **ensemble**: the union of word BM25's top-100 and dense's top-100, each score min-max normalised
  per query over that union, averaged with equal weights (``training/teachers.ensemble_targets``,
  the distillation target of training, here over the union instead of the mined candidates).

BM25 is the project's ``bm25`` model (stemmed words; equal to bm25s, ``bench/bm25_parity.py``).
Window embeddings are cached under ``WORK/dense`` per collection file (content size + mtime).

Usage: .venv/bin/python bench/references.py [--data data/cranfield ...] [--output FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np

from sparsearch.corpus import iter_corpus
from sparsearch.encoders.bm25 import bm25_words
from sparsearch.encoders.dense import embed, embed_windows
from sparsearch.eval.beir_data import load_beir_topics
from sparsearch.eval.metrics import aggregate_metrics
from sparsearch.training.teachers import ensemble_targets, max_per_document, sparse_matrix

DEPTH = 100
"""Each reference returns its top-100; the ensemble fuses the two top-100 lists (the planning rule)."""
METRICS = ("ndcg@10", "recall@100")


def _window_embeddings(data: Path, texts: list[str], work: Path) -> tuple[np.ndarray, np.ndarray]:
    stat = (data / "corpus.jsonl").stat()
    key = hashlib.sha256(f"{data.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    cache = work / "dense" / f"{data.name}-{key}.npz"
    if cache.is_file():
        stored = np.load(cache)
        return stored["embeddings"], stored["owners"]
    embeddings, owners = embed_windows(texts, exact=True)  # all-MiniLM-L6-v2 itself, not our int8 copy
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, embeddings=embeddings, owners=owners)
    return embeddings, owners


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    """Row numbers of the ``depth`` best finite scores, best first (ties: lower row first)."""
    order = np.argsort(-scores, kind="stable")[:depth]
    return order[np.isfinite(scores[order])]


def dense_and_ensemble_runs(data: Path, work: Path) -> tuple[dict, dict, list[float], dict[str, int]]:
    """The dense and ensemble runs of one collection's queries.

    Returns:
        ``(dense_run, ensemble_run, encode_ms, counts)``: runs as ``query_id -> {doc_id: score}`` (top
        100, best first), each query's embedding time in ms, and the documents / windows / queries counted.
    """
    documents = list(iter_corpus(data))
    doc_ids = [d.doc_id for d in documents]
    topics = load_beir_topics(data)
    query_ids = list(topics.queries)

    bm25 = bm25_words()
    bm25.fit(d.full_text for d in documents)
    doc_matrix, vocabulary = sparse_matrix(bm25.encode_document([d.full_text for d in documents]))
    query_matrix, _ = sparse_matrix([bm25.encode_query(topics.queries[q]).weights for q in query_ids], vocabulary)
    bm25_scores = (query_matrix @ doc_matrix.T).toarray()  # (queries, documents)

    windows, owners = _window_embeddings(data, [d.full_text for d in documents], work)
    encode_ms = []
    query_embeddings = []
    for query_id in query_ids:  # one at a time: the latency a user would see
        started = time.perf_counter()
        query_embeddings.append(embed([topics.queries[query_id]])[0])
        encode_ms.append((time.perf_counter() - started) * 1000)

    dense_run: dict[str, dict[str, float]] = {}
    ensemble_run: dict[str, dict[str, float]] = {}
    for row, query_id in enumerate(query_ids):
        dense = max_per_document(
            (windows @ query_embeddings[row])[None, :], owners, len(documents), -np.inf, np.float64
        )[0]
        lexical = bm25_scores[row]
        dense_top = _top(dense, DEPTH)
        dense_run[query_id] = {doc_ids[i]: float(dense[i]) for i in dense_top}
        lexical_top = _top(np.where(lexical > 0, lexical, -np.inf), DEPTH)
        union = np.array(list(dict.fromkeys([*lexical_top.tolist(), *dense_top.tolist()])), dtype=np.int64)
        if union.size == 0:
            ensemble_run[query_id] = {}
            continue
        fused = ensemble_targets(
            {"bm25": lexical[union], "dense": np.where(np.isfinite(dense[union]), dense[union], -1.0)},
            {"bm25": 0.5, "dense": 0.5},
            scale=1.0,
        )
        keep = np.argsort(-fused, kind="stable")[:DEPTH]
        ensemble_run[query_id] = {doc_ids[union[i]]: float(fused[i]) for i in keep}

    counts = {"documents": len(documents), "windows": int(len(owners)), "queries": len(query_ids)}
    return dense_run, ensemble_run, encode_ms, counts


def reference_runs(data: Path, work: Path) -> dict[str, object]:
    """Dense and ensemble rows of one collection: metrics and the query-embedding p50."""
    dense_run, ensemble_run, encode_ms, counts = dense_and_ensemble_runs(data, work)
    qrels = load_beir_topics(data).qrels
    p50 = statistics.median(encode_ms)
    return {
        "collection": data.name,
        "rows": [
            {"model": "dense (reference)", "metrics": aggregate_metrics(qrels, dense_run, METRICS),
             "query_encode_p50_ms": p50},
            {"model": "ensemble (reference)", "metrics": aggregate_metrics(qrels, ensemble_run, METRICS),
             "query_encode_p50_ms": p50},
        ],
        **counts,
    }  # fmt: skip


def main() -> None:
    from sparsearch._cache import cache_root

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", type=Path, default=[Path("data") / n for n in ("cranfield", "cisi")])
    parser.add_argument("--work", type=Path, default=cache_root() / "bench-work")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: print)")
    args = parser.parse_args()
    results = [reference_runs(data, args.work) for data in args.data]
    text = json.dumps(results, indent=2)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
