"""Fixtures for the HTTP service: apps over copies of the tiny index, and a real uvicorn server."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import build_tiny_index

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "api"
"""Where tests leave artefacts for people to look at (screenshots); git-ignored."""


@pytest.fixture(scope="session")
def _tiny_wordpiece_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_index(tmp_path_factory, "bm25-wordpiece")


@pytest.fixture
def tiny_wordpiece_index(_tiny_wordpiece_index: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "wordpiece"
    shutil.copytree(_tiny_wordpiece_index, copy)
    return copy


def make_settings(*indexes: Path | str, **overrides: object):
    """Settings serving ``indexes`` (``NAME=DIR`` strings or directories), ignoring the environment."""
    from sparsearch.api import Settings

    return Settings(indexes=[str(index) for index in indexes], **overrides)


@contextlib.contextmanager
def app_client(settings) -> Iterator:  # noqa: ANN001
    """A started and warmed-up app (lifespan ran, /ready is 200) and an in-process client for it."""
    from fastapi.testclient import TestClient

    from sparsearch.api import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.app.state.registry.wait_warm(timeout=300), "the app did not warm up"
        yield client


@pytest.fixture
def client(tiny_bm25_index: Path) -> Iterator:
    """An in-process client of an app serving a private copy of the tiny BM25 index as ``tiny``."""
    with app_client(make_settings(f"tiny={tiny_bm25_index}")) as client:
        yield client


class LiveServer:
    """A real uvicorn server on a free localhost port, in a background thread."""

    def __init__(self, settings) -> None:  # noqa: ANN001
        import uvicorn

        from sparsearch.api import create_app

        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start (see the log above)")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        if not self.app.state.registry.wait_warm(timeout=300):
            raise RuntimeError("the test server did not warm up (see the log above)")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def _served_index(tmp_path_factory: pytest.TempPathFactory, _tiny_bm25_index: Path) -> Path:
    copy = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(_tiny_bm25_index, copy)
    return copy


@pytest.fixture(scope="session")
def live_server(_served_index: Path, _tiny_wordpiece_index: Path) -> Iterator[LiveServer]:
    """One real server for the session: ``tiny`` (BM25 words, default) and ``wp`` (BM25 WordPiece).

    Read-only tests share it; tests that change an index start their own app.
    """
    with LiveServer(make_settings(f"tiny={_served_index}", f"wp={_tiny_wordpiece_index}")) as server:
        yield server


@pytest.fixture
def http(live_server: LiveServer) -> Iterator:
    import httpx

    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client
