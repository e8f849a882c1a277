"""Choosing hybrid search's default fusion on held-out pseudo-queries (never on test queries).

The rule (docs/method.md#hybrid-search): over the grid below, the fusion with the highest mean
held-out pseudo-query nDCG@10 across the corpora wins; ties go to min-max, then to the smaller dense
weight (the cheaper-to-explain, more lexical choice).

1. open each corpus's embedded index, built with the default model and ``--dense``
   (``sparsearch index --data data/NAME --index DIR/NAME --dense``; built here when missing);
2. draw pseudo-queries from the corpus's documents (:mod:`sparsearch.training.pseudo_queries`, seed 13)
   and keep the held-out split; a query's one relevant document is its source, seen as
   ``positive_text`` (the query cut out of it 90% of the time, so copying words is not a free win);
3. per query, the hybrid candidates exactly as search makes them, on the corpus with the source
   replaced by its positive: the index's sparse top 100 without the source, plus the positive (its
   sparse score and windows from the default model, one forward pass), cut to the top 100;
4. every fusion of the grid re-ranks the same candidates (:func:`sparsearch.hybrid.fused_top_k`);
   nDCG@10 via ir-measures (:func:`sparsearch.eval.metrics.aggregate_metrics`);
5. results to bench/results/hybrid_fusion.json and .md (the table the default cites).

The collections' queries.jsonl and qrels are never opened.

Usage: .venv/bin/python bench/hybrid_fusion.py --indexes /tmp/hybrid-indexes [--corpora cranfield cisi]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from sparsearch.corpus import iter_corpus
from sparsearch.encoders.dense import embed_query, encode_with_windows
from sparsearch.eval.metrics import aggregate_metrics
from sparsearch.hybrid import CANDIDATES, Fusion, fused_top_k, max_window_scores
from sparsearch.search import Searcher
from sparsearch.training.pseudo_queries import PseudoQueryGenerator
from sparsearch.types import dot, iter_batches

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ("cranfield", "cisi", "cacm", "npl")
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
GRID = [Fusion(method, weight) for method in ("minmax", "rrf") for weight in WEIGHTS]
SEED = 13


def label(fusion: Fusion) -> str:
    return f"{fusion.method}:{fusion.dense_weight:g}"


def corpus_scores(data: Path, index: Path) -> dict[str, object]:
    """Steps 2-4 for one corpus: held-out nDCG@10 of every fusion of :data:`GRID`."""
    documents = list(iter_corpus(data))
    queries = [q for q in PseudoQueryGenerator(documents, seed=SEED).generate() if q.split == "heldout"]
    with Searcher.open(index) as searcher:
        backend, encoder = searcher.backend, searcher.encoder
        positives: list[tuple[dict[str, float], np.ndarray]] = []
        for batch in iter_batches(queries, 64):
            vectors, windows = encode_with_windows(encoder, [q.positive_text for q in batch])
            positives += [(vectors[i], windows.document(i)) for i in range(len(batch))]
        print(f"{data.name}: {len(queries)} held-out queries, positives encoded", flush=True)  # noqa: T201
        runs: dict[str, dict[str, dict[str, float]]] = {label(f): {} for f in GRID}
        qrels = {q.query_id: {q.doc_id: 1} for q in queries}
        for query, (positive, positive_windows) in zip(queries, positives, strict=True):
            encoded = encoder.encode_query(query.text)
            if encoded.is_empty:
                continue
            found = backend.search_candidates([encoded], CANDIDATES + 1)[0]
            pool = [(hit.doc_id, hit.score, rows) for hit, rows in found if hit.doc_id != query.doc_id]
            score = dot(encoded.weights, positive)
            if score > 0:  # a document sharing no token is never a sparse candidate
                pool.append((query.doc_id, score, positive_windows))
            pool = sorted(pool, key=lambda item: (-item[1], item[0]))[:CANDIDATES]
            if not pool:
                continue
            doc_ids = [doc_id for doc_id, _, _ in pool]
            sparse = np.asarray([s for _, s, _ in pool], dtype=np.float64)
            dense = max_window_scores(embed_query(query.text), [rows for _, _, rows in pool])
            for fusion in GRID:
                hits = fused_top_k(doc_ids, sparse, dense, fusion, 10)
                runs[label(fusion)][query.query_id] = {hit.doc_id: hit.score for hit in hits}
    ndcg = {name: aggregate_metrics(qrels, run, ["ndcg@10"])["ndcg@10"] for name, run in runs.items()}
    return {"documents": len(documents), "heldout_queries": len(queries), "ndcg@10": ndcg}


def choose(per_corpus: dict[str, dict[str, object]]) -> tuple[Fusion, dict[str, float]]:
    """The rule of the module docstring."""
    means = {label(f): float(np.mean([c["ndcg@10"][label(f)] for c in per_corpus.values()])) for f in GRID}  # type: ignore[index]
    best = max(GRID, key=lambda f: (round(means[label(f)], 6), f.method == "minmax", -f.dense_weight))
    return best, means


def write_report(result: dict[str, object], output: Path) -> None:
    per_corpus: dict[str, dict] = result["corpora"]  # type: ignore[assignment]
    names = list(per_corpus)
    lines = [
        "# Hybrid fusion: held-out pseudo-query nDCG@10 (bench/hybrid_fusion.py)",
        "",
        f"Default model + `--dense`, sparse top {CANDIDATES} candidates; pseudo-queries seed {SEED}, held-out split, "
        "the source document (query cut out) relevant. Test queries never used.",
        "",
        "| fusion | " + " | ".join(f"{n} ({per_corpus[n]['heldout_queries']} q)" for n in names) + " | mean |",
        "|---" * (len(names) + 2) + "|",
    ]
    for fusion in GRID:
        name = label(fusion)
        cells = [f"{per_corpus[n]['ndcg@10'][name]:.4f}" for n in names]
        mark = " **(chosen)**" if name == result["chosen"] else ""
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + f" | {result['mean'][name]:.4f} |")  # type: ignore[index]
    lines += ["", f"Chosen: `{result['chosen']}` (rule: best mean; ties: min-max, then the smaller dense weight).", ""]
    output.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")
    output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--indexes", type=Path, required=True, help="DIR/<corpus>: indexes built with --dense")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "hybrid_fusion")
    args = parser.parse_args()
    started = time.perf_counter()
    per_corpus = {}
    for name in args.corpora:
        data, index = ROOT / "data" / name, args.indexes / name
        cached = args.indexes / f"{name}.fusion.json"  # per-corpus scores, reused by a rerun
        if cached.is_file():
            per_corpus[name] = json.loads(cached.read_text(encoding="utf-8"))
            continue
        if not (index / "manifest.json").is_file():  # step 1
            from sparsearch.encoders.registry import load_encoder
            from sparsearch.jobs.build_embedded import build_embedded_index

            build_embedded_index(data, index, load_encoder("default"), dense=True)
        per_corpus[name] = corpus_scores(data, index)
        cached.write_text(json.dumps(per_corpus[name]), encoding="utf-8")
        print(f"{name}: {per_corpus[name]['heldout_queries']} held-out queries")  # noqa: T201 - a script
    best, means = choose(per_corpus)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "candidates": CANDIDATES,
        "seed": SEED,
        "corpora": per_corpus,
        "mean": means,
        "chosen": label(best),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_report(result, args.output)
    print(f"chosen {label(best)}: mean held-out nDCG@10 {means[label(best)]:.4f}")  # noqa: T201


if __name__ == "__main__":
    main()
