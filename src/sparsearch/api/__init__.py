"""The REST search service: ``create_app(settings)`` builds the FastAPI app ``sparsearch serve`` runs.

Importing this package imports nothing heavy (fastapi is imported when an app is built), but it
checks that the ``api`` extra is installed, so that importing any ``sparsearch.api`` module without
it raises an ImportError naming the extra instead of a bare "No module named 'fastapi'".
"""

import importlib.util

from sparsearch.errors import MissingExtraError

for _module in ("fastapi", "uvicorn", "pydantic_settings", "prometheus_client"):
    if importlib.util.find_spec(_module) is None:  # looks for the module without importing it
        raise MissingExtraError(_module, "api")

from sparsearch.api.app import create_app, create_app_from_env  # noqa: E402 - after the check
from sparsearch.api.settings import Settings  # noqa: E402

__all__ = ["Settings", "create_app", "create_app_from_env"]
