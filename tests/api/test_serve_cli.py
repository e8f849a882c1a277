"""``sparsearch serve`` as a user runs it: a real process, queried over HTTP, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SPARSEARCH = Path(sys.executable).with_name("sparsearch")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(
    *args: str,
    log: Path,
    environment: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    ready_status: int = 200,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start ``sparsearch serve`` on a free port and wait until /ready answers ``ready_status``; output goes
    to ``log`` (a file, not a pipe: helper processes may inherit it and outlive the server)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARSEARCH_")} | (environment or {})
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(SPARSEARCH), "serve", *args, "--port", str(port)], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"sparsearch serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/ready", headers=headers, timeout=5).status_code == ready_status:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"sparsearch serve did not become ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_serve_one_worker(tiny_bm25_index: Path, tmp_path: Path) -> None:
    with serve("--index", f"tiny={tiny_bm25_index}", log=tmp_path / "serve.log") as (url, process):
        response = httpx.post(f"{url}/v1/search", json={"query": "buckling of cylindrical shells", "top_k": 1})
        assert response.status_code == 200, response.text
        assert response.json()["hits"][0]["id"] == "d5"
        assert httpx.get(f"{url}/docs").status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert f"serving tiny (embedded) on {url}" in (tmp_path / "serve.log").read_text()


def test_serve_several_workers_from_the_environment(tiny_bm25_index: Path, tmp_path: Path) -> None:
    """Settings from SPARSEARCH_* variables, two worker processes, metrics summed over both."""
    environment = {"SPARSEARCH_INDEXES": f"tiny={tiny_bm25_index}", "SPARSEARCH_API_KEYS": "env-key-12345"}
    headers = {"X-API-Key": "env-key-12345"}
    with serve("--workers", "2", log=tmp_path / "serve.log", environment=environment, headers=headers) as (url, _):
        assert httpx.post(f"{url}/v1/search", json={"query": "wing"}).status_code == 401
        for _ in range(20):
            assert httpx.post(f"{url}/v1/search", json={"query": "wing"}, headers=headers).status_code == 200
        metrics = httpx.get(f"{url}/metrics", headers=headers).text
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith('sparsearch_http_requests_total{method="POST",route="/v1/search",status="200"}')
    )
    assert float(line.split()[-1]) == 20  # both workers' counts, whichever answered /metrics


def test_serve_starts_before_its_index_exists(tiny_bm25_index: Path, tmp_path: Path) -> None:
    """An index that is not built yet: a warning, 503 from /ready and searches, then served once it appears."""
    later = tmp_path / "later"
    with serve("--index", f"tiny={later}", log=tmp_path / "serve.log", ready_status=503) as (url, _):
        assert httpx.get(f"{url}/health").status_code == 200
        search = httpx.post(f"{url}/v1/search", json={"query": "buckling of cylindrical shells"})
        assert search.status_code == 503 and f"no index at {later}" in search.json()["error"]["message"]
        tiny_bm25_index.rename(later)  # built meanwhile (IndexWriter renames a finished index into place)
        assert httpx.get(f"{url}/ready").status_code == 200
        assert httpx.post(f"{url}/v1/search", json={"query": "buckling of cylindrical shells"}).json()["hits"]
    log = (tmp_path / "serve.log").read_text()
    assert f"warning: no index at {later} yet" in log and "Traceback" not in log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no index to serve"),
        (("--index", "x", "--backend", "opensearch"), "needs --url"),
        (("--index", "x", "--backend", "solr"), "backend"),
    ],
)
def test_bad_serve_arguments_are_one_line(args: tuple[str, ...], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARSEARCH_")}
    result = subprocess.run([str(SPARSEARCH), "serve", *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode in (1, 2)
    assert message in result.stderr and "Traceback" not in result.stderr
