"""Load test of the REST service: throughput and latency percentiles under 1, 8 and 64 concurrent clients.

1. build embedded indexes of the bundled Cranfield sample (``data/cranfield``, 1,400 documents) with
   the default model and with the baseline (``bm25-wordpiece``),
2. start ``sparsearch serve`` with both indexes (one service, one process unless ``--workers``),
3. for each number of clients and each index, run Locust users that POST ``/v1/search`` (top_k 10)
   with the 225 Cranfield queries in turn, back to back (a closed loop: each client sends its next
   query when the previous answer arrives); each index is measured in short windows that alternate
   with the other index's (each after a short warm-up), so both see the same background load,
4. record every request's latency (Locust's timer, client side), errors, CPU time used by the service,
   by the load generator and by everything else on the machine, and the server-side stage times
   from ``/metrics``,
5. write ``bench/results/load_test.json`` and ``bench/results/load_test.md``.

Usage (one command, a few minutes)::

    .venv/bin/python bench/load_test.py            # defaults: 30 s per index and level, 1/8/64 clients
    .venv/bin/python bench/load_test.py --duration 5 --rounds 1 --clients 1,8 --output /tmp/load   # a quick look

The load generator runs on the same machine as the service, so both share its cores; the JSON says
how much CPU each used and how busy the machine was with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- machine and CPU accounting ---------------------------------------------------------------------------
def describe_machine() -> dict[str, object]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as handle:
        memory_kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds, idle CPU seconds) of the whole machine since boot, all cores summed."""
    with open("/proc/stat", encoding="utf-8") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK, idle / CLK_TCK


def process_tree_cpu_seconds(root_pid: int) -> float:
    """user + system CPU seconds of ``root_pid`` and its live descendants (uvicorn workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(pid, 0.0) for pid in tree)


def own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


# -- the service --------------------------------------------------------------------------------------
def build_index(data: Path, model: str, path: Path) -> dict[str, object]:
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_embedded import build_embedded_index

    index, summary = build_embedded_index(data, path, load_encoder(model))
    return {
        "model": index.fingerprint.name,
        "documents": summary.documents,
        "postings": summary.postings,
        "avg_terms_per_doc": round(summary.avg_terms_per_doc, 2),
        "bytes": summary.bytes,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(indexes: dict[str, Path], workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    command = [str(Path(sys.executable).with_name("sparsearch")), "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    for name, path in indexes.items():
        command += ["--index", f"{name}={path}"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SPARSEARCH_")}
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sparsearch serve exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"sparsearch serve did not become ready:\n{log.read_text()}")


def stage_seconds(url: str) -> dict[tuple[str, str], tuple[float, float]]:
    """``(index, stage) -> (sum seconds, count)`` from the service's Prometheus histogram."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    found: dict[tuple[str, str], list[float]] = {}
    pattern = re.compile(r'^sparsearch_search_stage_seconds_(sum|count)\{index="([^"]+)",stage="([^"]+)"\} (\S+)$')
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            kind, index, stage, value = match.groups()
            found.setdefault((index, stage), [0.0, 0.0])[0 if kind == "sum" else 1] = float(value)
    return {key: (value[0], value[1]) for key, value in found.items()}


# -- the load -----------------------------------------------------------------------------------------
def run_window(
    url: str, service_pid: int, index: str, queries: list[str], clients: int, warmup: float, duration: float
) -> dict:
    """One closed-loop window with ``clients`` Locust users: raw latencies (ms) and CPU seconds used."""
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    state = {"recording": False, "next": 0}
    latencies: list[float] = []
    errors: list[str] = []

    class SearchClient(FastHttpUser):
        host = url
        wait_time = constant(0)

        @task
        def search(self) -> None:
            query = queries[state["next"] % len(queries)]
            state["next"] += 1
            body = {"query": query, "top_k": 10, "index": index}
            with self.client.post("/v1/search", json=body, catch_response=True, name="search") as response:
                if response.status_code != 200 or "hits" not in (response.json() or {}):
                    response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

    def on_request(response_time: float, exception: BaseException | None, **_: object) -> None:
        if state["recording"]:
            if exception is None:
                latencies.append(response_time)
            else:
                errors.append(str(exception)[:200])

    environment = Environment(user_classes=[SearchClient])
    environment.events.request.add_listener(on_request)
    runner = environment.create_local_runner()
    runner.start(clients, spawn_rate=clients)
    gevent.sleep(warmup)
    busy_before, idle_before = machine_busy_seconds()
    own_before, service_before = own_cpu_seconds(), process_tree_cpu_seconds(service_pid)
    state["recording"] = True
    started = time.perf_counter()
    gevent.sleep(duration)
    state["recording"] = False
    elapsed = time.perf_counter() - started
    busy_after, idle_after = machine_busy_seconds()
    own_after, service_after = own_cpu_seconds(), process_tree_cpu_seconds(service_pid)
    runner.quit()
    return {
        "seconds": elapsed,
        "latencies": latencies,
        "errors": errors,
        "cpu": {
            "busy": busy_after - busy_before,
            "idle": idle_after - idle_before,
            "load_generator": own_after - own_before,
            "service": service_after - service_before,
        },
    }


def summarize(index: str, clients: int, windows: list[dict]) -> dict:
    """Latency percentiles, throughput and CPU shares over every window of one (index, clients) pair."""
    import numpy as np

    seconds = sum(w["seconds"] for w in windows)
    values = np.asarray([latency for w in windows for latency in w["latencies"]])
    errors = [error for w in windows for error in w["errors"]]
    cpu = {key: sum(w["cpu"][key] for w in windows) for key in ("busy", "idle", "load_generator", "service")}
    others = max(0.0, cpu["busy"] - cpu["service"] - cpu["load_generator"])

    def percentile(q: float) -> float | None:
        return round(float(np.percentile(values, q)), 2) if len(values) else None

    return {
        "index": index,
        "clients": clients,
        "seconds": round(seconds, 2),
        "windows": len(windows),
        "requests": int(len(values)),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "throughput_rps": round(len(values) / seconds, 1),
        "latency_ms": {
            "mean": round(float(values.mean()), 2) if len(values) else None,
            "p50": percentile(50),
            "p95": percentile(95),
            "p99": percentile(99),
        },
        "cpu_cores": {
            "service": round(cpu["service"] / seconds, 2),
            "load_generator": round(cpu["load_generator"] / seconds, 2),
            "others": round(others / seconds, 2),
            "idle": round(cpu["idle"] / seconds, 2),
        },
    }


def markdown(report: dict) -> str:
    machine, load = report["machine"], report["load"]
    lines = [
        "# REST service load test",
        "",
        f"`{report['command']}` ({report['date']}). The embedded engine behind `sparsearch serve` "
        f"({load['service_workers']} uvicorn worker(s), no uvloop/httptools: plain asyncio and h11), Cranfield "
        f"({report['indexes'][report['default_index']]['documents']} documents, its {report['queries']} "
        "queries sent in turn), `POST /v1/search` with `top_k` 10, closed-loop Locust clients "
        f"(FastHttpUser) on the same machine. Per number of clients, each index is measured for {load['duration_s']} s "
        f"in {load['rounds']} windows that alternate between the two indexes (each after {load['warmup_s']} s of "
        "unmeasured warm-up), so both see the same background load; latency is measured by the client.",
        "",
        f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores, {machine['memory_gib']} GiB, "
        f"Python {machine['python']}. It is shared with other engineers' jobs: the 'others' column is the CPU "
        "the rest of the machine used during the measured windows (in cores, out of "
        f"{machine['logical_cores']}); the service and the load generator compete for the same cores.",
        "",
        "| index (model) | clients | requests | errors | req/s | p50 ms | p95 ms | p99 ms | service CPU | "
        "load generator CPU | others CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for phase in report["phases"]:
        model = report["indexes"][phase["index"]]["model"]
        latency, cpu = phase["latency_ms"], phase["cpu_cores"]
        lines.append(
            f"| {phase['index']} ({model}) | {phase['clients']} | {phase['requests']} | {phase['errors']} | "
            f"{phase['throughput_rps']} | {latency['p50']} | {latency['p95']} | {latency['p99']} | "
            f"{cpu['service']} | {cpu['load_generator']} | {cpu['others']} |"
        )
    lines += [
        "",
        f"Latency of `{report['default_index']}` relative to the baseline `{report['baseline_index']}` at the same "
        "load (goal: at most 1.1):",
        "",
        "| clients | p50 ratio | p95 ratio | p99 ratio | throughput ratio |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["comparison"]:
        lines.append(
            f"| {row['clients']} | {row['p50_ratio']} | {row['p95_ratio']} | {row['p99_ratio']} | "
            f"{row['throughput_ratio']} |"
        )
    lines += [
        "",
        "Server-side time per query, mean over the whole run (from `/metrics`, in ms):",
        "",
        "| index | encode | engine | documents (titles, snippets) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for index, stages in report["server_stage_ms"].items():
        lines.append(f"| {index} | {stages.get('encode')} | {stages.get('engine')} | {stages.get('documents')} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cranfield")
    parser.add_argument("--model", default=None, help="model of the measured index (default: the default model)")
    parser.add_argument("--baseline", default="bm25-wordpiece", help="model of the baseline index")
    parser.add_argument("--clients", default="1,8,64", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per index and level")
    parser.add_argument("--rounds", type=int, default=5, help="windows the duration is split into (alternating)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "load_test")
    args = parser.parse_args()

    # Locust runs on gevent: patch before anything opens sockets.
    from gevent import monkey

    monkey.patch_all()
    import numpy as np

    from sparsearch.encoders.registry import DEFAULT_MODEL
    from sparsearch.eval.beir_data import load_beir_topics

    model = args.model or DEFAULT_MODEL
    clients_list = [int(c) for c in args.clients.split(",")]
    queries = list(load_beir_topics(args.data).queries.values())
    machine = describe_machine()
    workdir = Path(tempfile.mkdtemp(prefix="sparsearch-load-"))
    try:
        # 1. indexes
        names = {"default": model, "baseline": args.baseline}
        paths = {name: workdir / name for name in names}
        indexes = {name: build_index(args.data, names[name], paths[name]) for name in names}
        # 2. the service
        process, url = start_service(paths, args.workers, workdir / "serve.log")
        try:
            stages_before = stage_seconds(url)
            load_before = os.getloadavg()
            phases = []
            # 3. the load: at each level, the two indexes alternate in short windows, so that both see the
            #    same background load from the machine's other users
            for clients in clients_list:
                windows: dict[str, list[dict]] = {name: [] for name in names}
                for _ in range(args.rounds):
                    for name in names:
                        window = run_window(
                            url, process.pid, name, queries, clients, args.warmup, args.duration / args.rounds
                        )
                        windows[name].append(window)
                for name in names:
                    phase = summarize(name, clients, windows[name])
                    phases.append(phase)
                    print(
                        f"{name:>8} {clients:>3} clients: {phase['throughput_rps']:>7} req/s  "
                        f"p50 {phase['latency_ms']['p50']} ms  p95 {phase['latency_ms']['p95']} ms  "
                        f"p99 {phase['latency_ms']['p99']} ms  errors {phase['errors']}  cpu {phase['cpu_cores']}",
                        file=sys.stderr,
                    )
            load_after = os.getloadavg()
            stages_after = stage_seconds(url)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    # 4. the report
    stage_ms: dict[str, dict[str, float]] = {}
    for (index, stage), (total, count) in stages_after.items():
        before_total, before_count = stages_before.get((index, stage), (0.0, 0.0))
        if count > before_count:
            stage_ms.setdefault(index, {})[stage] = round(1000 * (total - before_total) / (count - before_count), 3)
    comparison = []
    for clients in clients_list:
        measured = next(p for p in phases if p["index"] == "default" and p["clients"] == clients)
        base = next(p for p in phases if p["index"] == "baseline" and p["clients"] == clients)
        row = {"clients": clients}
        for key in ("p50", "p95", "p99"):
            row[f"{key}_ratio"] = round(measured["latency_ms"][key] / base["latency_ms"][key], 3)
        row["throughput_ratio"] = round(measured["throughput_rps"] / base["throughput_rps"], 3)
        comparison.append(row)
    report = {
        "command": "python bench/load_test.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine,
        "load_average_before_after": [round(v, 2) for v in load_before] + [round(v, 2) for v in load_after],
        "load": {
            "endpoint": "POST /v1/search",
            "top_k": 10,
            "service_workers": args.workers,
            "clients": clients_list,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "load_generator": "locust FastHttpUser, closed loop (no wait between requests), same machine",
        },
        "data": str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data),
        "queries": len(queries),
        "default_index": "default",
        "baseline_index": "baseline",
        "indexes": indexes,
        "phases": phases,
        "comparison": comparison,
        "server_stage_ms": stage_ms,
        "total_errors": int(np.sum([p["errors"] for p in phases])),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    args.output.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))
    if report["total_errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
