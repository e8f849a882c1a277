"""The cache root and numba's cache: under $SPARSEARCH_CACHE, never next to the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparsearch._cache import cache_root, configure_numba_cache

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_an_unset_or_empty_cache_root_means_the_home_cache(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("SPARSEARCH_CACHE", raising=False)
    else:
        monkeypatch.setenv("SPARSEARCH_CACHE", value)
    assert cache_root() == Path.home() / ".cache" / "sparsearch"


def test_the_cache_root_expands_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARSEARCH_CACHE", "~/elsewhere")
    assert cache_root() == Path.home() / "elsewhere"


def test_numba_caches_under_the_cache_root_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from numba.core import config

    monkeypatch.setenv("SPARSEARCH_CACHE", str(tmp_path))
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # empty: unset, as numba reads it
    monkeypatch.setattr(config, "CACHE_DIR", "")  # numba was imported before without a cache directory
    assert configure_numba_cache() == str(tmp_path / "numba")
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")
    assert config.CACHE_DIR == str(tmp_path / "numba")

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path / "mine"))
    assert configure_numba_cache() == str(tmp_path / "mine")
    assert config.CACHE_DIR == str(tmp_path / "mine")


def test_the_kernels_cache_outside_the_package(tmp_path: Path) -> None:
    # A fresh interpreter: numba reads its configuration once, at its first import.
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    env.update(SPARSEARCH_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(SRC))
    script = (
        "import json, numba.core.config as c; from sparsearch.backends.embedded import kernels as k; "
        "print(json.dumps([c.CACHE_DIR, k.search_queries._cache.cache_path, k.__file__]))"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    numba_dir, cache_path, kernels_file = json.loads(done.stdout)
    assert numba_dir == str(tmp_path / "cache" / "numba")
    assert Path(cache_path).is_relative_to(tmp_path / "cache" / "numba")
    assert not Path(cache_path).is_relative_to(Path(kernels_file).parent)
