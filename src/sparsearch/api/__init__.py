"""The REST search service: ``create_app(settings)`` builds the FastAPI app ``sparsearch serve`` runs.

Importing this package imports nothing heavy; fastapi is imported when an app is built.
"""

from sparsearch.api.app import create_app, create_app_from_env
from sparsearch.api.settings import Settings

__all__ = ["Settings", "create_app", "create_app_from_env"]
