"""What every engine adapter shares: the corpus files, the timing protocol and the command line.

An adapter is a script ``bench/peers/adapter_<engine>.py`` that defines an :class:`Engine` subclass and calls
:func:`main`. ``bench/run.py`` runs it twice, each time in a fresh process of the right interpreter
(the project's for the embedded engine, OpenSearch and bm25s; the peers' virtualenv for PISA,
Seismic, Lucene and splade-index)::

    python bench/peers/adapter_pisa.py build JOB.json OUT.json    # build the index, time it, measure it
    python bench/peers/adapter_pisa.py query JOB.json OUT.json    # open it, time queries, return the top-k

This module imports only numpy and the standard library, so it runs under either interpreter.

Corpus folder (written by ``bench/run.py``; row i of docs.npz is the document whose id is ``str(i)``):
    docs.npz      indptr int64 (n_docs + 1,), term_ids int32 (nnz,), weights float32 (nnz,): CSR rows
                  over vocab.json, term ids ascending within a row
    queries.npz   the same for the queries (weights float64)
    vocab.json    list of tokens
    texts.jsonl   optional: {"text": ...} per document, for text engines (bm25s)
    query_texts.json  optional: the query strings, in queries.npz order

Timing protocol (the same for every engine, so ratios are meaningful):
    load_s         open the built index from disk in a fresh process
    latency        one thread, one query at a time, ``repeats`` passes over all queries after a warm-up
                   pass; p50/p95/p99 per pass, the median pass reported (and every pass kept)
    qps            all cores: the engine's own batch/multi-threaded search over all queries,
                   ``repeats`` times, median reported
    peak_rss_mb    VmHWM (peak resident memory) of the query process (of the server for a server engine)
    top_k          the result of the last single-thread pass, as document rows
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


class Corpus:
    """A benchmark corpus as CSR rows (see the module docstring for the files). Arrays load on first
    use, so a query process that never reads the documents does not count them in its peak RSS."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._docs = np.load(path / "docs.npz")
        self._queries = np.load(path / "queries.npz")
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        return cls(Path(path))

    def _array(self, name: str, source, key: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = source[key]
        return self._cache[name]

    @property
    def vocab(self) -> list[str]:
        if "vocab" not in self._cache:
            self._cache["vocab"] = json.loads((self.path / "vocab.json").read_text(encoding="utf-8"))
        return self._cache["vocab"]

    doc_indptr = property(lambda self: self._array("doc_indptr", self._docs, "indptr"))
    doc_terms = property(lambda self: self._array("doc_terms", self._docs, "term_ids"))
    doc_weights = property(lambda self: self._array("doc_weights", self._docs, "weights"))
    query_indptr = property(lambda self: self._array("query_indptr", self._queries, "indptr"))
    query_terms = property(lambda self: self._array("query_terms", self._queries, "term_ids"))
    query_weights = property(lambda self: self._array("query_weights", self._queries, "weights"))

    @property
    def n_docs(self) -> int:
        return len(self.doc_indptr) - 1

    @property
    def n_queries(self) -> int:
        return len(self.query_indptr) - 1

    def doc(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Term ids and weights of document row ``i``."""
        s, e = self.doc_indptr[i], self.doc_indptr[i + 1]
        return self.doc_terms[s:e], self.doc_weights[s:e]

    def query(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.query_indptr[i], self.query_indptr[i + 1]
        return self.query_terms[s:e], self.query_weights[s:e]

    def query_dicts(self) -> list[dict[str, float]]:
        return [{self.vocab[t]: float(w) for t, w in zip(*self.query(i), strict=True)} for i in range(self.n_queries)]

    def texts(self) -> list[str]:
        with (self.path / "texts.jsonl").open(encoding="utf-8") as handle:
            return [json.loads(line)["text"] for line in handle]

    def query_texts(self) -> list[str]:
        return json.loads((self.path / "query_texts.json").read_text(encoding="utf-8"))


class Engine:
    """One engine under test. Subclasses set ``name`` and implement the five methods."""

    name = "engine"

    def __init__(self, corpus: Corpus, index_dir: Path, options: dict) -> None:
        self.corpus = corpus
        self.index_dir = index_dir
        self.options = options

    def build(self) -> None:
        """Build the index from ``self.corpus`` into ``self.index_dir``."""
        raise NotImplementedError

    def open(self) -> None:
        """Open the built index (timed as the load time)."""
        raise NotImplementedError

    def prepare_queries(self) -> list:
        """The queries in the engine's own form (not timed)."""
        raise NotImplementedError

    def search(self, query, k: int) -> list[int]:
        """Top-``k`` document rows of one prepared query, best first, on the calling thread."""
        raise NotImplementedError

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        """Top-``k`` rows of every query using ``threads`` cores (the engine's own parallel search)."""
        raise NotImplementedError

    def variants(self) -> list[dict]:
        """Query-time settings to measure one after the other on the same open index (e.g. Seismic's
        heap factor); each is passed to :meth:`set_variant`. One empty variant by default."""
        return [{}]

    def set_variant(self, variant: dict) -> None:
        pass

    def describe(self) -> dict:
        """Settings worth reporting (quantisation scale, query algorithm, versions)."""
        return {}

    def index_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.index_dir.rglob("*") if f.is_file())

    def peak_rss_mb(self) -> float:
        return vm_hwm_mb()

    def close(self) -> None:
        pass


def vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak resident memory (MB) of a process: ``VmHWM`` of /proc/PID/status. Not ``ru_maxrss``: Linux
    carries a parent's ``ru_maxrss`` into children it forks, so every engine would report the
    benchmark driver's peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _percentiles(values_ms: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": float(np.percentile(values_ms, q)) for q in (50, 95, 99)}


def _median_pass(passes: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.median([p[key] for p in passes])) for key in passes[0]}


def time_queries(engine: Engine, k: int, repeats: int, threads: int) -> dict:
    """The timing protocol of the module docstring, for every variant of ``engine``."""
    queries = engine.prepare_queries()
    results = []
    for variant in engine.variants():
        engine.set_variant(variant)
        for query in queries[: min(50, len(queries))]:  # warm-up: caches, JIT, lazy loading
            engine.search(query, k)
        passes, top_k = [], []
        for _ in range(repeats):
            latencies, top_k = [], []
            for query in queries:
                t0 = time.perf_counter()
                top = engine.search(query, k)
                latencies.append((time.perf_counter() - t0) * 1e3)
                top_k.append([int(d) for d in top])
            passes.append({**_percentiles(latencies), "mean_ms": float(np.mean(latencies))})
        engine.search_batch(queries[: min(200, len(queries))], k, threads)  # warm-up of the parallel path
        qps = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            engine.search_batch(queries, k, threads)
            qps.append(len(queries) / (time.perf_counter() - t0))
        results.append(
            {
                "variant": variant,
                "latency": _median_pass(passes),
                "latency_passes": passes,
                "qps": float(np.median(qps)),
                "qps_passes": qps,
                "top_k": top_k,
            }
        )
    return {"variants": results, "threads": threads, "queries": len(queries)}


def main(engine_class: type[Engine]) -> None:
    """``python ADAPTER.py build|query JOB.json OUT.json``: JOB has corpus, index_dir, k, repeats,
    threads and engine options; OUT receives the measurements as JSON."""
    step, job_file, out_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    job = json.loads(job_file.read_text())
    corpus = Corpus.load(job["corpus"])
    engine = engine_class(corpus, Path(job["index_dir"]), job.get("options", {}))
    out: dict = {"engine": engine.name}
    if step == "build":
        engine.index_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        engine.build()
        out["build_s"] = time.perf_counter() - t0
        out["index_bytes"] = engine.index_bytes()
        out["build_peak_rss_mb"] = engine.peak_rss_mb()
        out["rss_method"] = "VmHWM"
    elif step == "query":
        t0 = time.perf_counter()
        engine.open()
        out["load_s"] = time.perf_counter() - t0
        out.update(time_queries(engine, job["k"], job["repeats"], job.get("threads") or os.cpu_count() or 1))
        out["peak_rss_mb"] = engine.peak_rss_mb()
        out["rss_method"] = "VmHWM"
    else:
        raise SystemExit(f"unknown step {step!r}: use build or query")
    out["settings"] = engine.describe()
    engine.close()
    out_file.write_text(json.dumps(out))
