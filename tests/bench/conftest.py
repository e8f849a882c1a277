"""Shared fixtures of the benchmark tests: ``bench/run.py`` and ``bench/report.py`` imported as modules."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_module(name: str) -> Iterator[ModuleType]:
    """``bench/<name>.py`` with ``bench/`` and ``bench/peers/`` (the adapters) on the path meanwhile."""
    paths = [str(BENCH), str(BENCH / "peers")]
    sys.path[:0] = paths
    yield importlib.import_module(name)
    for path in paths:
        sys.path.remove(path)


@pytest.fixture(scope="module")
def run_module() -> Iterator[ModuleType]:
    """``bench/run.py``, for one test module."""
    yield from _bench_module("run")


@pytest.fixture(scope="module")
def report_module() -> Iterator[ModuleType]:
    """``bench/report.py``, for one test module."""
    yield from _bench_module("report")
