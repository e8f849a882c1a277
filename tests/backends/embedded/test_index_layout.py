"""The embedded index's on-disk layout: compressed postings (uint16 offsets in windows, uint8 impacts,
exact float32 weights apart) that decode to exactly scipy's CSC arrays of the matrix and take at most
half their bytes; indexes of formats 1-3 (CSC arrays) still read, take updates and merge into the new
layout; searches equal brute force."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sparsearch.backends.embedded.codec import WINDOW_DOCS
from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.postings import offsets_dtype
from sparsearch.backends.embedded.segment import POSTINGS_FILES
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint

FINGERPRINT = EncoderFingerprint(name="random", vocab_hash="v", idf_hash="i")
N_DOCS = 2 * WINDOW_DOCS + 808  # three windows, the last one partial
VOCAB = 40


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    """(N_DOCS, VOCAB) random float32 document vectors, Zipf-like term frequencies, some duplicates."""
    rng = np.random.default_rng(5)
    popularity = 1.0 / np.arange(1, VOCAB + 1)
    rows = []
    for _ in range(N_DOCS):
        size = int(rng.integers(0, 9))
        terms = np.sort(rng.choice(VOCAB, size=size, replace=False, p=popularity / popularity.sum()))
        rows.append((terms, rng.uniform(0.01, 3.0, size=size).astype(np.float32)))
    rows[100] = rows[-1]  # identical vectors tie exactly; doc_id breaks the tie
    indptr = np.cumsum([0] + [len(t) for t, _ in rows])
    terms = np.concatenate([t for t, _ in rows]).astype(np.int32)
    weights = np.concatenate([w for _, w in rows])
    return sp.csr_matrix((weights, terms, indptr), shape=(N_DOCS, VOCAB))


@pytest.fixture(scope="module")
def index_path(tmp_path_factory, matrix: sp.csr_matrix) -> Path:
    path = tmp_path_factory.mktemp("layout") / "index"
    documents = [Document(doc_id=f"d{i:06d}", text="") for i in range(N_DOCS)]  # id order = row order
    with IndexWriter(path, FINGERPRINT) as writer:
        writer.add_csr(documents, matrix.indptr, matrix.indices, matrix.data, [f"t{i}" for i in range(VOCAB)])
    return path


def brute_force(matrix: sp.csr_matrix, query: dict[int, float], k: int) -> list[tuple[int, float]]:
    dense = matrix.toarray().astype(np.float64)
    scores = np.zeros(N_DOCS)
    for term, weight in query.items():
        scores += dense[:, term] * weight
    matched = np.flatnonzero((dense[:, list(query)] > 0).any(axis=1))
    return sorted(((int(d), float(scores[d])) for d in matched), key=lambda hit: (-hit[1], hit[0]))[:k]


def queries(seed: int, n: int) -> list[dict[int, float]]:
    rng = np.random.default_rng(seed)
    return [
        {int(t): float(rng.uniform(0.1, 4)) for t in rng.choice(VOCAB, size=int(rng.integers(1, 8)), replace=False)}
        for _ in range(n)
    ]


def assert_equals_brute_force(index: EmbeddedIndex, matrix: sp.csr_matrix, seed: int) -> None:
    for query in queries(seed, 25):
        hits = index.search(EncodedQuery({f"t{t}": w for t, w in query.items()}, FINGERPRINT), 10)
        expected = brute_force(matrix, query, 10)
        assert [h.doc_id for h in hits] == [f"d{d:06d}" for d, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-9)


def test_postings_are_compressed_and_decode_to_scipy_csc(index_path: Path, matrix: sp.csr_matrix) -> None:
    data = index_path / "seg-000001"
    stored = {name: np.load(data / name) for name in (*POSTINGS_FILES, "weights.npy")}
    assert stored["window_offsets.npy"].dtype == np.uint32
    assert stored["doc_low.npy"].dtype == np.uint16 and stored["impacts.npy"].dtype == np.uint8
    assert not (data / "doc_idx.npy").exists() and not (data / "indptr.npy").exists()
    csc = matrix.tocsc()  # scipy's own choice of widths for this matrix
    csc_bytes = csc.indptr.nbytes + csc.indices.nbytes + csc.data.nbytes
    assert sum(stored[name].nbytes for name in POSTINGS_FILES) <= 0.5 * csc_bytes
    np.testing.assert_array_equal(stored["weights.npy"], csc.data)  # the exact weights, in posting order
    postings = EmbeddedIndex.open(index_path).postings  # decoded
    np.testing.assert_array_equal(postings.indptr, csc.indptr)
    np.testing.assert_array_equal(postings.doc_idx, csc.indices)
    np.testing.assert_array_equal(postings.weights, csc.data)
    assert json.loads((index_path / "manifest.json").read_text())["format_version"] == 4


def test_impacts_are_within_one_step_of_the_weights(index_path: Path, matrix: sp.csr_matrix) -> None:
    data = index_path / "seg-000001"
    scale, impacts = np.load(data / "impact_scale.npy"), np.load(data / "impacts.npy")
    csc = matrix.tocsc()
    step = np.repeat(scale, np.diff(csc.indptr)).astype(np.float64)
    assert impacts.min() >= 1 and impacts.max() == 255
    assert (np.abs(step * impacts - csc.data) <= step).all()
    np.testing.assert_allclose(scale * 255, csc.max(axis=0).toarray().ravel(), rtol=1e-6)


def test_offsets_dtype_widens_past_uint32() -> None:
    assert offsets_dtype(2**32 - 1) == np.uint32
    assert offsets_dtype(2**32) == np.int64


def test_search_equals_brute_force_alone_and_in_threads(index_path: Path, matrix: sp.csr_matrix) -> None:
    index = EmbeddedIndex.open(index_path)
    assert_equals_brute_force(index, matrix, seed=1)
    batch = [EncodedQuery({f"t{t}": w for t, w in q.items()}, FINGERPRINT) for q in queries(2, 40)]
    assert index.search_batch(batch, 10, threads=4) == index.search_batch(batch, 10)


def as_csc_segment(data: Path, matrix: sp.csr_matrix, offsets: np.dtype) -> None:
    """Rewrite a segment folder's postings as formats 1-3 stored them: scipy's CSC arrays."""
    csc = matrix.tocsc()
    for name in POSTINGS_FILES:
        (data / name).unlink()
    np.save(data / "indptr.npy", csc.indptr.astype(offsets))
    np.save(data / "doc_idx.npy", csc.indices.astype(np.int32))
    np.save(data / "weights.npy", csc.data.astype(np.float32))


def as_legacy_index(index_path: Path, target: Path, version: int) -> Path:
    """A copy of a one-segment index in the layout of formats 1-2: one ``gen-000001`` folder."""
    shutil.copytree(index_path, target)
    (target / "seg-000001").rename(target / "gen-000001")
    manifest = json.loads((target / "manifest.json").read_text())
    keys = ("sparsearch_version", "created_at", "updated_at", "encoder", "n_docs", "n_terms", "nnz")
    legacy = {key: manifest[key] for key in keys} | {
        "format_version": version,
        "generation": 1,
        "data_dir": "gen-000001",
    }
    (target / "manifest.json").write_text(json.dumps(legacy))
    return target / "gen-000001"


def test_segments_without_block_maxima_derive_them_on_first_search(
    index_path: Path, matrix: sp.csr_matrix, tmp_path: Path
) -> None:
    """Format-4 segments written before block maxima were stored have no block_rows.npy/block_max.npy:
    the first search derives the same arrays from the postings."""
    stored_rows = np.load(index_path / "seg-000001" / "block_rows.npy")
    stored_max = np.load(index_path / "seg-000001" / "block_max.npy")
    assert 0 < (stored_rows >= 0).sum() < VOCAB  # the frequent terms only
    shutil.copytree(index_path, tmp_path / "older")
    for name in ("block_rows.npy", "block_max.npy"):
        (tmp_path / "older" / "seg-000001" / name).unlink()
    index = EmbeddedIndex.open(tmp_path / "older")
    assert_equals_brute_force(index, matrix, seed=6)
    rows, maxima = index._only_segment().compressed.block_bounds()
    np.testing.assert_array_equal(rows, stored_rows)
    np.testing.assert_array_equal(maxima, stored_max)


def test_format_1_indexes_still_open(index_path: Path, matrix: sp.csr_matrix, tmp_path: Path) -> None:
    data = as_legacy_index(index_path, tmp_path / "old", version=1)
    as_csc_segment(data, matrix, np.dtype(np.int64))
    np.save(data / "max_weight.npy", matrix.tocsc().max(axis=0).toarray().ravel().astype(np.float32))
    index = EmbeddedIndex.open(tmp_path / "old")
    np.testing.assert_array_equal(index.postings.doc_idx, matrix.tocsc().indices)
    assert_equals_brute_force(index, matrix, seed=3)


def test_format_3_segments_take_updates_and_merge_into_the_compressed_layout(
    index_path: Path, matrix: sp.csr_matrix, tmp_path: Path
) -> None:
    shutil.copytree(index_path, tmp_path / "v3")
    as_csc_segment(tmp_path / "v3" / "seg-000001", matrix, np.dtype(np.uint32))
    manifest = json.loads((tmp_path / "v3" / "manifest.json").read_text())
    (tmp_path / "v3" / "manifest.json").write_text(json.dumps(manifest | {"format_version": 3}))
    index = EmbeddedIndex.open(tmp_path / "v3", auto_merge=False)
    assert_equals_brute_force(index, matrix, seed=4)
    assert index.delete(["d000001"]) == 1
    assert index.manifest["format_version"] == 4
    assert index.merge()
    merged = tmp_path / "v3" / index.manifest["segments"][0]["name"]
    assert (merged / "doc_low.npy").is_file() and not (merged / "doc_idx.npy").exists()
    assert index.count() == matrix.shape[0] - 1


def test_format_2_indexes_take_updates_and_become_format_4(
    index_path: Path, matrix: sp.csr_matrix, tmp_path: Path
) -> None:
    data = as_legacy_index(index_path, tmp_path / "old", version=2)
    as_csc_segment(data, matrix, np.dtype(np.uint32))
    index = EmbeddedIndex.open(tmp_path / "old", auto_merge=False)
    assert index.delete(["d000000"]) == 1
    assert index.manifest["format_version"] == 4
    assert [s["name"] for s in index.manifest["segments"]] == ["gen-000001"]
    assert index.merge()
    assert sorted(p.name for p in (tmp_path / "old").iterdir() if not p.name.startswith(".")) == [
        "manifest.json",
        "seg-000001",
    ]  # the legacy folder is gone (this test index has no encoder/)
    assert index.count() == matrix.shape[0] - 1 and "d000000" not in index.doc_ids
