"""Documents per second of each model's document encoder on CPU: bm25, the shipped default model
(exact torch path and int8 ONNX path) and ``minilm-splade-untrained``.

1. load the models and the first ``--docs`` cranfield documents; fit each model's corpus statistics
   on them (not timed);
2. time ``encode_document`` over the documents (``--batch-size`` per call, as ``sparsearch index``
   does), ``--rounds`` times with the variants interleaved, so that a busy neighbour on a shared
   machine hurts them alike; the best round is reported, with the median and the load average;
3. write ``bench/results/encode_models.json`` and ``bench/results/encode_models.md``.

(``bench/encode_speed.py`` compares sentence-transformers' SPLADE path with sparsearch's.)

Usage: .venv/bin/python bench/encode_models.py [--docs 200 --rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sparsearch.corpus import iter_corpus
from sparsearch.encoders.onnx_dense import RUNTIME_ENV
from sparsearch.encoders.registry import load_encoder

RESULTS = Path(__file__).resolve().parent / "results"


def with_runtime(encoder: object, runtime: str | None) -> Callable[[list[str]], list]:
    def encode(texts: list[str]) -> list:
        previous = os.environ.get(RUNTIME_ENV)
        if runtime is not None:
            os.environ[RUNTIME_ENV] = runtime
        try:
            return encoder.encode_document(texts)  # type: ignore[attr-defined]
        finally:
            if previous is None:
                os.environ.pop(RUNTIME_ENV, None)
            else:
                os.environ[RUNTIME_ENV] = previous

    return encode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/cranfield"))
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    # 1. models and documents
    texts = [d.full_text for d in iter_corpus(args.data)][: args.docs]
    variants: dict[str, Callable[[list[str]], list]] = {}
    for name, model, runtime in [
        ("bm25", "bm25", None),
        ("default (torch)", "default", "torch"),
        ("default (onnx int8)", "default", "onnx"),
        ("minilm-splade-untrained", "minilm-splade-untrained", None),
    ]:
        encoder = load_encoder(model)
        encoder.fit(texts)
        variants[name] = with_runtime(encoder, runtime)
        variants[name](texts[:4])  # warm-up: model loads, the ONNX build, first-call allocations

    # 2. interleaved rounds
    load_before = os.getloadavg()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    loads: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, encode in variants.items():
            started = time.perf_counter()
            for start in range(0, len(texts), args.batch_size):
                encode(texts[start : start + args.batch_size])
            seconds[name].append(time.perf_counter() - started)
            loads[name].append(os.getloadavg()[0])
    load_after = os.getloadavg()

    # 3. report
    rows = {
        name: {
            "docs_per_second": len(texts) / min(times),
            "docs_per_second_median": len(texts) / statistics.median(times),
            "seconds": times,
            "load_average_1min": loads[name],
        }
        for name, times in seconds.items()
    }
    report = {
        "data": str(args.data),
        "docs": len(texts),
        "rounds": args.rounds,
        "cores": os.cpu_count(),
        "load_before": list(load_before),
        "load_after": list(load_after),
        "command": "python bench/encode_models.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encode_models.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    lines = [
        "# Documents per second by model (CPU)",
        "",
        f"{report['docs']} {args.data.name} documents, {report['cores']} cores, best of {args.rounds} interleaved "
        f"rounds; load average {load_before[0]:.1f} before / {load_after[0]:.1f} after (shared machine: compare "
        f"rows with each other, not with another run). Command: `{report['command']}`.",
        "",
        "| model | docs/s (best) | docs/s (median) | load (1 min) during its rounds |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        load_text = ", ".join(f"{x:.1f}" for x in row["load_average_1min"])
        lines.append(f"| {name} | {row['docs_per_second']:.1f} | {row['docs_per_second_median']:.1f} | {load_text} |")
    (RESULTS / "encode_models.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
