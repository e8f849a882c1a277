"""Start-up: the port listens before the search kernels are compiled, /ready says 503 until they are,
and the first search after /ready compiles nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparsearch.api.registry import EmbeddedHandle
from tests.api.conftest import app_client, make_settings
from tests.api.test_search import assert_error

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def started_cold(tiny_bm25_index: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, threading.Event]]:
    """A started app whose warm-up waits for the returned event (the compilation, held back)."""
    from fastapi.testclient import TestClient

    from sparsearch.api import create_app

    release = threading.Event()
    warm_up = EmbeddedHandle.warm_up

    def held_back(handle: EmbeddedHandle) -> None:
        assert release.wait(timeout=60)
        warm_up(handle)

    monkeypatch.setattr(EmbeddedHandle, "warm_up", held_back)
    with TestClient(create_app(make_settings(f"tiny={tiny_bm25_index}")), raise_server_exceptions=False) as client:
        try:
            yield client, release
        finally:
            release.set()


def test_ready_is_503_until_the_warm_up_ends(started_cold) -> None:
    client, release = started_cold
    assert client.get("/health").status_code == 200  # the app serves while warming up
    response = client.get("/ready")
    assert_error(response, 503, "warming_up", "retry")
    assert response.headers["retry-after"] == "1"
    registry = client.app.state.registry
    assert not registry.warm
    release.set()
    assert registry.wait_warm(timeout=60)
    assert client.get("/ready").status_code == 200


def test_a_failed_warm_up_does_not_keep_the_service_unready(
    tiny_bm25_index: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(handle: EmbeddedHandle) -> None:
        raise RuntimeError("no compiler today")

    monkeypatch.setattr(EmbeddedHandle, "warm_up", broken)
    with app_client(make_settings(f"tiny={tiny_bm25_index}")) as client:
        assert client.get("/ready").status_code == 200
        assert client.post("/v1/search", json={"query": "wing"}).status_code == 200
    assert "warming up index tiny failed" in caplog.text


def test_the_first_searches_after_ready_compile_nothing(tiny_bm25_index: Path) -> None:
    from numba.core import event

    from sparsearch.backends.embedded import kernels

    with app_client(make_settings(f"tiny={tiny_bm25_index}")) as client:
        assert client.get("/ready").status_code == 200
        signatures = list(kernels.search_queries.signatures)
        with event.install_recorder("numba:compile") as compiles:
            assert client.post("/v1/search", json={"query": "wing lift", "explain": True}).status_code == 200
            assert client.post("/v1/search/batch", json={"queries": ["wing", "propeller"]}).status_code == 200
        assert compiles.buffer == []
        assert kernels.search_queries.signatures == signatures


# The test above cannot tell "warmed at start" from "compiled earlier in this test process"; this one
# starts from an empty numba cache in a fresh interpreter, so every kernel compiles during the warm-up.
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from numba.core import event
    from sparsearch.api import Settings, create_app

    with TestClient(create_app(Settings(indexes=[sys.argv[1]]))) as client:
        registry = client.app.state.registry
        assert registry.wait_warm(timeout=600)
        ready = client.get("/ready").status_code
        with event.install_recorder("numba:compile") as compiles:
            single = client.post("/v1/search", json={"query": "wing lift", "explain": True}).status_code
            batch = client.post("/v1/search/batch", json={"queries": ["wing", "propeller"]}).status_code
    print(json.dumps({"ready": ready, "single": single, "batch": batch, "compiles": len(compiles.buffer)}))
    """
)


@pytest.mark.slow
def test_a_fresh_install_compiles_everything_before_ready(tiny_bm25_index: Path, tmp_path: Path) -> None:
    cache = tmp_path / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(tiny_bm25_index)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome == {"ready": 200, "single": 200, "batch": 200, "compiles": 0}
    assert any(cache.rglob("kernels.search_queries-*.nbi"))  # the compilation was cached for the next start
