"""Index directory behaviour: manifest, mmap, atomic build, overwrite protection, encoder mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import EncoderMismatchError, IndexExistsError, IndexFormatError, IndexNotFoundError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint


def test_manifest_describes_the_index(tiny_bm25_index: Path) -> None:
    manifest = json.loads((tiny_bm25_index / "manifest.json").read_text())
    assert manifest["format_version"] == 4
    assert [segment["name"] for segment in manifest["segments"]] == ["seg-000001"]
    assert manifest["n_docs"] == 8
    assert manifest["empty_documents"] == 1
    assert manifest["encoder"]["name"] == "bm25"
    assert manifest["dtype"] == {
        "window_offsets": "uint32",
        "doc_low": "uint16",
        "impacts": "uint8",
        "weights": "float32",
    }
    index = EmbeddedIndex.open(tiny_bm25_index)
    assert isinstance(index.postings.weights, np.memmap)  # exact weights stay on disk until rescoring reads them
    assert index.postings.nnz == manifest["nnz"] > 0
    assert not list(tiny_bm25_index.glob("**/*.pkl"))


def test_refuses_to_overwrite_unless_asked(tiny_data: Path, tiny_bm25_index: Path) -> None:
    before = (tiny_bm25_index / "manifest.json").read_text()
    with pytest.raises(IndexExistsError, match="--overwrite"):
        build_embedded_index(tiny_data, tiny_bm25_index, load_encoder("bm25"))
    assert (tiny_bm25_index / "manifest.json").read_text() == before
    index, summary = build_embedded_index(tiny_data, tiny_bm25_index, load_encoder("bm25-wordpiece"), overwrite=True)
    assert index.fingerprint.name == "bm25-wordpiece" and summary.documents == 8
    assert [p.name for p in tiny_bm25_index.parent.iterdir() if p.name.startswith(".")] == []


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    fingerprint = EncoderFingerprint("x", "v", "i")
    with pytest.raises(RuntimeError), IndexWriter(tmp_path / "index", fingerprint) as writer:
        writer.add([Document("a", "text")], [{"t": 1.0}])
        raise RuntimeError("encoder crashed")
    assert list(tmp_path.iterdir()) == []


def test_query_from_another_encoder_is_refused(tiny_data: Path, tiny_bm25_index: Path) -> None:
    index = EmbeddedIndex.open(tiny_bm25_index)
    other = load_encoder("bm25-wordpiece")
    other.fit(["a different corpus"])
    with pytest.raises(EncoderMismatchError, match="built with encoder 'bm25'"):
        index.search(other.encode_query("wing"), 5)


def test_missing_and_damaged_indexes_give_clear_errors(tmp_path: Path, tiny_bm25_index: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="sparsearch index"):
        EmbeddedIndex.open(tmp_path / "nothing-here")
    manifest = json.loads((tiny_bm25_index / "manifest.json").read_text())
    (tiny_bm25_index / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="rebuild"):
        EmbeddedIndex.open(tiny_bm25_index)


def test_saved_encoder_answers_like_the_original(tiny_data: Path, tmp_path: Path) -> None:
    encoder = load_encoder("bm25")
    index, _ = build_embedded_index(tiny_data, tmp_path / "index", encoder)
    reloaded = load_encoder(index.encoder_dir)
    query = "heat transfer in boundary layers"
    assert reloaded.encode_query(query) == encoder.encode_query(query)
    assert reloaded.fingerprint == index.fingerprint
    hits = index.search(reloaded.encode_query(query), 3)
    assert hits[0].doc_id == "d3"


def test_empty_query_matches_nothing(tiny_bm25_index: Path) -> None:
    index = EmbeddedIndex.open(tiny_bm25_index)
    assert index.search(EncodedQuery({}, index.fingerprint), 10) == []
