"""``sparsearch serve``: run the REST search service (FastAPI under uvicorn).

uvicorn runs with the connection bounds of the settings (:func:`sparsearch.api.server.uvicorn_options`):
a request-head timeout (slowloris), the keep-alive timeout, a concurrency limit and a head size limit.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from sparsearch.cli._common import app, stderr, user_errors
from sparsearch.errors import SparsearchError, UsageError


def _settings(**flags: object):  # noqa: ANN202 - returns sparsearch.api.Settings (imported lazily)
    """Settings from ``SPARSEARCH_*`` environment variables, overridden by the flags that were given."""
    import pydantic

    from sparsearch.api.settings import Settings

    try:
        return Settings(**{name: value for name, value in flags.items() if value is not None})
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise UsageError(problems) from None


def _check_embedded_indexes(settings) -> None:  # noqa: ANN001
    """Warn about embedded index directories that do not exist yet: the service starts anyway and
    answers 503 for them (``/ready`` included) until they are built, then serves them."""
    if settings.backend != "embedded":
        return
    for spec in settings.index_specs():
        if not (Path(spec.location) / "manifest.json").is_file():
            stderr.print(
                f"warning: no index at {spec.location} yet (missing manifest.json); index {spec.name} answers 503 "
                f"until one is built with: sparsearch index --data PATH --index {spec.location}",
                highlight=False,
            )


def _check_port(host: str, port: int) -> None:
    """Fail with one line when ``host:port`` cannot be listened on.

    uvicorn would print "serving" first, log the bind error and exit with status 3. The probe binds the
    way uvicorn does (IPv6 when the host has a colon, SO_REUSEADDR so a closed server's TIME_WAIT
    connections are no conflict); a port taken between this check and uvicorn's bind still fails there.

    Raises:
        SparsearchError: the port is in use, or the host is not an address of this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SparsearchError(f"port {port} on {host} is in use; pick another with --port") from None
            if error.errno == errno.EACCES:
                raise SparsearchError(
                    f"no permission to listen on port {port} on {host}; pick a port above 1023 with --port"
                ) from None
            raise SparsearchError(
                f"cannot listen on {host}:{port} ({error.strerror or error}); check --host and --port"
            ) from None


@app.command()
def serve(
    index: Annotated[
        list[str] | None,
        typer.Option(
            "--index",
            metavar="DIR|NAME=DIR",
            help="Embedded: an index directory (NAME=DIR to name it); remote: an index name on the engine. "
            "Repeat to serve several; the first is the default.",
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            metavar="NAME",
            help="embedded (default), opensearch or elasticsearch "
            "(a --backend lucene index is searched with sparsearch search and eval; it is not served).",
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", metavar="URL", help="OpenSearch/Elasticsearch URL (remote backends).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", metavar="MODEL", help="Query encoder for remote backends (embedded: the index's own)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", metavar="HOST", help="Interface to bind (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", metavar="PORT", help="TCP port (default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes, each with its own model (default 1).")
    ] = None,
) -> None:
    """Serve search over HTTP: /v1/search, /docs, a search page at /.

    Every flag can also come from a SPARSEARCH_* environment variable (SPARSEARCH_INDEXES,
    SPARSEARCH_PORT...); API keys only come from SPARSEARCH_API_KEYS, never from the command line.
    """
    with user_errors():
        settings = _settings(
            indexes=index or None, backend=backend, engine_url=url, model=model, host=host, port=port, workers=workers
        )
        _check_embedded_indexes(settings)
        from sparsearch.errors import require

        uvicorn = require("uvicorn", "api")
        _check_port(settings.host, settings.port)
        names = ", ".join(spec.name for spec in settings.index_specs())
        stderr.print(
            f"serving {names} ({settings.backend}) on http://{settings.host}:{settings.port} "
            f"with {settings.workers} worker(s); search page at /, API docs at /docs",
            highlight=False,
        )
        from sparsearch.api.server import uvicorn_options

        bounds = uvicorn_options(settings)
        if settings.workers == 1:
            from sparsearch.api import create_app

            uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", **bounds)
            return
        # Several workers: uvicorn starts fresh processes that build the app from the environment.
        os.environ.update(settings.to_environment())
        with tempfile.TemporaryDirectory(prefix="sparsearch-metrics-") as metrics_dir:
            os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
            uvicorn.run(
                "sparsearch.api.app:create_app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_level="info",
                **bounds,
            )
