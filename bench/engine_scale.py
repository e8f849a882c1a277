"""Embedded engine at scale: build, size, load, single-thread latency and all-core throughput on
synthetic corpora fitted to a real index, for 10k / 100k (and, with --full, 1M) documents.

1. fit a CorpusProfile on a real index (default: cranfield encoded by --profile-model),
2. per size, in a fresh process: generate the corpus, build the index, then in another fresh
   process open it and time queries (top-10, exact) against a plain numpy/scipy-free baseline
   (numpy.bincount accumulation + partition: what the engine did before its compiled kernel),
3. write bench/results/engine_scale.json and print a markdown table.

Usage: .venv/bin/python bench/engine_scale.py [--full] [--queries 500] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = [10_000, 100_000]
FULL_SIZES = [10_000, 100_000, 1_000_000]


def machine() -> dict[str, object]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}


def profile_index(model: str, work: Path) -> Path:
    from sparsearch.indexer.pipeline import build_embedded_index
    from sparsearch.retrieval.models import load_encoder

    path = work / f"profile-{model}"
    if not path.exists():
        build_embedded_index(Path("data/cranfield"), path, load_encoder(model))
    return path


def build_step(profile_path: Path, n_docs: int, out: Path) -> dict[str, float]:
    from sparsearch.eval.synthetic import CorpusProfile, iter_generated_rows
    from sparsearch.indexer.embedded import EmbeddedIndex, IndexWriter
    from sparsearch.retrieval.contract import Document

    profile = CorpusProfile.from_postings(EmbeddedIndex.open(profile_path).postings)
    chunks = list(iter_generated_rows(profile, n_docs, seed=n_docs))
    started = time.perf_counter()
    fingerprint = EmbeddedIndex.open(profile_path).fingerprint
    with IndexWriter(out, fingerprint, overwrite=True) as writer:
        row = 0
        for indptr, terms, weights in chunks:
            documents = [Document(doc_id=f"d{row + i:07d}", text="") for i in range(len(indptr) - 1)]
            writer.add_csr(documents, indptr, terms, weights, profile.vocab)
            row += len(documents)
    return {"build_s": time.perf_counter() - started}


def numpy_baseline(index, term_ids: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    p = index.postings
    starts, ends = p.indptr[term_ids], p.indptr[term_ids + 1]
    docs = np.concatenate([p.doc_idx[s:e] for s, e in zip(starts, ends, strict=True)])
    values = np.concatenate([p.weights[s:e] * q for s, e, q in zip(starts, ends, weights, strict=True)])
    scores = np.bincount(docs, weights=values, minlength=p.n_docs)
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def query_step(index_path: Path, n_queries: int) -> dict[str, float]:
    from sparsearch.eval.synthetic import generate_queries
    from sparsearch.indexer.embedded import EmbeddedIndex
    from sparsearch.retrieval.contract import EncodedQuery

    started = time.perf_counter()
    index = EmbeddedIndex.open(index_path)
    load_s = time.perf_counter() - started
    queries = [EncodedQuery(q, index.fingerprint) for q in generate_queries(index.postings, n_queries)]
    index.search(queries[0], 10)  # numba's compiled code loads from its cache on first call
    single = []
    for query in queries:
        t0 = time.perf_counter()
        index.search(query, 10)
        single.append((time.perf_counter() - t0) * 1e3)
    baseline = []
    for query in queries[: min(200, n_queries)]:
        term_ids, weights = index._query_terms(query)
        t0 = time.perf_counter()
        numpy_baseline(index, term_ids, weights, 10)
        baseline.append((time.perf_counter() - t0) * 1e3)
    threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    index.search_batch(queries, 10, threads=threads)
    qps = len(queries) / (time.perf_counter() - t0)
    touched = float(np.mean([index.postings_touched(q) for q in queries]))
    postings_bytes = sum(
        (index_path / index.manifest["data_dir"] / f).stat().st_size
        for f in ("indptr.npy", "doc_idx.npy", "weights.npy")
    )
    return {
        "load_s": load_s,
        "p50_ms": float(np.percentile(single, 50)),
        "p95_ms": float(np.percentile(single, 95)),
        "p99_ms": float(np.percentile(single, 99)),
        "numpy_baseline_p50_ms": float(np.percentile(baseline, 50)),
        "qps_all_cores": qps,
        "threads": threads,
        "postings_touched_per_query": touched,
        "postings_bytes": postings_bytes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "n_docs": index.count(),
        "avg_terms_per_doc": index.manifest["avg_terms_per_doc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="include the 1M-document corpus (several minutes)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--profile-model", default="bm25-wordpiece")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sparsearch-bench")
    parser.add_argument("--output", type=Path, default=Path("bench/results/engine_scale.json"))
    parser.add_argument("--step", choices=["build", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step == "build":
        print(json.dumps(build_step(profile_index(args.profile_model, args.work), args.size, args.index)))
        return
    if args.step == "query":
        print(json.dumps(query_step(args.index, args.queries)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    profile_index(args.profile_model, args.work)
    rows = []
    for size in FULL_SIZES if args.full else SIZES:
        index = args.work / f"synthetic-{size}"
        common = [sys.executable, __file__, "--work", str(args.work), "--profile-model", args.profile_model]
        built = json.loads(
            subprocess.run(
                [*common, "--step", "build", "--size", str(size), "--index", str(index)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        measured = json.loads(
            subprocess.run(
                [*common, "--step", "query", "--index", str(index), "--queries", str(args.queries)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        rows.append({"docs": size, **built, **measured})
        shutil.rmtree(index, ignore_errors=True)
        print(json.dumps(rows[-1]), file=sys.stderr)
    result = {"machine": machine(), "profile_model": args.profile_model, "queries": args.queries, "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    columns = [
        ("docs", lambda r: f"{r['docs']:,}"),
        ("terms/doc", lambda r: f"{r['avg_terms_per_doc']:.0f}"),
        ("build s", lambda r: f"{r['build_s']:.1f}"),
        ("postings MB", lambda r: f"{r['postings_bytes'] / 2**20:.0f}"),
        ("load s", lambda r: f"{r['load_s']:.3f}"),
        ("p50 ms", lambda r: f"{r['p50_ms']:.2f}"),
        ("p95 ms", lambda r: f"{r['p95_ms']:.2f}"),
        ("p99 ms", lambda r: f"{r['p99_ms']:.2f}"),
        ("numpy p50 ms", lambda r: f"{r['numpy_baseline_p50_ms']:.2f}"),
        ("QPS all cores", lambda r: f"{r['qps_all_cores']:.0f}"),
        ("peak RSS MB", lambda r: f"{r['peak_rss_mb']:.0f}"),
    ]
    print("| " + " | ".join(name for name, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(fmt(row) for _, fmt in columns) + " |")


if __name__ == "__main__":
    main()
