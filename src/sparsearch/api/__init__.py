"""The REST search service: ``create_app(settings)`` builds the FastAPI app ``sparsearch serve`` runs.

Importing this package imports nothing heavy (fastapi is imported when an app is built), but it
checks that the ``api`` extra is installed, so that importing any ``sparsearch.api`` module without
it raises an ImportError naming the extra instead of a bare "No module named 'fastapi'".
"""

from __future__ import annotations

import importlib.util

from sparsearch._lazy import lazy_exports
from sparsearch.errors import MissingExtraError

for _module in ("fastapi", "uvicorn", "pydantic_settings", "prometheus_client"):
    if importlib.util.find_spec(_module) is None:  # looks for the module without importing it
        raise MissingExtraError(_module, "api")

_EXPORTS = {
    "create_app": "sparsearch.api.app",
    "create_app_from_env": "sparsearch.api.app",
    "Settings": "sparsearch.api.settings",
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
