"""Engine parity: the same model through the embedded engine and through a real OpenSearch.

1. fit the model once and build the embedded index,
2. load the same encoder's vectors into OpenSearch with ``index_corpus`` (rank_features, linear),
3. run every judged query through both engines (depth 1000, one thread),
4. score both runs with the same pytrec_eval code; compare nDCG@10 and the top-10 lists,
5. write bench/results/engine_parity.json and engine_parity.md.

Usage (an OpenSearch must be running, e.g. ``scripts/opensearch start --port 9200``):
    .venv/bin/python bench/engine_parity.py --url http://127.0.0.1:9200 [--data data/cranfield ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from sparsearch.backends.engines.opensearch import OpenSearchBackend
from sparsearch.encoders.registry import load_encoder
from sparsearch.eval.beir_data import load_beir_topics
from sparsearch.eval.metrics import aggregate_metrics
from sparsearch.eval.runner import run_queries
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.jobs.build_engine import index_corpus


def top10(run: dict[str, dict[str, float]], query_id: str) -> list[str]:
    scores = run.get(query_id, {})
    return sorted(scores, key=lambda d: (-scores[d], d))[:10]


def compare(data: Path, model: str, url: str) -> dict[str, object]:
    topics = load_beir_topics(data)
    encoder = load_encoder(model)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        embedded, _ = build_embedded_index(data, Path(tmp) / "index", encoder)
        embedded_index_s = time.perf_counter() - started
        engine = OpenSearchBackend.connect(url, f"parity-{data.name}-{model}")
        try:
            engine.drop()
            summary = index_corpus(data, engine, encoder, failures_path=Path(tmp) / "failures.jsonl")
            local, _, local_ms = run_queries(embedded, encoder, topics.queries, 1000)
            remote, _, remote_ms = run_queries(engine, encoder, topics.queries, 1000)
            version = engine.server_version
        finally:
            engine.drop()
            engine.close()
    local_metrics = aggregate_metrics(topics.qrels, local)
    remote_metrics = aggregate_metrics(topics.qrels, remote)
    overlaps = [
        len(set(top10(local, q)) & set(top10(remote, q))) / max(1, len(top10(local, q))) for q in topics.queries
    ]
    identical = [top10(local, q) == top10(remote, q) for q in topics.queries]
    return {
        "dataset": data.name,
        "model": model,
        "documents": summary.documents,
        "queries": len(topics.queries),
        "opensearch_version": version,
        "ndcg@10": {"embedded": local_metrics["ndcg@10"], "opensearch": remote_metrics["ndcg@10"]},
        "ndcg@10_abs_diff": abs(local_metrics["ndcg@10"] - remote_metrics["ndcg@10"]),
        "recall@100": {"embedded": local_metrics["recall@100"], "opensearch": remote_metrics["recall@100"]},
        "top10_overlap_mean": float(np.mean(overlaps)),
        "top10_overlap_min": float(np.min(overlaps)),
        "top10_identical_fraction": float(np.mean(identical)),
        "index_seconds": {"embedded": embedded_index_s, "opensearch": summary.seconds},
        "search_p50_ms": {
            "embedded": float(np.percentile(local_ms, 50)),
            "opensearch": float(np.percentile(remote_ms, 50)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("SPARSEARCH_TEST_OPENSEARCH_URL", "http://127.0.0.1:9200"))
    parser.add_argument("--data", nargs="+", type=Path, default=[Path("data/cranfield")])
    parser.add_argument("--model", nargs="+", default=["bm25"])
    parser.add_argument("--output", type=Path, default=Path("bench/results/engine_parity.json"))
    args = parser.parse_args()
    rows = [compare(data, model, args.url) for data in args.data for model in args.model]
    result = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "note": "OpenSearch single node (scripts/opensearch, -Xmx1g) on the same machine; one query thread",
        },
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Engine parity: embedded vs OpenSearch (same model, same vectors)",
        "",
        f"Machine: {result['machine']['processor']}, {result['machine']['cpus']} CPUs, Python "
        f"{result['machine']['python']}; {result['machine']['note']}. Produced by `bench/engine_parity.py`.",
        "",
        "| dataset | model | OpenSearch | nDCG@10 embedded | nDCG@10 OpenSearch | abs diff | top-10 overlap "
        "(mean / min) | identical top-10 | search p50 ms (embedded / OpenSearch) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['opensearch_version']} | {row['ndcg@10']['embedded']:.4f} | "
            f"{row['ndcg@10']['opensearch']:.4f} | {row['ndcg@10_abs_diff']:.4f} | "
            f"{row['top10_overlap_mean']:.4f} / {row['top10_overlap_min']:.2f} | "
            f"{row['top10_identical_fraction']:.3f} | "
            f"{row['search_p50_ms']['embedded']:.2f} / {row['search_p50_ms']['opensearch']:.2f} |"
        )
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
