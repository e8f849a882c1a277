"""The REST search service: ``create_app(settings)`` builds the FastAPI app ``sparsearch serve`` runs.

Importing this package (or one of its modules such as ``schemas``) imports nothing heavy; fastapi is
imported when an app is built.
"""

from __future__ import annotations

_EXPORTS = {
    "create_app": "sparsearch.api.app",
    "create_app_from_env": "sparsearch.api.app",
    "Settings": "sparsearch.api.settings",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    # Lazy exports (PEP 562), as in the other subpackages.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
