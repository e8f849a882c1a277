"""Shared fixtures: the tiny BEIR collection in tests/data/tiny and indexes built from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_data() -> Path:
    return TINY


@pytest.fixture(scope="session")
def _tiny_bm25_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sparsearch.indexer.pipeline import build_embedded_index
    from sparsearch.retrieval.models import load_encoder

    path = tmp_path_factory.mktemp("tiny-bm25") / "index"
    build_embedded_index(TINY, path, load_encoder("bm25"))
    return path


@pytest.fixture
def tiny_bm25_index(_tiny_bm25_index: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny BM25 index (tests may modify it)."""
    copy = tmp_path / "index"
    shutil.copytree(_tiny_bm25_index, copy)
    return copy


def shared_collection(name: str) -> Path:
    """A collection from ../shared/data; fails loudly (never skips) when it is missing."""
    path = SHARED_DATA / name
    if not (path / "corpus.jsonl").is_file():
        pytest.fail(f"{path} is missing: the test collections must sit in ../shared/data beside the checkout")
    return path
