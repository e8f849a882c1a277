"""Concurrency and hostile-load scenarios against the real service (``sparsearch serve`` processes).

Each scenario starts its own ``sparsearch serve`` on a free port, over BM25 indexes of the bundled
Cranfield sample built with ``sparsearch index --model bm25``, drives it over HTTP from threads of this
process, and checks what a user would check afterwards:

a. **updates + overwrite** (1 worker, then ``--workers 2``): searcher threads, one updater (1-document
   upserts, and deletes of documents it added) and a loop of ``sparsearch index --overwrite`` on the
   directory the service serves. Goals: no HTTP 5xx nor dropped connection; no acknowledged update
   lost (every document whose upsert got 2xx after the last overwrite ended, and that was not deleted,
   is found by the service and by a fresh ``Searcher.open``; no document whose delete got 2xx comes
   back); the index still opens (``sparsearch search`` works) at the end.
b. **heavy requests**: plain searches (top_k 10) alone, then alongside a loop of slow batches (100
   queries x top_k 1000 with explain by default; a 4xx refusal for cost counts as such, not as an
   error) and paced 1-document upserts. Goals: no 5xx; p99 of plain searches under load at most 5x
   their idle p99.
c. **churn**: rounds of upserting documents of random words, then deleting all but one of them; term
   count and bytes (``GET /v1/indexes/{name}`` and the directory on disk) before, after the churn and
   after a force-merge (``POST /v1/indexes/{name}/merge``, else ``sparsearch merge --index PATH``;
   "not available" when neither exists), against a fresh build of the same documents served alongside.
   Goals: no 5xx; after the merge, the term count of the fresh build.
d. **hostile clients**: requests with made-up long HTTP methods (``/metrics`` must not grow with each
   new method), and slowloris connections (partial request heads, half of them dripping a header line
   a second): how many are still open after the server's header timeout (goal: none).

Usage::

    .venv/bin/python bench/service_scenarios.py        # minutes; bench/results/service_scenarios.{json,md}
    .venv/bin/python bench/service_scenarios.py --short --output /tmp/scenarios    # for CI
    .venv/bin/python bench/service_scenarios.py --scenarios a,c --workers 2

Exit status: 0 when every goal is met, 1 when one is missed (or a scenario could not run), 2 on a
usage error, 130 on Ctrl-C. Every process it starts runs in its own session and is stopped on exit,
Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import random
import re
import select
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CRANFIELD = ROOT / "data" / "cranfield"
SPARSEARCH = Path(sys.executable).with_name("sparsearch")

P99_RATIO_GOAL = 5.0
"""Scenario b: p99 of plain searches under load / idle p99, at most."""
METRICS_GROWTH_LIMIT = 8192
"""Scenario d: bytes ``/metrics`` may grow by over the second half of the made-up-method requests (counter
digits change; a new label set per method adds kilobytes each)."""

# Client-side timeouts: generous, so that a slow answer is measured as slow, never as an error of the harness.
PLAIN_TIMEOUT_S = 180.0
HEAVY_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Params:
    """The sizes of one run (``--short`` or the default long mode)."""

    # a
    searchers: int = 4
    overwrite_s: float = 30.0
    tail_s: float = 8.0
    # b
    plain_threads: int = 2
    idle_s: float = 20.0
    load_s: float = 30.0
    heavy_queries: int = 100
    heavy_top_k: int = 1000
    upsert_every_s: float = 0.5
    # c
    churn_rounds: int = 8
    churn_docs: int = 40
    churn_words_per_doc: int = 30
    churn_new_words: int = 300
    # d
    methods: int = 200
    method_chars: int = 1024
    slow_connections: int = 64


SHORT = Params(
    searchers=3,
    overwrite_s=12.0,
    tail_s=3.0,
    idle_s=4.0,
    load_s=6.0,
    heavy_queries=20,
    churn_rounds=3,
    churn_docs=20,
    churn_new_words=150,
    methods=50,
    slow_connections=16,
)


# -- processes: every child in its own session, stopped on any exit ----------------------------------------
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()
_SHUTTING_DOWN = threading.Event()


def _child_environment() -> dict[str, str]:
    """This environment without SPARSEARCH_* settings (each child gets its own), but with the cache location."""
    keep = {"SPARSEARCH_CACHE"}
    return {k: v for k, v in os.environ.items() if not k.startswith("SPARSEARCH_") or k in keep}


def _spawn(command: list[str], **kwargs: Any) -> subprocess.Popen:
    with _CHILDREN_LOCK:  # started and recorded at once, so a cleanup running meanwhile sees it
        if _SHUTTING_DOWN.is_set():
            raise RuntimeError("shutting down: no new process is started")
        process = subprocess.Popen(command, start_new_session=True, env=_child_environment(), **kwargs)
        _CHILDREN.add(process)
    return process


def _stop(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGINT to the child's process group (uvicorn's workers included), SIGKILL after ``grace_s``."""
    try:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        # the group may outlive its leader (a worker that did not stop): kill what is left of it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(process)


def stop_all_children(final: bool = False) -> None:
    """Stop every child still running; with ``final``, refuse to start any more (threads may still try)."""
    with _CHILDREN_LOCK:
        if final:
            _SHUTTING_DOWN.set()
        children = list(_CHILDREN)
    for process in children:
        _stop(process, grace_s=5.0)


def run_cli(args: list[str], timeout: float = 600.0) -> subprocess.CompletedProcess:
    """``sparsearch ARGS`` in its own session; killed on timeout (returncode -9, the timeout in stderr)."""
    process = _spawn([str(SPARSEARCH), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(process, grace_s=1.0)
        return subprocess.CompletedProcess(args, -9, "", f"timed out after {timeout} s")
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(process)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def build_index(data: Path, path: Path) -> None:
    done = run_cli(["index", "--model", "bm25", "--data", str(data), "--index", str(path), "--overwrite"])
    if done.returncode != 0:
        raise RuntimeError(f"sparsearch index failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """``sparsearch serve`` on a free port, ready (``/ready`` 200) on entering, stopped on leaving."""

    def __init__(self, indexes: dict[str, Path], log: Path, workers: int = 1, ready_timeout_s: float = 240.0) -> None:
        self.indexes = indexes
        self.log = log
        self.workers = workers
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Service:
        import httpx

        for attempt in range(3):  # a free port can be taken between the probe and uvicorn's bind
            self.port = free_port()
            command = [str(SPARSEARCH), "serve", "--port", str(self.port), "--workers", str(self.workers)]
            for name, path in self.indexes.items():
                command += ["--index", f"{name}={path}"]
            with self.log.open("a") as output:  # a file, never a pipe nobody reads
                self.process = _spawn(command, stdout=output, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + self.ready_timeout_s
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if httpx.get(f"{self.url}/ready", timeout=10).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.25)
            _stop(self.process)
            if "in use" not in self.log.read_text(errors="replace") or attempt == 2:
                break
        raise RuntimeError(f"sparsearch serve did not become ready; its log:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            _stop(self.process)

    def log_exceptions(self) -> dict[str, int]:
        return log_exceptions(self.log)


def log_exceptions(log: Path) -> dict[str, int]:
    """Exception lines (``SomeError: message``, trimmed) of a server log, counted."""
    pattern = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit)\b:?.*)$")
    found: Counter[str] = Counter()
    text = log.read_text(errors="replace").replace(str(log.parent), "<scenario folder>")
    for line in text.splitlines():
        match = pattern.match(line.strip())
        if match:
            found[re.sub(r"\d{3,}", "N", match.group(1))[:200]] += 1
    return dict(found.most_common(8))


# -- HTTP: every request recorded -----------------------------------------------------------------------------
@dataclass
class Record:
    """One request: what it was, when (monotonic seconds), and what came back."""

    kind: str
    start: float
    end: float
    status: int | None = None
    code: str | None = None
    error: str | None = None
    body_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _error_code(content: bytes) -> str | None:
    try:
        return str(json.loads(content)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _error_message(content: bytes) -> str:
    try:
        return str(json.loads(content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return ""


def call(client: Any, kind: str, method: str, url: str, body: Any = None, timeout: float = PLAIN_TIMEOUT_S) -> Record:
    """One request; transport errors and timeouts become a record with ``error`` set, never an exception."""
    import httpx

    start = time.monotonic()
    try:
        response = client.request(method, url, json=body, timeout=timeout)
    except httpx.HTTPError as error:
        return Record(kind, start, time.monotonic(), error=f"{type(error).__name__}: {error}"[:200])
    record = Record(kind, start, time.monotonic(), status=response.status_code, body_bytes=len(response.content))
    if response.status_code >= 400:
        record.code = _error_code(response.content)
    else:
        with contextlib.suppress(ValueError):
            record.extra["json"] = response.json()
    return record


def call_streamed(client: Any, kind: str, url: str, body: Any, timeout: float = HEAVY_TIMEOUT_S) -> Record:
    """A request whose (large) answer is read and counted but never parsed: parsing tens of megabytes would
    hold this process's GIL and slow the plain searchers measured alongside."""
    import httpx

    start = time.monotonic()
    size = 0
    try:
        with client.stream("POST", url, json=body, timeout=timeout) as response:
            head = b""
            for chunk in response.iter_raw():
                size += len(chunk)
                if len(head) < 4096:
                    head += chunk[:4096]
            status = response.status_code
    except httpx.HTTPError as error:
        return Record(kind, start, time.monotonic(), error=f"{type(error).__name__}: {error}"[:200], body_bytes=size)
    record = Record(kind, start, time.monotonic(), status=status, body_bytes=size)
    if status >= 400:
        record.code = _error_code(head)
        record.extra["message"] = _error_message(head)
    return record


def new_client() -> Any:
    import httpx

    return httpx.Client(timeout=PLAIN_TIMEOUT_S)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation, as numpy's default."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(records: list[Record]) -> dict[str, Any]:
    """Count and percentiles (ms) of the records that got an answer of any status."""
    values = [r.ms for r in records if r.status is not None]

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "count": len(values),
        "p50_ms": rounded(percentile(values, 50)),
        "p95_ms": rounded(percentile(values, 95)),
        "p99_ms": rounded(percentile(values, 99)),
        "max_ms": rounded(max(values) if values else None),
    }


def outcomes(records: list[Record]) -> dict[str, Any]:
    """Counts by class: ``2xx``, ``4xx`` and ``5xx`` (by ``status code``), ``transport`` (by error)."""
    result: dict[str, Any] = {"requests": len(records), "2xx": 0, "4xx": {}, "5xx": {}, "transport": {}}
    for record in records:
        if record.status is None:
            key = (record.error or "?").split(":")[0]
            result["transport"][key] = result["transport"].get(key, 0) + 1
        elif record.status < 300:
            result["2xx"] += 1
        else:
            bucket = "5xx" if record.status >= 500 else "4xx"
            key = f"{record.status} {record.code or '-'}"
            result[bucket][key] = result[bucket].get(key, 0) + 1
    result["5xx_total"] = sum(result["5xx"].values())
    result["transport_total"] = sum(result["transport"].values())
    return result


def error_examples(records: list[Record], limit: int = 5) -> list[str]:
    seen: list[str] = []
    for record in records:
        if record.status is not None and record.status < 500:
            continue
        text = f"{record.kind}: {record.status or ''} {record.code or record.error or ''}".strip()
        if text not in seen:
            seen.append(text)
        if len(seen) >= limit:
            break
    return seen


def run_threads(targets: list[Callable[[], None]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread], timeout: float) -> list[str]:
    """Join every thread; the names of those still running after ``timeout`` seconds (a hung request)."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [thread.name for thread in threads if thread.is_alive()]


def read_queries() -> list[str]:
    with (CRANFIELD / "queries.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def unique_word(prefix: str, n: int) -> str:
    """A made-up word only one probe document carries (letters only, so every analyzer keeps it whole)."""
    letters = ""
    n += 26 * 26  # at least three letters
    while n:
        n, digit = divmod(n, 26)
        letters = string.ascii_lowercase[digit] + letters
    return f"zq{prefix}{letters}x"


def directory_bytes(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    memory_gib = None
    with contextlib.suppress(OSError, StopIteration), open("/proc/meminfo", encoding="utf-8") as handle:
        memory_gib = round(int(next(line for line in handle if line.startswith("MemTotal")).split()[1]) / 2**20, 1)
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def code_version() -> dict[str, Any]:
    """The commit, how many files under src/ differ from it, and the sparsearch package the children import."""
    version: dict[str, Any] = {"pythonpath": os.environ.get("PYTHONPATH")}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(ROOT)]
        version["commit"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        status = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True).stdout
        version["src_files_changed_since_commit"] = len(status.splitlines())
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        where = subprocess.run(
            [sys.executable, "-c", "import sparsearch; print(sparsearch.__file__)"],
            capture_output=True,
            text=True,
            env=_child_environment(),
        ).stdout.strip()
        version["sparsearch_package"] = str(Path(where).parent)
    return version


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# -- a. updates and overwrites ----------------------------------------------------------------------------------
def find_words_over_http(url: str, index: str, words: list[str], passes: int = 4) -> dict[str, Any]:
    """Which probe words each of ``passes`` fresh connections finds (a new connection may reach another worker).

    Returns ``{"found": {word: [doc ids]} per pass, "records": [...]}``."""
    found_per_pass: list[dict[str, list[str]]] = []
    records: list[Record] = []
    for _ in range(passes):
        found: dict[str, list[str]] = {}
        with new_client() as client:
            for chunk_start in range(0, len(words), 100):
                chunk = words[chunk_start : chunk_start + 100]
                body = {"queries": chunk, "top_k": 10, "index": index}
                record = call(client, "check", "POST", f"{url}/v1/search/batch", body)
                records.append(record)
                for result in (record.extra.get("json") or {}).get("results", []):
                    found[result["query"]] = [hit["id"] for hit in result["hits"]]
        found_per_pass.append(found)
    return {"found": found_per_pass, "records": records}


_DISK_CHECK = """
import json, sys
import sparsearch
searcher = sparsearch.Searcher.open(sys.argv[1])
words = json.load(sys.stdin)
print(json.dumps({word: [hit.id for hit in searcher.search(word, top_k=10, with_documents=False)] for word in words}))
"""


def find_words_on_disk(path: Path, words: list[str]) -> dict[str, Any]:
    """Open the index in a fresh process (``sparsearch.Searcher.open``) and search each probe word there."""
    process = _spawn(
        [sys.executable, "-c", _DISK_CHECK, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(json.dumps(words), timeout=600)
    finally:
        _stop(process, grace_s=1.0)
    if process.returncode != 0:
        return {"ok": False, "error": stderr.strip()[-1500:]}
    return {"ok": True, "found": json.loads(stdout)}


def scenario_updates_and_overwrite(workdir: Path, workers: int, params: Params) -> dict[str, Any]:
    """Searchers + an updater + a loop of ``sparsearch index --overwrite`` on the served directory.

    1. build the index, start the service with ``workers`` processes,
    2. run searchers, the updater and the overwrite loop for ``overwrite_s``; stop the loop, let the
       searchers and the updater run ``tail_s`` more,
    3. over HTTP (several fresh connections) and in a fresh process after the service stopped: every
       document acknowledged after the last overwrite ended and not deleted is found; no deleted one is,
    4. ``sparsearch search`` on the directory still answers.
    """
    index, name = workdir / "index", "cranfield"
    build_index(CRANFIELD, index)
    queries = read_queries()
    records: list[Record] = []
    overwrites: list[dict[str, Any]] = []
    stop, stop_overwrites = threading.Event(), threading.Event()
    service = Service({name: index}, workdir / "serve.log", workers=workers)
    prefix = "ab"[workers - 1] if workers <= 2 else "c"

    def searcher(seed: int) -> None:
        rng = random.Random(seed)
        with new_client() as client:
            while not stop.is_set():
                body = {"query": rng.choice(queries), "top_k": 10, "index": name}
                records.append(call(client, "search", "POST", f"{service.url}/v1/search", body))

    def updater() -> None:
        recent: list[tuple[str, str]] = []
        n = 0
        while not stop.is_set():
            n += 1
            doc_id, word = f"probe-{n:06d}", unique_word(prefix, n)
            document = {"id": doc_id, "title": f"probe {n}", "text": f"{word} probe document on heat transfer"}
            # a new connection per step: with several workers, the updates land on all of them
            with new_client() as client:
                url = f"{service.url}/v1/indexes/{name}/documents"
                record = call(client, "upsert", "POST", url, {"documents": [document]})
                record.extra.update(doc_id=doc_id, word=word)
                records.append(record)
                if record.ok:
                    recent.append((doc_id, word))
                if n % 3 == 0 and len(recent) >= 2:
                    doc_id, word = recent[-2]  # the one acknowledged before this one
                    del recent[-2]
                    record = call(client, "delete", "DELETE", f"{url}/{doc_id}")
                    record.extra.update(doc_id=doc_id, word=word)
                    records.append(record)

    def overwriter() -> None:
        while not stop_overwrites.is_set():
            start = time.monotonic()
            try:
                done = run_cli(
                    ["index", "--model", "bm25", "--data", str(CRANFIELD), "--index", str(index), "--overwrite"],
                    timeout=300,
                )
            except RuntimeError:  # shutting down
                return
            overwrites.append(
                {"start": start, "end": time.monotonic(), "rc": done.returncode, "stderr": done.stderr.strip()[-300:]}
            )

    with service:
        started = time.monotonic()
        try:
            workers_threads = run_threads([lambda i=i: searcher(i) for i in range(params.searchers)] + [updater])
            overwrite_thread = run_threads([overwriter])
            time.sleep(params.overwrite_s)
            stop_overwrites.set()
            hung = join_all(overwrite_thread, 320)
            time.sleep(params.tail_s)
            stop.set()
            hung += join_all(workers_threads, PLAIN_TIMEOUT_S + 30)
        finally:  # Ctrl-C: no new overwrite or request starts
            stop_overwrites.set()
            stop.set()
        run_s = time.monotonic() - started
        last_overwrite_end = max((o["end"] for o in overwrites), default=started)
        upserts = [r for r in records if r.kind == "upsert"]
        deletes = [r for r in records if r.kind == "delete"]
        deleted_ok = {r.extra["doc_id"]: r.extra["word"] for r in deletes if r.ok}
        expected = {
            r.extra["doc_id"]: r.extra["word"]
            for r in upserts
            if r.ok and r.start > last_overwrite_end and r.extra["doc_id"] not in deleted_ok
        }
        words = sorted(set(expected.values()) | set(deleted_ok.values()))
        http = find_words_over_http(service.url, name, words)
    server_exceptions = service.log_exceptions()

    # 3. lost and resurrected documents, as the service saw them and as a fresh process opens the directory
    def compare(found: dict[str, list[str]]) -> tuple[list[str], list[str]]:
        lost = sorted(doc_id for doc_id, word in expected.items() if doc_id not in found.get(word, []))
        back = sorted(doc_id for doc_id, word in deleted_ok.items() if doc_id in found.get(word, []))
        return lost, back

    lost_http: set[str] = set()
    back_http: set[str] = set()
    for found in http["found"]:
        lost, back = compare(found)
        lost_http.update(lost)
        back_http.update(back)
    disk = find_words_on_disk(index, words)
    lost_disk, back_disk = compare(disk["found"]) if disk["ok"] else ([], [])
    # 4. the index still opens from the command line
    cli = run_cli(["search", "--index", str(index), "--json", "--top-k", "3", "heat transfer"], timeout=300)
    cli_ok = cli.returncode == 0
    if cli_ok:
        try:
            cli_ok = bool(json.loads(cli.stdout)["hits"])
        except (ValueError, KeyError, TypeError):
            cli_ok = False
    searches = [r for r in records if r.kind == "search"]
    result = {
        "workers": workers,
        "run_s": round(run_s, 1),
        "searcher_threads": params.searchers,
        "overwrites": {
            "runs": len(overwrites),
            "failed": sum(1 for o in overwrites if o["rc"] != 0),
            "failures": sorted({o["stderr"].splitlines()[-1] for o in overwrites if o["rc"] != 0 and o["stderr"]})[:3],
            "seconds_each_p50": round(percentile([o["end"] - o["start"] for o in overwrites], 50) or 0.0, 2),
        },
        "requests": {
            "search": outcomes(searches),
            "upsert": outcomes(upserts),
            "delete": outcomes(deletes),
            "check": outcomes(http["records"]),
        },
        "search_latency": latency_summary(searches),
        "upsert_latency": latency_summary(upserts),
        "error_examples": error_examples(records + http["records"]),
        "server_log_exceptions": server_exceptions,
        "hung_threads": hung,
        "acknowledged_after_last_overwrite": len(expected),
        "acknowledged_deletes": len(deleted_ok),
        "lost_over_http": sorted(lost_http),
        "deleted_but_found_over_http": sorted(back_http),
        "disk_check": {"opened": disk["ok"], "error": disk.get("error")},
        "lost_on_disk": lost_disk,
        "deleted_but_found_on_disk": back_disk,
        "cli_search_ok": cli_ok,
        "cli_search_error": None if cli_ok else (cli.stderr.strip() or cli.stdout.strip())[-500:],
    }
    result["server_errors"] = sum(result["requests"][kind]["5xx_total"] for kind in result["requests"])
    result["transport_errors"] = sum(result["requests"][kind]["transport_total"] for kind in result["requests"])
    return result


def goals_a(result: dict[str, Any]) -> list[dict[str, Any]]:
    label = f"a ({result['workers']} worker{'s' if result['workers'] > 1 else ''})"
    lost = sorted(set(result["lost_over_http"]) | set(result["lost_on_disk"]))
    back = sorted(set(result["deleted_but_found_over_http"]) | set(result["deleted_but_found_on_disk"]))
    checked = result["acknowledged_after_last_overwrite"]
    return [
        goal(label, "no HTTP 5xx", result["server_errors"] == 0, f"{result['server_errors']} 5xx"),
        goal(
            label,
            "no dropped connection or client timeout",
            result["transport_errors"] == 0 and not result["hung_threads"],
            f"{result['transport_errors']} transport errors",
        ),
        goal(
            label,
            "no acknowledged upsert lost",
            not lost and checked > 0,
            f"{len(lost)} of {checked} lost ({len(result['lost_over_http'])} over HTTP, "
            f"{len(result['lost_on_disk'])} on disk)"
            if checked
            else "no upsert was acknowledged after the last overwrite: nothing to check",
        ),
        goal(label, "no acknowledged delete undone", not back, f"{len(back)} of {result['acknowledged_deletes']} back"),
        goal(
            label,
            "index opens at the end (fresh process, sparsearch search)",
            result["disk_check"]["opened"] and result["cli_search_ok"],
            "yes"
            if result["disk_check"]["opened"] and result["cli_search_ok"]
            else (result["disk_check"]["error"] or result["cli_search_error"] or "no")[-200:],
        ),
    ]


# -- b. heavy requests next to plain searches -------------------------------------------------------------------
def scenario_heavy_requests(workdir: Path, params: Params) -> dict[str, Any]:
    """Plain searches idle, then next to a loop of slow batches and paced 1-document upserts.

    1. build the index, start the service (1 worker),
    2. idle window: ``plain_threads`` searchers for ``idle_s``,
    3. load window: the same searchers, one thread sending the heavy batch back to back, one upserting a
       document every ``upsert_every_s``; it lasts ``load_s`` and at least until one heavy batch ended.
       A heavy batch refused with a 4xx (a cost limit) is counted, then sent smaller (to the limit the
       message names, else halved) until the service accepts it: the load is the heaviest it allows,
    4. compare the plain searches' p99 (and p50) between the windows.

    A heavy batch answered 504 ``search_timeout`` (the service's own deadline) is counted as shed, not as
    a server error; any other 5xx is one.
    """
    index, name = workdir / "index", "cranfield"
    build_index(CRANFIELD, index)
    queries = read_queries()
    service = Service({name: index}, workdir / "serve.log")

    def heavy_body(n_queries: int, top_k: int) -> dict[str, Any]:
        repeated = (queries * (n_queries // len(queries) + 1))[:n_queries]
        return {"queries": repeated, "top_k": top_k, "explain": True, "index": name}

    def window(seconds: float, loaded: bool) -> dict[str, list[Record]]:
        stop = threading.Event()
        heavy_done = threading.Event()
        plain: list[Record] = []
        heavy: list[Record] = []
        upserts: list[Record] = []

        def searcher(seed: int) -> None:
            rng = random.Random(seed)
            with new_client() as client:
                while not stop.is_set():
                    body = {"query": rng.choice(queries), "top_k": 10, "index": name}
                    plain.append(call(client, "search", "POST", f"{service.url}/v1/search", body))

        def heavy_loop() -> None:
            n_queries, top_k = params.heavy_queries, params.heavy_top_k
            with new_client() as client:
                # back to back until the window's time is up (the last one may run past it)
                while not stop.is_set() and not (heavy_done.is_set() and time.monotonic() > window_end):
                    body = heavy_body(n_queries, top_k)
                    record = call_streamed(client, "heavy", f"{service.url}/v1/search/batch", body)
                    record.extra.update(queries=n_queries, top_k=top_k)
                    heavy.append(record)
                    if record.status is None or not 400 <= record.status < 500:
                        heavy_done.set()
                        continue
                    smaller = smaller_request(n_queries, top_k, record.extra.get("message", ""))
                    if smaller is None:  # refused even at 1 x 1: nothing heavy to send
                        heavy_done.set()
                        stop.wait()
                    else:
                        n_queries, top_k = smaller

        def upserter() -> None:
            n = 0
            with new_client() as client:
                while not stop.wait(params.upsert_every_s):
                    n += 1
                    document = {"id": f"load-{n:06d}", "text": f"{unique_word('b', n)} paced update on wing flutter"}
                    url = f"{service.url}/v1/indexes/{name}/documents"
                    upserts.append(call(client, "upsert", "POST", url, {"documents": [document]}))

        targets: list[Callable[[], None]] = [lambda i=i: searcher(i) for i in range(params.plain_threads)]
        if loaded:
            targets += [heavy_loop, upserter]
        else:
            heavy_done.set()
        started = time.monotonic()
        window_end = started + seconds
        threads = run_threads(targets)
        try:
            time.sleep(seconds)
            heavy_done.wait(HEAVY_TIMEOUT_S)  # at least one heavy request measured in full
        finally:
            stop.set()
        hung = join_all(threads, HEAVY_TIMEOUT_S + 30)
        return {"plain": plain, "heavy": heavy, "upserts": upserts, "hung": hung, "seconds": time.monotonic() - started}

    with service:
        idle = window(params.idle_s, loaded=False)
        load = window(params.load_s, loaded=True)
    idle_latency, load_latency = latency_summary(idle["plain"]), latency_summary(load["plain"])
    ratio = None
    if idle_latency["p99_ms"] and load_latency["p99_ms"] is not None:
        ratio = round(load_latency["p99_ms"] / idle_latency["p99_ms"], 2)
    heavy = load["heavy"]
    everything = idle["plain"] + load["plain"] + heavy + load["upserts"]
    accepted = [r for r in heavy if r.status is None or not 400 <= r.status < 500]
    refused = Counter(
        f"{r.extra['queries']} x {r.extra['top_k']}: {r.status} {r.code}" for r in heavy if r not in accepted
    )
    result = {
        "plain_threads": params.plain_threads,
        "heavy_request": {
            "asked": {"queries": params.heavy_queries, "top_k": params.heavy_top_k, "explain": True},
            "sent": {"queries": accepted[0].extra["queries"], "top_k": accepted[0].extra["top_k"]}
            if accepted
            else None,
            "refused": dict(refused),
            "answered_2xx": sum(1 for r in heavy if r.ok),
            "shed_504": sum(1 for r in heavy if r.status == 504 and r.code == "search_timeout"),
            "seconds_each": [round(r.ms / 1000, 1) for r in accepted][:10],
            "mb_each": [round(r.body_bytes / 2**20, 1) for r in accepted if r.ok][:10],
        },
        "idle": {"seconds": round(idle["seconds"], 1), "plain": idle_latency},
        "load": {
            "seconds": round(load["seconds"], 1),
            "plain": load_latency,
            "upserts": latency_summary(load["upserts"]),
        },
        "p99_ratio": ratio,
        "p50_ratio": round(load_latency["p50_ms"] / idle_latency["p50_ms"], 2)
        if idle_latency["p50_ms"] and load_latency["p50_ms"] is not None
        else None,
        "requests": {
            "plain": outcomes(idle["plain"] + load["plain"]),
            "heavy": outcomes(heavy),
            "upsert": outcomes(load["upserts"]),
        },
        "error_examples": error_examples(everything),
        "server_log_exceptions": service.log_exceptions(),
        "hung_threads": idle["hung"] + load["hung"],
    }
    shed = result["heavy_request"]["shed_504"]
    result["server_errors"] = sum(part["5xx_total"] for part in result["requests"].values()) - shed
    result["transport_errors"] = sum(part["transport_total"] for part in result["requests"].values())
    return result


def smaller_request(n_queries: int, top_k: int, message: str) -> tuple[int, int] | None:
    """A smaller batch after a refusal: within the limit the message names ("limit of 2,000"), else half the
    queries (then half the top_k); ``None`` at 1 x 1.

    >>> smaller_request(100, 1000, "... over the limit of 2,000 per request")
    (2, 1000)
    >>> smaller_request(1, 10, "no number here")
    (1, 5)
    """
    match = re.search(r"limit of ([\d,]+)", message)
    if match:
        limit = int(match.group(1).replace(",", ""))
        if 1 <= limit < n_queries * top_k:
            smaller_top_k = min(top_k, limit)
            return max(1, min(n_queries, limit // smaller_top_k)), smaller_top_k
    if n_queries > 1:
        return n_queries // 2, top_k
    if top_k > 1:
        return 1, top_k // 2
    return None


def goals_b(result: dict[str, Any]) -> list[dict[str, Any]]:
    ratio = result["p99_ratio"]
    idle, load = result["idle"]["plain"]["p99_ms"], result["load"]["plain"]["p99_ms"]
    return [
        goal("b", "no HTTP 5xx", result["server_errors"] == 0, f"{result['server_errors']} 5xx"),
        goal(
            "b",
            "no dropped connection or client timeout",
            result["transport_errors"] == 0 and not result["hung_threads"],
            f"{result['transport_errors']} transport errors",
        ),
        goal(
            "b",
            f"plain-search p99 under load <= {P99_RATIO_GOAL:g}x idle p99",
            ratio is not None and ratio <= P99_RATIO_GOAL,
            f"{ratio}x ({load} ms vs {idle} ms)",
        ),
    ]


# -- c. churn, merge, fresh build -------------------------------------------------------------------------------
def churn_documents(params: Params, seed: int = 15) -> list[list[dict[str, str]]]:
    """Per round, ``churn_docs`` documents of words drawn from ``churn_new_words`` random words new to that round."""
    rng = random.Random(seed)
    rounds = []
    for round_number in range(params.churn_rounds):
        pool = {
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 10))) for _ in range(params.churn_new_words)
        }
        words = sorted(pool)
        rounds.append(
            [
                {
                    "id": f"churn-{round_number:02d}-{n:03d}",
                    "title": "",
                    "text": " ".join(rng.choices(words, k=params.churn_words_per_doc)),
                }
                for n in range(params.churn_docs)
            ]
        )
    return rounds


def index_state(client: Any, url: str, name: str, path: Path) -> dict[str, Any]:
    record = call(client, "stats", "GET", f"{url}/v1/indexes/{name}")
    body = record.extra.get("json") or {}
    build = body.get("build") or {}
    state = {
        "status": record.status,
        "documents": body.get("documents"),
        "n_terms": build.get("n_terms"),
        "nnz": build.get("nnz"),
        "bytes_reported": build.get("bytes"),
        "bytes_on_disk": directory_bytes(path),
        "generation": build.get("generation"),
    }
    for key in ("segments", "deleted_documents"):  # the segmented engine's fields, when it reports them
        if key in build:
            state[key] = build[key]
    return state


def force_merge(client: Any, url: str, name: str, path: Path) -> dict[str, Any]:
    """``POST /v1/indexes/{name}/merge``; when the route does not exist, ``sparsearch merge --index PATH``."""
    record = call(client, "merge", "POST", f"{url}/v1/indexes/{name}/merge", timeout=HEAVY_TIMEOUT_S)
    api = {"status": record.status, "code": record.code, "error": record.error, "ms": round(record.ms, 1)}
    if record.ok:
        return {"available": True, "via": "api", "ok": True, "api": api, "answer": record.extra.get("json")}
    if not (record.status == 405 or (record.status == 404 and record.code != "unknown_index")):
        return {"available": True, "via": "api", "ok": False, "api": api}
    started = time.monotonic()
    done = run_cli(["merge", "--index", str(path)], timeout=HEAVY_TIMEOUT_S)
    cli = {
        "rc": done.returncode,
        "stderr": done.stderr.strip()[-300:],
        "ms": round((time.monotonic() - started) * 1000, 1),
    }
    if done.returncode == 2 and "no such command" in done.stderr.lower():
        return {"available": False, "via": None, "ok": False, "api": api, "cli": cli}
    return {"available": True, "via": "cli", "ok": done.returncode == 0, "api": api, "cli": cli}


def scenario_churn(workdir: Path, params: Params) -> dict[str, Any]:
    """Rounds of upserts then deletes of random-word documents; term count and bytes before, after, merged.

    1. build the index and, beside it, a fresh build of the documents the index holds after the churn
       (Cranfield + the one survivor of each round); serve both (1 worker),
    2. churn: per round, upsert ``churn_docs`` documents (batches of 10), then delete all but one,
    3. force-merge (API, else CLI; "not available" when neither exists),
    4. compare ``n_terms``, ``nnz`` and bytes with the fresh build; check the survivors are found and the
       deleted documents are not.
    """
    index, fresh = workdir / "index", workdir / "fresh"
    name = "churned"
    rounds = churn_documents(params)
    survivors = [documents[0] for documents in rounds]
    corpus = workdir / "fresh-corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as output:
        output.write((CRANFIELD / "corpus.jsonl").read_text(encoding="utf-8").rstrip("\n") + "\n")
        for document in survivors:
            output.write(json.dumps({"_id": document["id"], "title": document["title"], "text": document["text"]}))
            output.write("\n")
    build_index(CRANFIELD, index)
    build_index(corpus, fresh)
    records: list[Record] = []
    service = Service({name: index, "fresh": fresh}, workdir / "serve.log")
    with service, new_client() as client:
        url = service.url
        before = index_state(client, url, name, index)
        started = time.monotonic()
        for documents in rounds:
            for batch_start in range(0, len(documents), 10):
                body = {"documents": documents[batch_start : batch_start + 10]}
                records.append(call(client, "upsert", "POST", f"{url}/v1/indexes/{name}/documents", body))
            for document in documents[1:]:
                records.append(call(client, "delete", "DELETE", f"{url}/v1/indexes/{name}/documents/{document['id']}"))
        churn_s = time.monotonic() - started
        after = index_state(client, url, name, index)
        merge = force_merge(client, url, name, index)
        merged = index_state(client, url, name, index) if merge["ok"] else None
        fresh_state = index_state(client, url, "fresh", fresh)
        # the survivors are found by their own text, the deleted documents are not
        deleted = [document for documents in rounds for document in documents[1:]]
        probes = [" ".join(document["text"].split()[:6]) for document in survivors + deleted]
        found = call(
            client, "check", "POST", f"{url}/v1/search/batch", {"queries": probes[:100], "top_k": 5, "index": name}
        )
        records.append(found)
    hits = [[hit["id"] for hit in result["hits"]] for result in (found.extra.get("json") or {}).get("results", [])]
    survivors_found = sum(1 for document, ids in zip(survivors, hits, strict=False) if document["id"] in ids)
    deleted_found = sum(
        1 for document, ids in zip(deleted, hits[len(survivors) :], strict=False) if document["id"] in ids
    )
    upserts = [r for r in records if r.kind == "upsert"]
    deletes = [r for r in records if r.kind == "delete"]
    result = {
        "rounds": params.churn_rounds,
        "documents_per_round": params.churn_docs,
        "kept_per_round": 1,
        "new_words_per_round": params.churn_new_words,
        "churn_s": round(churn_s, 1),
        "upsert_latency": latency_summary(upserts),
        "delete_latency": latency_summary(deletes),
        "before": before,
        "after_churn": after,
        "merge": merge,
        "after_merge": merged,
        "fresh_build": fresh_state,
        "survivors_found": f"{survivors_found}/{len(survivors)}",
        "deleted_found": f"{deleted_found}/{min(len(deleted), 100 - len(survivors))}",
        "requests": {"upsert": outcomes(upserts), "delete": outcomes(deletes), "other": outcomes([found])},
        "error_examples": error_examples(records),
        "server_log_exceptions": service.log_exceptions(),
    }
    result["server_errors"] = sum(part["5xx_total"] for part in result["requests"].values())
    result["transport_errors"] = sum(part["transport_total"] for part in result["requests"].values())
    return result


def goals_c(result: dict[str, Any]) -> list[dict[str, Any]]:
    fresh, merge = result["fresh_build"], result["merge"]
    after = result["after_churn"]
    goals = [
        goal(
            "c",
            "no HTTP 5xx or dropped connection",
            result["server_errors"] == 0 and result["transport_errors"] == 0,
            f"{result['server_errors']} 5xx, {result['transport_errors']} transport errors",
        ),
        goal(
            "c",
            "deleted documents not found, survivors found",
            result["deleted_found"].startswith("0/")
            and result["survivors_found"].split("/")[0] == result["survivors_found"].split("/")[1],
            f"survivors {result['survivors_found']}, deleted {result['deleted_found']}",
        ),
    ]
    label = "term count after merge == fresh build's"
    if not merge["available"]:
        goals.append(
            goal(
                "c",
                label,
                None,
                f"merge not available (API {merge['api']['status']} {merge['api']['code']}, "
                f"CLI rc {merge['cli']['rc']}); after churn {after['n_terms']} terms vs fresh {fresh['n_terms']}",
            )
        )
    elif not merge["ok"]:
        goals.append(goal("c", label, False, f"merge failed: {json.dumps(merge)[:200]}"))
    else:
        merged = result["after_merge"]
        goals.append(
            goal(
                "c",
                label,
                merged["n_terms"] == fresh["n_terms"] and merged["n_terms"] is not None,
                f"{merged['n_terms']} after merge vs {fresh['n_terms']} fresh (after churn {after['n_terms']})",
            )
        )
    return goals


# -- d. hostile clients -----------------------------------------------------------------------------------------
def raw_request(port: int, head: bytes, timeout: float = 30.0) -> int | None:
    """Send a raw request head; the answer's status code (None when the connection closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        answer = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(match.group(1)) if match else None


def metrics_size(client: Any, url: str) -> int | None:
    record = call(client, "metrics", "GET", f"{url}/metrics")
    return record.body_bytes if record.ok else None


def slowloris(port: int, connections: int, hold_s: float, drip_every_s: float = 1.0) -> dict[str, Any]:
    """Open ``connections`` connections that send a partial request head (half of them add a header line every
    ``drip_every_s``) and hold them ``hold_s``; count those the server closed, and when."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
    opened = time.monotonic()
    sockets = []
    for n in range(connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(head)
        sock.setblocking(False)
        sockets.append({"sock": sock, "drip": n % 2 == 0, "closed_after_s": None, "answer": b""})
    try:
        next_drip = opened + drip_every_s
        line = 0
        while time.monotonic() < opened + hold_s:
            live = [s for s in sockets if s["closed_after_s"] is None]
            if not live:
                break
            readable, _, _ = select.select([s["sock"] for s in live], [], [], 0.2)
            for entry in live:
                if entry["sock"] not in readable:
                    continue
                try:
                    chunk = entry["sock"].recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    entry["answer"] += chunk[:200]
                else:
                    entry["closed_after_s"] = time.monotonic() - opened
            if time.monotonic() >= next_drip:
                line += 1
                next_drip += drip_every_s
                for entry in live:
                    if entry["drip"] and entry["closed_after_s"] is None:
                        try:
                            entry["sock"].send(f"X-Slow-{line}: {line}\r\n".encode())
                        except BlockingIOError:
                            pass
                        except OSError:
                            entry["closed_after_s"] = time.monotonic() - opened
    finally:
        for entry in sockets:
            entry["sock"].close()
    closed = [s["closed_after_s"] for s in sockets if s["closed_after_s"] is not None]
    answers = Counter((re.match(rb"HTTP/1\.[01] (\d{3})", s["answer"]) or [b"", b"none"])[1].decode() for s in sockets)
    return {
        "connections": connections,
        "held_s": round(hold_s, 1),
        "still_open": sum(1 for s in sockets if s["closed_after_s"] is None),
        "still_open_dripping": sum(1 for s in sockets if s["closed_after_s"] is None and s["drip"]),
        "closed_after_s_p50": round(percentile(closed, 50), 1) if closed else None,
        "closed_after_s_max": round(max(closed), 1) if closed else None,
        "answers": dict(answers),
    }


def scenario_hostile(workdir: Path, params: Params, header_timeout_s: float) -> dict[str, Any]:
    """Made-up long HTTP methods and slowloris connections against one worker.

    1. build the index, start the service,
    2. ``methods`` requests, each with its own random method of ``method_chars`` letters, on ``/health``;
       ``/metrics`` size before, after half of them and after all (the second half must not grow it),
    3. ``slow_connections`` slowloris connections held ``header_timeout_s`` + 5 s while a plain search runs
       every half second; how many are still open at the end.
    """
    index, name = workdir / "index", "cranfield"
    build_index(CRANFIELD, index)
    service = Service({name: index}, workdir / "serve.log")
    rng = random.Random(4)
    statuses: Counter[str] = Counter()
    with service, new_client() as client:
        call(client, "health", "GET", f"{service.url}/health")
        sizes = [metrics_size(client, service.url)]
        for _ in range(2):
            for _ in range(params.methods // 2):
                method = "".join(rng.choices(string.ascii_uppercase, k=params.method_chars))
                try:
                    status = raw_request(service.port, f"{method} /health HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                except OSError as error:
                    status = None
                    statuses[type(error).__name__] += 1
                statuses[str(status)] += 1
            sizes.append(metrics_size(client, service.url))
        # slowloris, with searches alongside
        stop = threading.Event()
        searches: list[Record] = []

        def searcher() -> None:
            with new_client() as search_client:
                while not stop.wait(0.5):
                    body = {"query": "heat transfer", "top_k": 10, "index": name}
                    searches.append(call(search_client, "search", "POST", f"{service.url}/v1/search", body))

        threads = run_threads([searcher])
        try:
            slow = slowloris(service.port, params.slow_connections, header_timeout_s + 5.0)
        finally:
            stop.set()
        join_all(threads, PLAIN_TIMEOUT_S + 10)
    growth_second_half = None if None in sizes[1:] else sizes[2] - sizes[1]  # type: ignore[operator]
    return {
        "methods": {
            "requests": params.methods,
            "method_chars": params.method_chars,
            "answers": dict(statuses),
            "metrics_bytes": sizes,
            "growth_second_half_bytes": growth_second_half,
        },
        "slowloris": slow,
        "header_timeout_assumed_s": header_timeout_s,
        "searches_during_slowloris": {**latency_summary(searches), **outcomes(searches)},
        "server_log_exceptions": service.log_exceptions(),
    }


def goals_d(result: dict[str, Any]) -> list[dict[str, Any]]:
    methods, slow = result["methods"], result["slowloris"]
    growth = methods["growth_second_half_bytes"]
    server_errors = sum(n for status, n in methods["answers"].items() if status.startswith("5"))
    searches = result["searches_during_slowloris"]
    return [
        goal(
            "d",
            "/metrics bounded under made-up methods",
            growth is not None and growth <= METRICS_GROWTH_LIMIT,
            f"+{growth} bytes over the last {methods['requests'] // 2} methods (sizes {methods['metrics_bytes']})",
        ),
        goal("d", "no 5xx for made-up methods", server_errors == 0, f"answers {methods['answers']}"),
        goal(
            "d",
            f"slowloris connections closed by the header timeout ({result['header_timeout_assumed_s']:g} s assumed)",
            slow["still_open"] == 0,
            f"{slow['still_open']} of {slow['connections']} still open after {slow['held_s']} s",
        ),
        goal(
            "d",
            "searches answered during slowloris",
            searches["2xx"] == searches["requests"] and searches["requests"] > 0,
            f"{searches['2xx']}/{searches['requests']} answered, p99 {searches['p99_ms']} ms",
        ),
    ]


# -- goals and the report -------------------------------------------------------------------------------------------
def goal(scenario: str, name: str, met: bool | None, measured: str) -> dict[str, Any]:
    """One goal: ``met`` True (pass), False (FAIL) or None (could not be checked: n/a)."""
    status = "n/a" if met is None else ("pass" if met else "FAIL")
    return {"scenario": scenario, "goal": name, "status": status, "measured": measured}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _outcome_cell(part: dict[str, Any]) -> str:
    cells = [f"{part['2xx']} ok"]
    for bucket in ("4xx", "5xx", "transport"):
        cells += [f"{n}× {key}" for key, n in part[bucket].items()]
    return ", ".join(cells)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Service scenarios: concurrency and hostile load",
        "",
        f"Generated by `{report['command']}` at {report['created_at']} ({report['mode']} mode, "
        f"{report['wall_s'] / 60:.1f} min); do not edit by hand. Raw figures: `service_scenarios.json`. What each "
        "scenario does: the docstring of `bench/service_scenarios.py`.",
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), {m['memory_gib']} GiB, "
        f"Python {m['python']}. Load average (1/5/15 min) {report['load_average_before']} before and "
        f"{report['load_average_after']} after; the service, the clients and `sparsearch index` share these cores "
        "with whatever else runs, so latencies are noisy.",
        "",
        _code_line(report["code"]),
        "",
        "## Goals",
        "",
        "| scenario | goal | result | measured |",
        "| --- | --- | --- | --- |",
    ]
    for row in report["goals"]:
        status = f"**{row['status']}**" if row["status"] == "FAIL" else row["status"]
        measured = row["measured"].replace("|", "\\|")
        lines.append(f"| {row['scenario']} | {row['goal']} | {status} | {measured} |")
    scenarios = report["scenarios"]
    for key, result in scenarios.get("a", {}).items():
        lines += ["", f"## a. Updates and `sparsearch index --overwrite`, {key.replace('_', ' ')}", ""]
        if "error" in result:
            lines.append(f"Could not run: {result['error']}")
            continue
        ow = result["overwrites"]
        lines += [
            f"{result['run_s']} s: {result['searcher_threads']} searcher threads, 1 updater, {ow['runs']} overwrites "
            f"({ow['failed']} failed, p50 {ow['seconds_each_p50']} s each); "
            f"{result['acknowledged_after_last_overwrite']} upserts acknowledged after the last overwrite checked, "
            f"{result['acknowledged_deletes']} acknowledged deletes checked.",
            "",
            "| requests | outcomes |",
            "| --- | --- |",
        ]
        for kind, part in result["requests"].items():
            lines.append(f"| {kind} | {_outcome_cell(part)} |")
        search, upsert = result["search_latency"], result["upsert_latency"]
        lines += [
            "",
            f"Search p50/p99 {search['p50_ms']}/{search['p99_ms']} ms, upsert p50/p99 "
            f"{upsert['p50_ms']}/{upsert['p99_ms']} ms. Lost over HTTP: {len(result['lost_over_http'])}, on disk: "
            f"{len(result['lost_on_disk'])}; deletes undone: {len(result['deleted_but_found_over_http'])} over HTTP, "
            f"{len(result['deleted_but_found_on_disk'])} on disk. Index opens afterwards: "
            f"{'yes' if result['disk_check']['opened'] and result['cli_search_ok'] else 'NO'}.",
        ]
        lines += _exceptions_lines(result)
    if "b" in scenarios:
        result = scenarios["b"]
        lines += ["", "## b. Plain searches next to heavy batches and updates", ""]
        if "error" in result:
            lines.append(f"Could not run: {result['error']}")
        else:
            heavy = result["heavy_request"]
            lines += [
                f"Heavy request asked: {heavy['asked']['queries']} queries × top_k {heavy['asked']['top_k']} with "
                f"explain, back to back; refused: {heavy['refused'] or 'never'}; sent: "
                + (
                    f"{heavy['sent']['queries']} × {heavy['sent']['top_k']}"
                    if heavy["sent"]
                    else "nothing (every size refused)"
                )
                + f"; {heavy['answered_2xx']} answered, {heavy['shed_504']} shed with 504 (seconds each "
                f"{heavy['seconds_each']}, MB each {heavy['mb_each']}). {result['plain_threads']} plain searcher "
                "threads (top_k 10) in both windows; 1-document upserts during the load window.",
                "",
                "| window | seconds | plain searches | p50 ms | p95 ms | p99 ms | max ms |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for window in ("idle", "load"):
                plain = result[window]["plain"]
                lines.append(
                    f"| {window} | {result[window]['seconds']} | {plain['count']} | {_fmt(plain['p50_ms'])} | "
                    f"{_fmt(plain['p95_ms'])} | {_fmt(plain['p99_ms'])} | {_fmt(plain['max_ms'])} |"
                )
            upserts = result["load"]["upserts"]
            lines += [
                "",
                f"p99 ratio {result['p99_ratio']}x, p50 ratio {result['p50_ratio']}x (goal: p99 ratio <= "
                f"{P99_RATIO_GOAL:g}). Upserts under load: {upserts['count']}, p50/p99 {upserts['p50_ms']}/"
                f"{upserts['p99_ms']} ms.",
                "",
                "| requests | outcomes |",
                "| --- | --- |",
            ]
            for kind, part in result["requests"].items():
                lines.append(f"| {kind} | {_outcome_cell(part)} |")
            lines += _exceptions_lines(result)
    if "c" in scenarios:
        result = scenarios["c"]
        lines += ["", "## c. Churn, merge and a fresh build", ""]
        if "error" in result:
            lines.append(f"Could not run: {result['error']}")
        else:
            merge = result["merge"]
            merge_text = (
                "not available (no merge route, no `sparsearch merge`)"
                if not merge["available"]
                else f"via {merge['via']}, {'ok' if merge['ok'] else 'FAILED'}"
            )
            lines += [
                f"{result['rounds']} rounds of {result['documents_per_round']} upserted documents (random words, "
                f"{result['new_words_per_round']} new words a round), all but {result['kept_per_round']} deleted "
                f"again, in {result['churn_s']} s (upsert p50 {result['upsert_latency']['p50_ms']} ms, delete p50 "
                f"{result['delete_latency']['p50_ms']} ms). Merge: {merge_text}. The fresh build indexes the same "
                f"documents (Cranfield + the survivors). Survivors found {result['survivors_found']}, deleted "
                f"documents found {result['deleted_found']}.",
                "",
                "| state | documents | terms | nnz | bytes (reported) | bytes on disk | generation | segments | "
                "deleted documents |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for label, key in (
                ("before churn", "before"),
                ("after churn", "after_churn"),
                ("after merge", "after_merge"),
                ("fresh build", "fresh_build"),
            ):
                state = result[key]
                if state is None:
                    lines.append(f"| {label} | not measured (no merge) | | | | | | | |")
                    continue
                lines.append(
                    f"| {label} | {_fmt(state['documents'])} | {_fmt(state['n_terms'])} | {_fmt(state['nnz'])} | "
                    f"{_fmt(state['bytes_reported'])} | {_fmt(state['bytes_on_disk'])} | {_fmt(state['generation'])} | "
                    f"{_fmt(state.get('segments'))} | {_fmt(state.get('deleted_documents'))} |"
                )
            lines += _exceptions_lines(result)
    if "d" in scenarios:
        result = scenarios["d"]
        lines += ["", "## d. Hostile clients", ""]
        if "error" in result:
            lines.append(f"Could not run: {result['error']}")
        else:
            methods, slow = result["methods"], result["slowloris"]
            searches = result["searches_during_slowloris"]
            lines += [
                f"{methods['requests']} requests to `/health`, each with its own made-up method of "
                f"{methods['method_chars']} letters: answers {methods['answers']}; `/metrics` size before, after "
                f"half and after all: {methods['metrics_bytes']} bytes.",
                "",
                f"{slow['connections']} slowloris connections (partial request head; half of them add a header line "
                f"every second) held {slow['held_s']} s (the header timeout assumed, "
                f"{result['header_timeout_assumed_s']:g} s, + 5 s): {slow['still_open']} still open "
                f"({slow['still_open_dripping']} of them dripping); closed ones after p50 {slow['closed_after_s_p50']} "
                f"s, max {slow['closed_after_s_max']} s; answers sent {slow['answers']}. Searches meanwhile: "
                f"{searches['2xx']}/{searches['requests']} answered, p50/p99 {searches['p50_ms']}/{searches['p99_ms']} "
                "ms.",
            ]
            lines += _exceptions_lines(result)
    lines += [
        "",
        "## Reproduce",
        "",
        "```bash",
        ".venv/bin/python bench/service_scenarios.py            # long mode, a few minutes: this report",
        ".venv/bin/python bench/service_scenarios.py --short --output /tmp/scenarios   # CI: exit 1 on a missed goal",
        "```",
        "",
    ]
    return "\n".join(lines)


def _code_line(code: dict[str, Any]) -> str:
    commit = str(code.get("commit"))[:12]
    if code.get("sparsearch_package") == str(ROOT / "src" / "sparsearch"):
        changed = code.get("src_files_changed_since_commit")
        return f"Code: this checkout's `src/`, commit `{commit}` plus {changed} file(s) under `src/` changed since."
    return (
        f"Code: the sparsearch package at `{code.get('sparsearch_package')}` (PYTHONPATH={code.get('pythonpath')}), "
        f"not this checkout's `src/`; the checkout was at commit `{commit}`."
    )


def _exceptions_lines(result: dict[str, Any]) -> list[str]:
    found = result.get("server_log_exceptions") or {}
    if not found:
        return []
    lines = ["", "Exceptions in the server log (count):", ""]
    lines += [f"- {n}× `{text}`" for text, n in found.items()]
    return lines


# -- main -----------------------------------------------------------------------------------------------------------
def run_scenario(label: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one scenario; a harness failure becomes ``{"error": ...}`` (reported, and a failed goal)."""
    print(f"scenario {label} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        result = work()
    except Exception as error:  # noqa: BLE001 - one scenario that cannot run must not hide the others
        traceback.print_exc()
        return {"error": f"{type(error).__name__}: {error}"[:1500]}
    print(f"scenario {label}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return result


def run(
    scenarios: list[str],
    params: Params,
    workers: list[int],
    header_timeout_s: float,
    workdir: Path,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``scenarios`` (letters a-d); returns ``(results by scenario, goals)``."""
    results: dict[str, Any] = {}
    goals: list[dict[str, Any]] = []

    def checked(label: str, result: dict[str, Any], judge: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> None:
        if "error" in result:
            goals.append(goal(label, "scenario ran", False, result["error"][:300]))
        else:
            goals.extend(judge(result))

    if "a" in scenarios:
        results["a"] = {}
        for count in workers:
            folder = workdir / f"a-{count}-workers"
            folder.mkdir()
            result = run_scenario(
                f"a ({count} workers)",
                lambda count=count, folder=folder: scenario_updates_and_overwrite(folder, count, params),
            )
            result.setdefault("workers", count)
            results["a"][f"{count}_worker{'s' if count > 1 else ''}"] = result
            checked(f"a ({count} worker{'s' if count > 1 else ''})", result, goals_a)
    for letter, work, judge in (
        ("b", scenario_heavy_requests, goals_b),
        ("c", scenario_churn, goals_c),
    ):
        if letter in scenarios:
            folder = workdir / letter
            folder.mkdir()
            results[letter] = run_scenario(letter, lambda work=work, folder=folder: work(folder, params))
            checked(letter, results[letter], judge)
    if "d" in scenarios:
        folder = workdir / "d"
        folder.mkdir()
        results["d"] = run_scenario("d", lambda: scenario_hostile(folder, params, header_timeout_s))
        checked("d", results["d"], goals_d)
    return results, goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="seconds per scenario instead of tens (for CI)")
    parser.add_argument("--scenarios", default="a,b,c,d", help="comma-separated letters among a,b,c,d")
    parser.add_argument("--workers", default="1,2", help="scenario a: comma-separated worker counts")
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="scenario d: the server's header timeout in seconds; slowloris connections are held 5 s longer",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results", help="folder of the report")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (indexes, server logs)")
    args = parser.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or set(scenarios) - set("abcd"):
        parser.error(f"--scenarios takes letters among a,b,c,d, not {args.scenarios!r}")
    try:
        workers = list(dict.fromkeys(int(w) for w in args.workers.split(",")))  # each count once
    except ValueError:
        parser.error(f"--workers takes comma-separated numbers, not {args.workers!r}")
    if any(w < 1 for w in workers):
        parser.error("--workers: every count is at least 1")

    # Stop every child on any exit: Ctrl-C raises KeyboardInterrupt here, SIGTERM becomes SystemExit.
    atexit.register(stop_all_children, final=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    params = SHORT if args.short else Params()
    workdir = Path(tempfile.mkdtemp(prefix="sparsearch-scenarios-"))
    started = time.monotonic()
    load_before = load_average()
    try:
        results, goals = run(scenarios, params, workers, args.header_timeout, workdir)
    except KeyboardInterrupt:
        print("interrupted: stopping the services and commands started", file=sys.stderr)
        return 130
    finally:
        stop_all_children(final=True)
        if args.keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "command": " ".join(["python bench/service_scenarios.py", *(sys.argv[1:] if argv is None else argv)]),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "short" if args.short else "long",
        "wall_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        "code": code_version(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "params": params.__dict__,
        "goals": goals,
        "failed": [f"{g['scenario']}: {g['goal']} ({g['measured']})" for g in goals if g["status"] == "FAIL"],
        "scenarios": results,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "service_scenarios.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.output / "service_scenarios.md").write_text(markdown(report), encoding="utf-8")
    print("\n".join(f"{g['status']:>4}  {g['scenario']}: {g['goal']}: {g['measured']}" for g in goals))
    print(f"report: {args.output / 'service_scenarios.md'}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
