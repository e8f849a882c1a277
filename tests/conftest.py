"""Shared fixtures: the tiny BEIR collection in tests/data/tiny and indexes built from it."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny"
BUNDLED_DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def tiny_data() -> Path:
    return TINY


def build_tiny_index(tmp_path_factory: pytest.TempPathFactory, model: str) -> Path:
    """An embedded index of tests/data/tiny built with ``model`` (for session-scoped fixtures)."""
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_embedded import build_embedded_index

    path = tmp_path_factory.mktemp(f"tiny-{model}") / "index"
    build_embedded_index(TINY, path, load_encoder(model))
    return path


@pytest.fixture(scope="session")
def _tiny_bm25_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_index(tmp_path_factory, "bm25")


@pytest.fixture
def tiny_bm25_index(_tiny_bm25_index: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny BM25 index (tests may modify it)."""
    copy = tmp_path / "index"
    shutil.copytree(_tiny_bm25_index, copy)
    return copy


def bundled_collection(name: str) -> Path:
    """A public collection bundled under the repository's data/; fails loudly (never skips) when missing."""
    path = BUNDLED_DATA / name
    if not (path / "corpus.jsonl").is_file():
        pytest.fail(f"{path} is missing: the bundled collections live in the repository's data/ folder")
    return path


# -- a real OpenSearch (started by scripts/test with scripts/opensearch) --------------------------------
OPENSEARCH_URL_ENV = "SPARSEARCH_TEST_OPENSEARCH_URL"


def _opensearch_version(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a local test engine
        info = json.load(response)
    return f"{info['version'].get('distribution', 'elasticsearch')} {info['version']['number']}"


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(OPENSEARCH_URL_ENV)
    if not url:
        return f"opensearch: none ({OPENSEARCH_URL_ENV} unset: the OpenSearch tests skip)"
    try:
        return f"opensearch: {_opensearch_version(url)} at {url}"
    except OSError as error:
        return f"opensearch: UNREACHABLE at {url} ({error})"


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    """URL of the real OpenSearch the engine tests use.

    Unset variable: the test skips, saying how to start one. Set but unreachable: the test FAILS
    (CI sets it, so a broken engine can never pass as skipped).
    """
    url = os.environ.get(OPENSEARCH_URL_ENV)
    if not url:
        pytest.skip(
            f"no OpenSearch: run scripts/test, or scripts/opensearch start --port 9200 and "
            f"export {OPENSEARCH_URL_ENV}=http://127.0.0.1:9200"
        )
    try:
        _opensearch_version(url)
    except OSError as error:
        pytest.fail(f"{OPENSEARCH_URL_ENV}={url} but OpenSearch does not answer ({error}); see scripts/opensearch")
    return url


# The tiny random models (a BERT MLM, a Llama causal LM) that encoder, training, job and CLI tests share.
from tests.tiny_models import tiny_llm_dir, tiny_mlm_dir  # noqa: E402, F401


@pytest.fixture(scope="session")
def _tiny_dense_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/data/tiny with BM25 and the dense model's window embeddings (``--dense``: hybrid search)."""
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_embedded import build_embedded_index

    path = tmp_path_factory.mktemp("tiny-dense") / "index"
    build_embedded_index(TINY, path, load_encoder("bm25"), dense=True)
    return path


@pytest.fixture
def tiny_dense_index(_tiny_dense_index: Path, tmp_path: Path) -> Path:
    """A private copy of the session's tiny index with dense vectors."""
    copy = tmp_path / "dense-index"
    shutil.copytree(_tiny_dense_index, copy)
    return copy
