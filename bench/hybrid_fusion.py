"""Choosing hybrid search's default candidate set and fusion on held-out pseudo-queries (never on test queries).

The rule (docs/method.md#hybrid-search): over the grid below (candidate set x fusion), the entry with
the highest mean held-out pseudo-query nDCG@10 across the corpora wins; ties go to min-max, then to
the smaller dense weight (the cheaper-to-explain, more lexical choice), then to the sparse-only
candidate set (the simpler one).

1. open each corpus's embedded index, built with the default model and ``--dense``
   (``sparsearch index --data data/NAME --index DIR/NAME --dense``; built here when missing);
2. draw pseudo-queries from the corpus's documents (:mod:`sparsearch.training.pseudo_queries`, seed 13)
   and keep the held-out split; a query's one relevant document is its source, seen as
   ``positive_text`` (the query cut out of it 90% of the time, so copying words is not a free win);
3. per query, the hybrid candidates exactly as search makes them, on the corpus with the source
   replaced by its positive (its sparse vector and windows from the default model, one forward pass):

   * ``sparse``: the index's sparse top 100 without the source, plus the positive, cut to the top 100;
   * ``union``: that, plus the exact dense top 100 (best window; the index's exhaustive dense search
     without the source, plus the positive, cut to 100), each with its exact sparse score;

4. every fusion of the grid re-ranks each candidate set (:func:`sparsearch.hybrid.fused_top_k`);
   nDCG@10 via ir-measures (:func:`sparsearch.eval.metrics.aggregate_metrics`);
5. results to bench/results/hybrid_fusion.json and .md (the table the defaults cite).

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
from sparsearch.hybrid import CANDIDATE_SETS, CANDIDATES, Fusion, fused_top_k, max_window_scores
from sparsearch.search import Searcher
from sparsearch.training.pseudo_queries import PseudoQueryGenerator
from sparsearch.types import dot, iter_batches

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ("cranfield", "cisi", "cacm", "npl")
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
FUSIONS = [Fusion(method, weight) for method in ("minmax", "rrf") for weight in WEIGHTS]
GRID = [(candidates, fusion) for candidates in CANDIDATE_SETS for fusion in FUSIONS]
SEED = 13
CACHE_SUFFIX = ".fusion-candidates.json"  # per-corpus scores, reused by a rerun (older caches lack "union")


def label(candidates: str, fusion: Fusion) -> str:
    return f"{candidates}/{fusion.method}:{fusion.dense_weight:g}"


def top(pool: list[tuple[str, float]], n: int) -> list[tuple[str, float]]:
    """The best ``n`` of ``(doc_id, score)``: score descending, then ``doc_id``, as the index orders."""
    return sorted(pool, key=lambda item: (-item[1], item[0]))[:n]


def corpus_scores(data: Path, index: Path) -> dict[str, object]:
    """Steps 2-4 for one corpus: held-out nDCG@10 of every entry of :data:`GRID`."""
    documents = list(iter_corpus(data))
    queries = [q for q in PseudoQueryGenerator(documents, seed=SEED).generate() if q.split == "heldout"]
    with Searcher.open(index) as searcher:
        backend, encoder = searcher.backend, searcher.encoder
        snapshot = backend.snapshot()
        positives: list[tuple[dict[str, float], np.ndarray]] = []
        for batch in iter_batches(queries, 64):
            vectors, windows = encode_with_windows(encoder, [q.positive_text for q in batch])
            positives += [(vectors[i], windows.document(i)) for i in range(len(batch))]
        print(f"{data.name}: {len(queries)} held-out queries, positives encoded", flush=True)  # noqa: T201
        runs: dict[str, dict[str, dict[str, float]]] = {label(c, f): {} for c, f in GRID}
        qrels = {q.query_id: {q.doc_id: 1} for q in queries}
        union_sizes = []
        for query, (positive, positive_windows) in zip(queries, positives, strict=True):
            encoded = encoder.encode_query(query.text)
            if encoded.is_empty:
                continue
            weights = {token: w for token, w in encoded.weights.items() if w > 0}
            q_embedding = embed_query(query.text)
            # sparse side: the index without the source, plus the positive if it shares a token
            found = backend.search_candidates([encoded], CANDIDATES + 1)[0]
            sparse_pool = [(hit.doc_id, hit.score) for hit, _ in found if hit.doc_id != query.doc_id]
            positive_sparse = dot(encoded.weights, positive)
            if positive_sparse > 0:  # a document sharing no token is never a sparse candidate
                sparse_pool.append((query.doc_id, positive_sparse))
            sparse_pool = top(sparse_pool, CANDIDATES)
            # dense side: the exhaustive dense top, again without the source, plus the positive
            dense_found = backend.dense_search(q_embedding[None, :], CANDIDATES + 1)[0]
            dense_pool = [(hit.doc_id, hit.score) for hit in dense_found if hit.doc_id != query.doc_id]
            if len(positive_windows):
                dense_pool.append((query.doc_id, float(max_window_scores(q_embedding, [positive_windows])[0])))
            dense_pool = top(dense_pool, CANDIDATES)
            sparse_of = dict(sparse_pool)
            extra = [d for d, _ in dense_pool if d not in sparse_of and d != query.doc_id]
            sparse_of.update(zip(extra, snapshot.sparse_scores(weights, extra).tolist(), strict=True))
            if query.doc_id not in sparse_of and any(d == query.doc_id for d, _ in dense_pool):
                sparse_of[query.doc_id] = positive_sparse
            pools = {"sparse": [d for d, _ in sparse_pool], "union": list(sparse_of)}
            union_sizes.append(len(pools["union"]))
            windows_of = {d: positive_windows if d == query.doc_id else snapshot.dense_windows(d) for d in sparse_of}
            for candidates, doc_ids in pools.items():
                if not doc_ids:
                    continue
                sparse = np.asarray([sparse_of[d] for d in doc_ids], dtype=np.float64)
                dense = max_window_scores(q_embedding, [windows_of[d] for d in doc_ids])
                for fusion in FUSIONS:
                    hits = fused_top_k(doc_ids, sparse, dense, fusion, 10)
                    runs[label(candidates, fusion)][query.query_id] = {hit.doc_id: hit.score for hit in hits}
    ndcg = {name: aggregate_metrics(qrels, run, ["ndcg@10"])["ndcg@10"] for name, run in runs.items()}
    return {
        "documents": len(documents),
        "heldout_queries": len(queries),
        "mean_union_candidates": float(np.mean(union_sizes)) if union_sizes else 0.0,
        "ndcg@10": ndcg,
    }


def choose(per_corpus: dict[str, dict[str, object]]) -> tuple[tuple[str, Fusion], dict[str, float]]:
    """The rule of the module docstring."""
    means = {
        label(c, f): float(np.mean([r["ndcg@10"][label(c, f)] for r in per_corpus.values()]))  # type: ignore[index]
        for c, f in GRID
    }
    best = max(
        GRID,
        key=lambda e: (round(means[label(*e)], 6), e[1].method == "minmax", -e[1].dense_weight, e[0] == "sparse"),
    )
    return best, means


def write_report(result: dict[str, object], output: Path) -> None:
    per_corpus: dict[str, dict] = result["corpora"]  # type: ignore[assignment]
    names = list(per_corpus)
    lines = [
        "# Hybrid fusion: held-out pseudo-query nDCG@10 (bench/hybrid_fusion.py)",
        "",
        f"Default model + `--dense`; candidates: `sparse` = sparse top {CANDIDATES}, `union` = sparse top {CANDIDATES} "
        f"and exact dense top {CANDIDATES} (mean union size: "
        + ", ".join(f"{n} {per_corpus[n]['mean_union_candidates']:.0f}" for n in names)
        + f"); pseudo-queries seed {SEED}, held-out split, the source document (query cut out) relevant. "
        "Test queries never used.",
        "",
        "| candidates / fusion | "
        + " | ".join(f"{n} ({per_corpus[n]['heldout_queries']} q)" for n in names)
        + " | mean |",
        "|---" * (len(names) + 2) + "|",
    ]
    for candidates, fusion in GRID:
        name = label(candidates, fusion)
        cells = [f"{per_corpus[n]['ndcg@10'][name]:.4f}" for n in names]
        mark = " **(chosen)**" if name == result["chosen"] else ""
        mean = result["mean"][name]  # type: ignore[index]
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + f" | {mean:.4f} |")
    lines += [
        "",
        f"Chosen: `{result['chosen']}` (rule: best mean; ties: min-max, then the smaller dense weight, "
        "then sparse-only candidates).",
        "",
    ]
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
        cached = args.indexes / f"{name}{CACHE_SUFFIX}"
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
        "chosen": label(*best),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_report(result, args.output)
    print(f"chosen {label(*best)}: mean held-out nDCG@10 {means[label(*best)]:.4f}")  # noqa: T201


if __name__ == "__main__":
    main()
