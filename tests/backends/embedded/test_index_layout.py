"""The embedded index's on-disk layout: narrow posting offsets, no stored bounds (so the postings are
exactly scipy's CSC arrays of the matrix), format-1 indexes still read, and MaxScore with bounds
computed on first use equal to brute force."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.kernels import PRUNING_MIN_DOCS
from sparsearch.backends.embedded.postings import UNKNOWN_MAX_WEIGHT, offsets_dtype
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint

FINGERPRINT = EncoderFingerprint(name="random", vocab_hash="v", idf_hash="i")
N_DOCS = PRUNING_MIN_DOCS + 808  # large enough for the MaxScore estimate (bounds on first use) at top_k 10
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


def test_offsets_are_stored_narrow_and_postings_match_scipy_csc(index_path: Path, matrix: sp.csr_matrix) -> None:
    data = index_path / "seg-000001"
    stored = {name: np.load(data / f"{name}.npy") for name in ("indptr", "doc_idx", "weights")}
    assert stored["indptr"].dtype == np.uint32
    assert not (data / "max_weight.npy").exists()
    assert json.loads((index_path / "manifest.json").read_text())["dtype"]["indptr"] == "uint32"
    csc = matrix.tocsc()  # scipy's own choice of widths for this matrix
    assert sum(a.nbytes for a in stored.values()) == csc.indptr.nbytes + csc.indices.nbytes + csc.data.nbytes
    np.testing.assert_array_equal(stored["indptr"], csc.indptr)
    np.testing.assert_array_equal(stored["doc_idx"], csc.indices)
    np.testing.assert_array_equal(stored["weights"], csc.data)


def test_offsets_dtype_widens_past_uint32() -> None:
    assert offsets_dtype(2**32 - 1) == np.uint32
    assert offsets_dtype(2**32) == np.int64


def test_maxscore_with_bounds_computed_on_first_use_equals_brute_force(index_path: Path, matrix: sp.csr_matrix) -> None:
    index = EmbeddedIndex.open(index_path)
    assert (index.postings.max_weight == UNKNOWN_MAX_WEIGHT).all()
    assert_equals_brute_force(index, matrix, seed=1)
    bounds = np.asarray(index.postings.max_weight)
    used = bounds != UNKNOWN_MAX_WEIGHT
    assert used.any()
    column_max = matrix.tocsc().max(axis=0).toarray().ravel()
    np.testing.assert_array_equal(bounds[used], column_max[used])
    batch = [EncodedQuery({f"t{t}": w for t, w in q.items()}, FINGERPRINT) for q in queries(2, 40)]
    fresh = EmbeddedIndex.open(index_path)  # threads fill the bounds concurrently
    assert fresh.search_batch(batch, 10, threads=4) == index.search_batch(batch, 10)


def as_legacy_index(index_path: Path, target: Path, version: int) -> Path:
    """A copy of a one-segment index in the layout of formats 1-2: one ``gen-000001`` folder."""
    import shutil

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


def test_format_1_indexes_still_open(index_path: Path, matrix: sp.csr_matrix, tmp_path: Path) -> None:
    data = as_legacy_index(index_path, tmp_path / "old", version=1)
    np.save(data / "indptr.npy", np.load(data / "indptr.npy").astype(np.int64))
    np.save(data / "max_weight.npy", matrix.tocsc().max(axis=0).toarray().ravel().astype(np.float32))
    index = EmbeddedIndex.open(tmp_path / "old")
    assert index.postings.indptr.dtype == np.int64
    assert (index.postings.max_weight > 0).any()
    assert_equals_brute_force(index, matrix, seed=3)


def test_format_2_indexes_take_updates_and_become_format_3(
    index_path: Path, matrix: sp.csr_matrix, tmp_path: Path
) -> None:
    as_legacy_index(index_path, tmp_path / "old", version=2)
    index = EmbeddedIndex.open(tmp_path / "old", auto_merge=False)
    assert index.delete(["d000000"]) == 1
    assert index.manifest["format_version"] == 3
    assert [s["name"] for s in index.manifest["segments"]] == ["gen-000001"]
    assert index.merge()
    assert sorted(p.name for p in (tmp_path / "old").iterdir() if not p.name.startswith(".")) == [
        "manifest.json",
        "seg-000001",
    ]  # the legacy folder is gone (this test index has no encoder/)
    assert index.count() == matrix.shape[0] - 1 and "d000000" not in index.doc_ids
