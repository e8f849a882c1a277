"""The indexing section of bench/run.py: what encoding a corpus costs here, and projected at scale.

1. documents per second of each model's document encoder, in one process, interleaved rounds over the
   first ``docs`` cranfield documents (best round kept, so a busy neighbour hurts every row alike):
   bm25, the default model on the exact torch path and on the int8 ONNX runtime (its CPU default), and
   the inference-free SPLADE model ``minilm-splade-untrained``; this also builds the one-off caches
   (the ONNX model, the expansion vocabulary's embeddings) before anything below is timed;
2. the ONNX runtime's speed-up and quality cost: ``sparsearch index`` (wall clock, model load and
   corpus statistics included) and ``sparsearch eval`` of the default model on each collection with
   ``SPARSEARCH_ENCODER_RUNTIME=torch`` and ``=onnx``;
3. one process against a local Ray cluster (``ray start --head``, one CPU actor per core):
   ``sparsearch encode`` of cranfield by the default and a SPLADE model both ways, then
   ``sparsearch index --ray auto --backend opensearch`` into a real OpenSearch, the engine's document
   count checked against the corpus.

The projection to 1M and 10M documents is arithmetic on these rates (bench/report.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

RUNTIME_ENV = "SPARSEARCH_ENCODER_RUNTIME"  # sparsearch.encoders.onnx_dense.RUNTIME_ENV (not imported: no torch here)
RUNTIMES = ("torch", "onnx")
THROUGHPUT_MODELS = [
    ("bm25", "bm25", None),
    ("default (torch)", "default", "torch"),
    ("default (int8 ONNX)", "default", "onnx"),
    ("minilm-splade-untrained (SPLADE)", "minilm-splade-untrained", None),
]
"""(row label, model, runtime or None) of step 1."""
RAY_MODELS = ("default", "minilm-splade-untrained")
"""The models of step 3 (the two-channel default and an inference-free SPLADE); the first one is
also loaded into OpenSearch."""
RAY_PORT = 6390  # not Ray's default 6379, so that a user's own cluster on this machine is left alone
OPENSEARCH_INDEX = "sparsearch-bench-ray"


def _load() -> float:
    return os.getloadavg()[0]


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


# -- 1. documents per second, in process -------------------------------------------------------------
def _with_runtime(encoder: object, runtime: str | None) -> Callable[[list[str]], list]:
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


def throughput(data: Path, docs: int, rounds: int, batch_size: int = 256) -> dict:
    """Documents per second of each :data:`THROUGHPUT_MODELS` row's ``encode_document`` on the first
    ``docs`` documents of ``data`` (corpus statistics fitted on them first, not timed)."""
    from sparsearch.corpus import iter_corpus
    from sparsearch.encoders.registry import load_encoder

    texts = [d.full_text for d in iter_corpus(data)][:docs]
    variants = {}
    for label, model, runtime in THROUGHPUT_MODELS:
        encoder = load_encoder(model)
        encoder.fit(texts)
        variants[label] = _with_runtime(encoder, runtime)
        variants[label](texts[:4])  # warm-up: model load, the ONNX build, the vocabulary embedding
    seconds: dict[str, list[float]] = {label: [] for label in variants}
    loads: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(rounds):
        for label, encode in variants.items():
            started = time.perf_counter()
            for start in range(0, len(texts), batch_size):
                encode(texts[start : start + batch_size])
            seconds[label].append(time.perf_counter() - started)
            loads[label].append(_load())
    rows = [
        {
            "model": label,
            "docs_per_second": len(texts) / min(seconds[label]),
            "docs_per_second_median": len(texts) / statistics.median(seconds[label]),
            "seconds": seconds[label],
            "load_average_1min": loads[label],
        }
        for label in variants
    ]
    return {"data": data.name, "docs": len(texts), "rounds": rounds, "rows": rows}


# -- 2. the runtimes on whole collections -------------------------------------------------------------
def _timed(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd)
    return time.perf_counter() - started, done


def _error(done: subprocess.CompletedProcess) -> str:
    return (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}")[-500:]


def runtime_rows(collections: list[Path], work: Path, cli: Path) -> list[dict]:
    """One row per (collection, runtime): ``sparsearch index --model default`` timed, then ``sparsearch
    eval`` of that index. A failed step gives ``{"error": ...}``."""
    rows = []
    for data in collections:
        documents = _lines(data / "corpus.jsonl")
        for runtime in RUNTIMES:
            row: dict = {"collection": data.name, "runtime": runtime, "docs": documents, "load_before": _load()}
            index, report = work / f"default-{runtime}-{data.name}", work / f"eval-{runtime}-{data.name}.json"
            print(f"[bench] sparsearch index {data.name} ({runtime})", file=sys.stderr, flush=True)
            seconds, done = _timed(
                [str(cli), "index", "--data", str(data), "--index", str(index), "--model", "default", "--overwrite"],
                {RUNTIME_ENV: runtime},
            )
            row["load_after"] = _load()
            if done.returncode != 0:
                rows.append({**row, "error": f"sparsearch index: {_error(done)}"})
                continue
            row.update(seconds=seconds, docs_per_second=documents / seconds)
            _, done = _timed([str(cli), "eval", "--data", str(data), "--index", str(index), "--output", str(report)])
            if done.returncode != 0:
                rows.append({**row, "error": f"sparsearch eval: {_error(done)}"})
                continue
            metrics = json.loads(report.read_text())["metrics"]
            rows.append({**row, "ndcg@10": metrics["ndcg@10"], "recall@100": metrics["recall@100"]})
    return rows


# -- 3. a local Ray cluster ---------------------------------------------------------------------------
@contextlib.contextmanager
def local_ray_cluster(port: int = RAY_PORT) -> Iterator[str]:
    """``ray start --head --block`` on ``port`` with one CPU per core; yields ``127.0.0.1:port`` once
    it answers and stops the cluster (the blocking head takes its processes down) on the way out.

    Raises:
        RuntimeError: the head did not come up within two minutes (its output).
    """
    # ray's CLI through the interpreter: the `ray` script sits in the cached environment, not in .venv/bin
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
               f"--num-cpus={os.cpu_count() or 1}", "--include-dashboard=false", "--disable-usage-stats",
               "--block"]  # fmt: skip
    log = (Path(os.environ.get("TMPDIR", "/tmp")) / f"sparsearch-bench-ray-{port}.log").open("w")
    head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`{' '.join(command)}` did not come up: {Path(log.name).read_text()[-500:]}")
            time.sleep(1)
        time.sleep(3)  # the GCS answers before the raylet has registered the node
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)
        log.close()


def _opensearch_count(url: str, index: str) -> int:
    from opensearchpy import OpenSearch

    client = OpenSearch(url, timeout=60)
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def cluster_rows(data: Path, work: Path, cli: Path, opensearch_url: str | None) -> dict:
    """``sparsearch encode`` of ``data`` in one process and on a local Ray cluster, then ``sparsearch index
    --ray auto --backend opensearch`` (when ``opensearch_url``), each timed end to end."""
    data, work = data.resolve(), work.resolve()  # the commands run in work
    documents, workers = _lines(data / "corpus.jsonl"), os.cpu_count() or 1
    rows: list[dict] = []

    def run(label: str, command: list[str], env: dict[str, str] | None = None) -> dict:
        print(f"[bench] {label}", file=sys.stderr, flush=True)
        row: dict = {"run": label, "docs": documents, "load_before": _load(), "command": " ".join(command[1:])}
        seconds, done = _timed([str(cli), *command], env, cwd=work)  # index --ray's ALIAS.encoding lands in work
        row["load_after"] = _load()
        if done.returncode != 0:
            return {**row, "error": _error(done)}
        return {**row, "seconds": seconds, "docs_per_second": documents / seconds}

    def encode(model: str, output: str) -> list[str]:
        return ["encode", "--data", str(data), "--model", model, "--overwrite", "--output", str(work / output)]

    for model in RAY_MODELS:
        rows.append({"model": model, **run(f"{model}: one process", encode(model, f"{model}-one-process"))})
    try:
        with local_ray_cluster() as address:
            env = {"RAY_ADDRESS": address}
            ray_args = ["--ray", "auto", "--workers", str(workers)]
            for model in RAY_MODELS:
                label = f"{model}: Ray, {workers} CPU actors"
                rows.append({"model": model, **run(label, [*encode(model, f"{model}-ray"), *ray_args], env)})
            if opensearch_url:
                shutil.rmtree(work / f"{OPENSEARCH_INDEX}.encoding", ignore_errors=True)  # encode again, not resume
                load = ["index", "--data", str(data), "--model", RAY_MODELS[0], "--backend", "opensearch", "--url",
                        opensearch_url, "--index", OPENSEARCH_INDEX, *ray_args]  # fmt: skip
                row = run(f"{RAY_MODELS[0]}: Ray, {workers} CPU actors, into OpenSearch", load, env)
                if "error" not in row:
                    row["engine_count"] = _opensearch_count(opensearch_url, OPENSEARCH_INDEX)
                rows.append({"model": RAY_MODELS[0], **row})
    except RuntimeError as error:
        rows.append({"run": "local Ray cluster", "error": str(error)})
    return {"data": data.name, "workers": workers, "rows": rows}


def indexing(collections: list[Path], work: Path, cli: Path, opensearch_url: str | None, docs: int = 200,
             rounds: int = 2) -> dict:  # fmt: skip
    """Steps 1-3 (module docstring); ``collections[0]`` is the one of steps 1 and 3."""
    work.mkdir(parents=True, exist_ok=True)
    return {
        "throughput": throughput(collections[0], docs, rounds),
        "runtimes": runtime_rows(collections, work, cli),
        "cluster": cluster_rows(collections[0], work, cli, opensearch_url),
        "cores": os.cpu_count(),
    }
