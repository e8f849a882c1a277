"""Document encoding throughput and nDCG@10 on one machine, in one call (made for a GPU machine; runs on CPU).

1. load the model (``--model``: the shipped ``default``, or e.g. ``minilm-splade-untrained``) and the
   first ``--limit`` documents of ``--data`` (default: all of data/npl, 11,429 abstracts);
2. fit the corpus statistics (IDF), then warm up on a few documents (model load, CUDA kernels);
3. encode every document ``--batch-size`` at a time, timed (``torch.cuda.synchronize`` is implied:
   vectors come back to the host); on CUDA the default model's dense windows run in float16 with
   batches of 512 (``sparsearch.encoders.dense``), a SPLADE model in bfloat16 (``--precision``);
4. build an embedded index in a temporary folder and report nDCG@10 and R@100 on the collection's
   test queries (with ``--limit``, over the partial corpus: a smoke figure, not the collection's);
5. write a JSON result to ``--output`` and print it.

Usage: python bench/gpu_encode.py --output /tmp/gpu.json [--data data/npl --model default --limit 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.corpus import iter_corpus
from sparsearch.encoders.dense import torch_device
from sparsearch.encoders.registry import load_encoder
from sparsearch.eval import aggregate_metrics, load_beir_topics, run_queries


def machine() -> dict[str, object]:
    import torch

    info: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "device": torch_device(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def configure_precision(encoder: object, precision: str, device: str) -> str:
    """Run a SPLADE model's forward pass in bfloat16 on a GPU (its micro-batches sized for one)."""
    options = getattr(encoder, "options", None)
    if options is None:
        return "float16" if device == "cuda" else "float32"  # the default model: see encoders/dense.py
    chosen = precision if precision != "auto" else ("bfloat16" if device == "cuda" else "float32")
    budget = 65536 if device == "cuda" else options.batch_tokens
    encoder.options = options.replace(precision=chosen, batch_tokens=budget, device=device)  # type: ignore[attr-defined]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/npl"))
    parser.add_argument("--model", default="default")
    parser.add_argument("--limit", type=int, default=None, help="encode only the first N documents")
    parser.add_argument("--batch-size", type=int, default=None, help="documents per call (default 256 CPU, 2048 GPU)")
    parser.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    # 1. model and documents
    device = torch_device()
    started = time.perf_counter()
    encoder = load_encoder(args.model)
    documents = list(iter_corpus(args.data))[: args.limit]
    texts = [d.full_text for d in documents]
    batch_size = args.batch_size or (2048 if device == "cuda" else 256)
    precision = configure_precision(encoder, args.precision, device)

    # 2. corpus statistics and warm-up
    encoder.fit(texts)
    encoder.encode_document(texts[:8])
    setup_seconds = time.perf_counter() - started

    # 3. timed encoding
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    vectors = []
    for start in range(0, len(texts), batch_size):
        vectors.extend(encoder.encode_document(texts[start : start + batch_size]))
    encode_seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]

    # 4. quality
    topics = load_beir_topics(args.data)
    with tempfile.TemporaryDirectory() as work:
        with IndexWriter(Path(work) / "index", encoder.fingerprint, overwrite=True) as writer:
            writer.add(documents, vectors)
        run, _, _ = run_queries(writer.index, encoder, topics.queries, depth=100)
    metrics = aggregate_metrics(topics.qrels, run)

    # 5. report
    result = {
        "model": args.model,
        "data": str(args.data),
        "documents": len(texts),
        "partial_corpus": args.limit is not None and args.limit < len(list(iter_corpus(args.data))),
        "device": device,
        "precision": precision,
        "runtime": os.environ.get("SPARSEARCH_ENCODER_RUNTIME", "default"),
        "batch_size": batch_size,
        "setup_seconds": setup_seconds,
        "encode_seconds": encode_seconds,
        "docs_per_second": len(texts) / encode_seconds if encode_seconds > 0 else None,
        "load_average_before_after": [load_before, load_after],
        "avg_terms_per_doc": statistics.fmean(len(v) for v in vectors) if vectors else 0.0,
        "ndcg@10": metrics["ndcg@10"],
        "recall@100": metrics["recall@100"],
        "machine": machine(),
        "command": " ".join(sys.argv),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
