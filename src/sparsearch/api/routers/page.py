"""The search page at ``/``: static HTML and a little JavaScript shipped as package data."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

STATIC_PACKAGE = ("sparsearch.api", "static")
"""Where the page's files live: ``sparsearch/api/static/`` (mounted at ``/static``)."""

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/", response_class=HTMLResponse)
def page() -> HTMLResponse:
    html = (resources.files(STATIC_PACKAGE[0]) / STATIC_PACKAGE[1] / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers=PAGE_HEADERS)
