"""How well the engine picks its kernel: per query, the dense and MaxScore kernels timed on the same
synthetic corpus as bench/run.py's scale section, against the choice ``search_one`` makes.

    .venv/bin/python bench/kernel_choice.py                      # 1M documents (~3 min on 2 cores)
    .venv/bin/python bench/kernel_choice.py --docs 100000 --queries 100

Two query sets: the scale section's (5-15 tokens drawn by document frequency, IDF weights: what
learned sparse queries look like) and BM25-like ones (one rare token weighted 8, four of the most
frequent tokens weighted 0.3). For each, the median per-query time of always-dense, always-MaxScore,
the engine's rule (its estimate included) and a per-query oracle (the faster kernel, no estimate).
The constants the rule uses (``MAXSCORE_MAX_SHARE``, ``DENSE_SCAN_COST``) were chosen from this
output at 1M documents. Writes a Markdown table to ``bench/results/kernel_choice.md``; timings, not asserts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent


def corpus(profile_index: Path, n_docs: int, seed: int):  # noqa: ANN201 - Postings
    """Postings drawn from the profile of an encoded collection (bench/run.py's scale corpora)."""
    from sparsearch.backends.embedded.index import EmbeddedIndex
    from sparsearch.eval.synthetic import CorpusProfile, generate_postings

    return generate_postings(CorpusProfile.from_postings(EmbeddedIndex.open(profile_index).postings), n_docs, seed)


def query_sets(postings, n_queries: int, seed: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:  # noqa: ANN001
    """``{"learned": [...], "bm25-like": [...]}``: (term ids int64, weights float64) per query."""
    from sparsearch.eval.synthetic import generate_queries

    term_index = {token: i for i, token in enumerate(postings.vocab)}
    learned = []
    for query in generate_queries(postings, n_queries, seed=seed):
        pairs = sorted((term_index[t], w) for t, w in query.items())
        learned.append((np.array([t for t, _ in pairs], dtype=np.int64), np.array([w for _, w in pairs])))
    rng = np.random.default_rng(seed)
    df = np.diff(np.asarray(postings.indptr))
    frequent = np.argsort(-df)[:50]
    rare = np.flatnonzero((df > 50) & (df < 5000))
    skewed = []
    for _ in range(n_queries):
        terms = np.array([rng.choice(rare), *rng.choice(frequent, 4, replace=False)], dtype=np.int64)
        skewed.append((terms, np.array([8.0, 0.3, 0.3, 0.3, 0.3])))
    return {"learned": learned, "bm25-like": skewed}


def timed(function, *args, repeats: int = 3) -> float:  # noqa: ANN001
    """Best of ``repeats`` wall times of ``function(*args)`` in ms (after one untimed call)."""
    function(*args)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def measure(postings, queries: list[tuple[np.ndarray, np.ndarray]], k: int = 10) -> dict[str, float]:  # noqa: ANN001
    """Median per-query ms of each strategy, and how often the rule picked MaxScore."""
    from sparsearch.backends.embedded.kernels import (
        MAXSCORE,
        PROBE_COST,
        WINDOW,
        dense_top_k,
        maxscore_top_k,
        search_one,
    )

    n = postings.n_docs
    arrays = (np.asarray(postings.indptr), np.asarray(postings.doc_idx), np.asarray(postings.weights))
    bounds = np.asarray(postings.max_weight).copy()
    rank = np.arange(n, dtype=np.int32)
    scores, touched = np.zeros(n), np.zeros(n, dtype=np.int32)
    acc, values = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
    rows = []
    for terms, weights in queries:
        dense = timed(dense_top_k, *arrays, terms, weights, rank, k, acc, touched, values)
        pruned = timed(maxscore_top_k, *arrays, bounds, terms, weights, rank, k, scores, touched, WINDOW, PROBE_COST)
        chosen = (*arrays, bounds, terms, weights, rank, k, scores, touched, acc, values)
        rule = timed(search_one, *chosen)
        rows.append((dense, pruned, rule, min(dense, pruned), search_one(*chosen)[2] == MAXSCORE))
    table = np.array(rows, dtype=np.float64)
    return {
        "dense": float(np.median(table[:, 0])),
        "maxscore": float(np.median(table[:, 1])),
        "rule": float(np.median(table[:, 2])),
        "oracle": float(np.median(table[:, 3])),
        "maxscore_share": float(table[:, 4].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile", type=Path, default=None, help="an encoded collection's index (default: bench/run.py's cache)"
    )
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "kernel_choice.md")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    import run

    profile = args.profile or run.cached_index(
        run.default_model(), run.bundled_collections()[0], run.cache_dir() / "bench-work"
    )
    postings = corpus(profile, args.docs, seed=args.docs)
    m = run.machine()
    lines = [
        f"`{' '.join(['bench/kernel_choice.py', *sys.argv[1:]])}` at {time.strftime('%Y-%m-%d %H:%M %Z')}: "
        f"{args.docs:,} documents drawn from the profile of {profile.name}, top-10, median ms per query "
        f"(best of 3 per query). {m['cpu']}, {m['cores']} cores; load average {run.load_average()} at the end.",
        "",
        "| queries | always dense | always MaxScore | engine's rule | oracle | rule picks MaxScore |",
        "|---|---|---|---|---|---|",
    ]
    for name, queries in query_sets(postings, args.queries, args.seed).items():
        r = measure(postings, queries)
        lines.append(f"| {name} | {r['dense']:.3f} | {r['maxscore']:.3f} | {r['rule']:.3f} | {r['oracle']:.3f} | "
                     f"{r['maxscore_share']:.0%} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
