"""BM25 parity: sparsearch's inference-free BM25 (embedded engine) against bm25s on the same analyzer.

1. analyze with sparsearch's WordAnalyzer (the same tokens for both),
2. index and search with bm25s (method "lucene", k1=1.5, b=0.75) and with sparsearch,
3. score both runs with the same pytrec_eval code, and write bench/results/bm25_parity.json.

Usage: .venv/bin/python bench/bm25_parity.py [--data data/cranfield ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import bm25s
import numpy as np

from sparsearch.corpus import iter_corpus
from sparsearch.encoders.analyzers import WordAnalyzer
from sparsearch.encoders.registry import load_encoder
from sparsearch.eval.beir_data import load_beir_topics
from sparsearch.eval.metrics import aggregate_metrics
from sparsearch.eval.runner import run_queries
from sparsearch.jobs.build_embedded import build_embedded_index


def bm25s_run(data: Path, queries: dict[str, str], depth: int) -> dict[str, dict[str, float]]:
    analyzer = WordAnalyzer()
    documents = list(iter_corpus(data))
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index([analyzer.tokenize(d.full_text) for d in documents], show_progress=False)
    run = {}
    for query_id, text in queries.items():
        tokens = [t for t in analyzer.tokenize(text) if t in retriever.vocab_dict]
        if not tokens:
            run[query_id] = {}
            continue
        scores = retriever.get_scores(tokens)
        top = np.argsort(-scores, kind="stable")[:depth]
        run[query_id] = {documents[i].doc_id: float(scores[i]) for i in top if scores[i] > 0}
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=[Path("data/cranfield"), Path("data/cisi")],
    )
    parser.add_argument("--output", type=Path, default=Path("bench/results/bm25_parity.json"))
    args = parser.parse_args()
    rows = []
    for data in args.data:
        topics = load_beir_topics(data)
        started = time.perf_counter()
        reference = aggregate_metrics(topics.qrels, bm25s_run(data, topics.queries, 1000))
        bm25s_seconds = time.perf_counter() - started
        for model in ("bm25", "bm25-wordpiece"):
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                encoder = load_encoder(model)
                index, _ = build_embedded_index(data, Path(tmp) / "index", encoder)
                run, _, _ = run_queries(index, encoder, topics.queries, 1000)
            rows.append(
                {
                    "dataset": data.name,
                    "system": f"sparsearch {model}",
                    **aggregate_metrics(topics.qrels, run),
                }
            )
        rows.append(
            {
                "dataset": data.name,
                "system": "bm25s (same word analyzer)",
                **reference,
                "seconds": bm25s_seconds,
            }
        )
    result = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        print(
            f"{row['dataset']:10s} {row['system']:28s} ndcg@10={row['ndcg@10']:.4f} recall@100={row['recall@100']:.4f}"
        )


if __name__ == "__main__":
    main()
