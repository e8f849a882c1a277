"""Connection bounds of ``sparsearch serve`` (slowloris): real sockets against a real uvicorn server.

Every assertion is about what the server did (closed the connection, answered 503 or 400), never
about how long it took; socket timeouts only keep a broken server from hanging the test.
"""

from __future__ import annotations

import pickle
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparsearch.api.server import HeadTimeoutH11Protocol, uvicorn_options
from tests.api.conftest import make_settings
from tests.api.test_serve_cli import serve

GUARD = 60.0
"""Seconds a socket waits before the test gives up on the server (never reached when it works)."""


class BoundedServer:
    """uvicorn in a thread, run with :func:`uvicorn_options` as ``sparsearch serve`` runs it."""

    def __init__(self, settings) -> None:  # noqa: ANN001
        import uvicorn

        from sparsearch.api import create_app

        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", **uvicorn_options(settings)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-bounded", daemon=True)

    def __enter__(self) -> BoundedServer:
        self.thread.start()
        deadline = time.monotonic() + GUARD
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start (see the log above)")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        # wait for the warm-up (kernel compiles hold the GIL this test's sockets share with the server)
        if not self.app.state.registry.wait_warm(timeout=300):
            raise RuntimeError("the test server did not warm up (see the log above)")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=GUARD)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=GUARD)


def read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket timeout: it never did)."""
    received = b""
    while chunk := connection.recv(65_536):
        received += chunk
    return received


def read_response(connection: socket.socket) -> bytes:
    """One response with a Content-Length body (the connection stays open)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65_536)
        assert chunk, f"closed before a full response head: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += connection.recv(65_536)
    return head + b"\r\n\r\n" + body


HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture
def bounded(tiny_bm25_index: Path) -> Iterator[BoundedServer]:
    """A server whose request heads must arrive within a second (each test's requests take milliseconds)."""
    settings = make_settings(
        f"tiny={tiny_bm25_index}", request_head_timeout_seconds=1.0, max_concurrency=3, max_request_head_bytes=2_048
    )
    with BoundedServer(settings) as server:
        yield server


@pytest.fixture
def crowded(tiny_bm25_index: Path) -> Iterator[BoundedServer]:
    """A server that takes 3 connections at most (and gives heads plenty of time)."""
    settings = make_settings(f"tiny={tiny_bm25_index}", request_head_timeout_seconds=GUARD, max_concurrency=3)
    with BoundedServer(settings) as server:
        yield server


@pytest.mark.parametrize(
    "partial", [b"", b"G", b"GET /health HTTP/1.1\r\n", b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: 1"]
)
def test_a_connection_without_a_complete_request_head_is_closed(bounded: BoundedServer, partial: bytes) -> None:
    with bounded.connect() as connection:
        connection.sendall(partial)
        assert read_until_closed(connection) == b""  # closed by the server, nothing answered


def test_the_head_timer_restarts_for_the_next_request_on_a_kept_alive_connection(bounded: BoundedServer) -> None:
    with bounded.connect() as connection:
        for _ in range(3):  # complete requests are answered and the connection stays open
            connection.sendall(HEALTH)
            assert read_response(connection).startswith(b"HTTP/1.1 200 ")
        connection.sendall(b"GET /health HTTP/1.1\r\n")  # then a head that never completes
        assert read_until_closed(connection) == b""


def test_a_head_over_the_size_limit_is_refused(bounded: BoundedServer) -> None:
    """h11 buffers at most max_request_head_bytes of an incomplete head, then refuses it (uvicorn's own
    plain-text 400: it comes before any request reaches the app)."""
    with bounded.connect() as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 4_096)
        assert read_until_closed(connection).startswith(b"HTTP/1.1 400 ")


def test_past_the_concurrency_limit_new_requests_get_503(crowded: BoundedServer) -> None:
    with crowded.connect() as first, crowded.connect() as second:
        for connection in (first, second):  # answered: both connections are now registered by the server
            connection.sendall(HEALTH)
            assert read_response(connection).startswith(b"HTTP/1.1 200 ")
        with crowded.connect() as third:
            third.sendall(HEALTH)
            assert read_until_closed(third).startswith(b"HTTP/1.1 503 ")
    connections = crowded.server.server_state.connections
    deadline = time.monotonic() + GUARD
    while connections and time.monotonic() < deadline:  # until the server has seen the others close
        time.sleep(0.01)
    with crowded.connect() as again:  # room again
        again.sendall(HEALTH)
        assert read_response(again).startswith(b"HTTP/1.1 200 ")


def test_uvicorn_options_follow_the_settings() -> None:
    settings = make_settings(
        "tiny=unused",
        request_head_timeout_seconds=7.5,
        keep_alive_timeout_seconds=3,
        max_concurrency=50,
        max_request_head_bytes=8_192,
    )
    options = uvicorn_options(settings)
    assert options["timeout_keep_alive"] == 3 and options["limit_concurrency"] == 50
    assert options["h11_max_incomplete_event_size"] == 8_192
    assert options["http"].func is HeadTimeoutH11Protocol and options["http"].keywords == {"head_timeout": 7.5}
    assert pickle.loads(pickle.dumps(options["http"])).keywords == {"head_timeout": 7.5}  # crosses to --workers


def test_sparsearch_serve_closes_stalled_connections(tiny_bm25_index: Path, tmp_path: Path) -> None:
    environment = {"SPARSEARCH_REQUEST_HEAD_TIMEOUT_SECONDS": "1"}
    with serve("--index", f"tiny={tiny_bm25_index}", log=tmp_path / "serve.log", environment=environment) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=GUARD) as connection:
            connection.sendall(b"POST /v1/search HTTP/1.1\r\nHost: test\r\nContent-")
            assert read_until_closed(connection) == b""
