"""FastAPI dependencies: the settings, metrics and index registry a request works with.

All three live on ``app.state`` (set by :func:`sparsearch.api.create_app` and its lifespan), so a
test's app never sees another app's objects.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sparsearch.api.errors import ApiError
from sparsearch.api.metrics import Metrics
from sparsearch.api.registry import IndexRegistry
from sparsearch.api.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_registry(request: Request) -> IndexRegistry:
    registry = getattr(request.app.state, "registry", None)
    if registry is None:  # only before the lifespan ran (an app used without starting it)
        raise ApiError(
            503, "starting", "the service is still starting; retry in a moment", headers={"Retry-After": "1"}
        )
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RegistryDep = Annotated[IndexRegistry, Depends(get_registry)]
