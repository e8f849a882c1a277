"""Shared fixtures of the benchmark tests: ``bench/run.py`` imported as a module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def run_module():
    """``bench/run.py`` (and ``bench/peers/`` on the path for its adapters), for one test module."""
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, str(BENCH / "peers"))
    import run

    yield run
    sys.path.remove(str(BENCH))
    sys.path.remove(str(BENCH / "peers"))
