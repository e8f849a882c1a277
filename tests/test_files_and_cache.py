"""One cache root everywhere, and the shared file helpers of :mod:`sparsearch._files`."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from sparsearch._cache import cache_root
from sparsearch._files import directory_bytes, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]


def _load_script(path: Path, name: str) -> ModuleType:
    """A script outside the package (bench/, scripts/) loaded as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def _cache_roots() -> dict[str, Callable[[], Path]]:
    """Every place that computes a path under the cache, mapped back to the root it uses."""
    from sparsearch.backends.engines.client import default_cache_dir
    from sparsearch.encoders import minilm_base, semantic

    bench_run = _load_script(ROOT / "bench" / "run.py", "_bench_run_for_cache_test")
    bench_peers = _load_script(ROOT / "bench" / "peers" / "env.py", "_bench_peers_env_for_cache_test")
    prose = _load_script(ROOT / "scripts" / "prose_corpus.py", "_prose_corpus_for_cache_test")
    return {
        "encoders.minilm_base": lambda: minilm_base._models_dir().parent,
        "encoders.semantic": lambda: semantic._cache_dir().parent,
        "backends.engines.client": default_cache_dir,
        "bench/run.py": bench_run.cache_dir,
        "bench/peers/env.py": bench_peers.cache_root,
        "scripts/prose_corpus.py": lambda: prose.default_cache_dir().parent,
    }


@pytest.mark.parametrize("value", ["", "  ", None])
def test_an_empty_or_unset_cache_variable_gives_the_same_root_everywhere(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("SPARSEARCH_CACHE", raising=False)
    else:
        monkeypatch.setenv("SPARSEARCH_CACHE", value)
    expected = Path.home() / ".cache" / "sparsearch"
    assert cache_root() == expected
    assert {where: root() for where, root in _cache_roots().items()} == dict.fromkeys(_cache_roots(), expected)


def test_a_cache_variable_with_a_tilde_is_expanded_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARSEARCH_CACHE", "~/elsewhere")
    expected = Path.home() / "elsewhere"
    assert {where: root() for where, root in _cache_roots().items()} == dict.fromkeys(_cache_roots(), expected)


def test_write_json_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"n_docs": 1})
    write_json_atomic(target, {"n_docs": 2, "name": "é"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"n_docs": 2, "name": "é"}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_write_json_atomic_keeps_the_old_file_when_the_payload_fails(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"n_docs": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text(encoding="utf-8")) == {"n_docs": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_directory_bytes_counts_files_recursively(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"123")
    assert directory_bytes(tmp_path) == 8


def test_directory_bytes_skips_files_removed_during_the_walk(tmp_path: Path, monkeypatch) -> None:
    """A merge may delete a segment's files while the stats route sums the folder: no error, a file
    removed before it is looked at counts as gone, one removed after counts as seen."""
    import os

    (tmp_path / "kept").write_bytes(b"12345")
    (tmp_path / "gone").write_bytes(b"1")
    (tmp_path / "late").write_bytes(b"123")
    real_stat = os.stat
    removed: set[str] = set()

    def stat(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        name = os.path.basename(path)
        if name == "gone" and name not in removed:
            removed.add(name)
            os.remove(path)  # removed between the listing and the look
        found = real_stat(path, *args, **kwargs)
        if name == "late" and name not in removed:
            removed.add(name)
            os.remove(path)  # removed right after the first look (rglob then stat failed here)
        return found

    monkeypatch.setattr(os, "stat", stat)
    assert directory_bytes(tmp_path) == 8
    monkeypatch.undo()
    (tmp_path / "link").symlink_to(tmp_path / "kept")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert directory_bytes(tmp_path) == 10  # links followed as Path.is_file does; a dangling one counts 0
