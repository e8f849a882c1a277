"""``create_app(settings)``: the FastAPI application of the search service.

The app's ``lifespan`` opens every index and loads its encoder once, before the first request, and
closes them at shutdown. Compiling the search kernels (or loading them from numba's disk cache) and
a first query run in a background thread, so the port listens meanwhile; ``/ready`` answers 503
until they are done. Encoding and searching are CPU-bound, so they run in worker threads: most
routes are plain ``def`` functions (FastAPI's thread pool), and the search routes hand their work to a
thread themselves while they watch for the client hanging up. The event loop only moves bytes.

Run it with ``sparsearch serve``, or with any ASGI server through the environment::

    SPARSEARCH_INDEXES=indexes/cranfield uvicorn --factory sparsearch.api.app:create_app_from_env
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from sparsearch import __version__
from sparsearch.api.settings import Settings
from sparsearch.errors import require

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

DESCRIPTION = """
Learned sparse retrieval over HTTP. Queries are encoded by the index's own encoder into
`token -> weight` maps and scored by one dot product with the stored document weights.

* `POST /v1/search` answers one query; `explain: true` shows, per hit, each matched token's
  contribution (query weight x document weight), which add up to the score.
* Every error has the same body: `{"error": {"code", "message", "request_id", "details"}}`; every
  response carries an `X-Request-ID` header.
* When the service has API keys, send one in the `X-API-Key` header (all routes but `/health`).
"""

OPENAPI_TAGS = [
    {"name": "search", "description": "Search one or many text queries."},
    {"name": "indexes", "description": "The served indexes; add, replace and delete documents online."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
]


def create_app(settings: Settings) -> FastAPI:
    """Build the service's FastAPI app for ``settings`` (nothing is opened until the app starts).

    Returns:
        A ``fastapi.FastAPI`` instance; its lifespan opens the indexes and loads the encoders.

    Raises:
        MissingExtraError: fastapi or prometheus-client is not installed (``pip install 'sparsearch[api]'``).
    """
    require("fastapi", "api")
    from fastapi import FastAPI  # noqa: F811 - the runtime import of the TYPE_CHECKING name
    from fastapi.openapi.utils import get_openapi
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    from sparsearch.api.errors import install_error_handlers
    from sparsearch.api.metrics import Metrics
    from sparsearch.api.middleware import RequestContextMiddleware
    from sparsearch.api.registry import IndexRegistry
    from sparsearch.api.routers import indexes, ops, page, search

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # 1. open every index and load its encoder, once (in a thread: it reads files and may be slow)
        registry = await run_in_threadpool(IndexRegistry.open, settings)
        app.state.registry = registry
        log.info("serving %s (default %s)", ", ".join(registry.handles), registry.default)
        # 2. compile the search kernels and run a first query in the background (tens of seconds on a
        #    new install, before numba's cache holds them): the port listens meanwhile, /ready says 503
        threading.Thread(target=registry.warm_up, name="sparsearch-warm-up", daemon=True).start()
        try:
            yield
        finally:
            # 3. close the backends at shutdown
            app.state.registry = None
            registry.close()

    app = FastAPI(
        title="sparsearch",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
        # No redirect from /v1/search/ to /v1/search: Starlette builds that Location from the client's
        # Host header (reflected to any host). A path with a stray slash gets the JSON 404 instead.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.registry = None
    app.state.metrics = metrics = Metrics()
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        api_keys=[key.get_secret_value() for key in settings.api_keys],
        api_key_header=settings.api_key_header,
        trusted_hosts=settings.trusted_hosts,
    )
    for module in (search, indexes, ops, page):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[page.STATIC_PACKAGE]), name="static")

    def openapi() -> dict:
        # Document the API-key header in the schema (and in /docs' Authorize button) when keys are set.
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes, tags=OPENAPI_TAGS
            )
            if settings.api_keys:
                schema.setdefault("components", {})["securitySchemes"] = {
                    "apiKey": {"type": "apiKey", "in": "header", "name": settings.api_key_header}
                }
                for path, operations in schema["paths"].items():
                    if path != "/health":
                        for operation in operations.values():
                            operation["security"] = [{"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """The app for ``SPARSEARCH_*`` environment settings (uvicorn ``--factory``, worker processes)."""
    return create_app(Settings())
