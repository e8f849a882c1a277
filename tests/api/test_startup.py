"""Indexes that do not exist when the service starts: it starts, answers 503 for them, then serves them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparsearch.errors import IndexFormatError
from tests.api.conftest import app_client, make_settings
from tests.api.test_search import assert_error


def test_an_embedded_index_built_after_the_start_is_served(tiny_bm25_index: Path, tmp_path: Path) -> None:
    later = tmp_path / "later"
    with app_client(make_settings(f"tiny={later}", f"other={tiny_bm25_index}")) as client:
        assert client.get("/health").status_code == 200
        not_ready = assert_error(client.get("/ready"), 503, "not_ready", "tiny")
        assert [failure["loc"] for failure in not_ready["details"]] == [["indexes", "tiny"]]  # other is fine
        assert f"no index at {later}" in not_ready["details"][0]["message"]
        error = assert_error(client.post("/v1/search", json={"query": "wing"}), 503, "engine_unavailable", "'tiny'")
        assert "sparsearch index" in error["message"] and "retry" in error["message"]
        assert_error(client.get("/v1/indexes/tiny"), 503, "engine_unavailable")
        assert client.post("/v1/search", json={"query": "wing", "index": "other"}).status_code == 200

        shutil.copytree(tiny_bm25_index, later)  # built meanwhile by another process
        assert client.get("/ready").status_code == 200
        hits = client.post("/v1/search", json={"query": "wing"}).json()["hits"]
        assert hits and hits[0]["id"] == "d1"
        assert client.get("/v1/indexes/tiny").json()["documents"] == 8


def test_a_damaged_index_still_stops_the_start(tiny_bm25_index: Path) -> None:
    """Only a missing index is waited for; one that exists but cannot be read is a configuration error."""
    (tiny_bm25_index / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexFormatError, match="unreadable manifest"):
        with app_client(make_settings(f"tiny={tiny_bm25_index}")):
            pass
