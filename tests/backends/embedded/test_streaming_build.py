"""Builds past the in-memory limit: the writer flushes its postings run by run and concatenates the
runs into the same segment a one-pass build writes, byte for byte; merges stream the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from sparsearch.backends.embedded import writer as writer_module
from sparsearch.backends.embedded.codec import WINDOW_DOCS
from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.segment import POSTINGS_FILES
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint

FINGERPRINT = EncoderFingerprint(name="random", vocab_hash="v", idf_hash="i")
N_DOCS = WINDOW_DOCS + 9_000  # two windows
VOCAB = 30
FILES = (*POSTINGS_FILES, "weights.npy", "vocab.json", "doc_ids.json", "doc_id_rank.npy", "docs.jsonl")


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(11)
    dense = np.where(rng.random((N_DOCS, VOCAB)) < 0.08, rng.uniform(0.01, 3, (N_DOCS, VOCAB)), 0).astype(np.float32)
    dense[:, 7] *= 40  # one term with a much larger scale in some runs than in others
    dense[: N_DOCS // 2, 7] /= 400
    return sp.csr_matrix(dense)


def build(path: Path, matrix: sp.csr_matrix, batch: int) -> EmbeddedIndex:
    vocab = [f"t{i}" for i in range(VOCAB)][::-1]  # a vocabulary order the builder does not keep
    with IndexWriter(path, FINGERPRINT) as writer:
        for lo in range(0, matrix.shape[0], batch):
            rows = matrix[lo : lo + batch]
            documents = [Document(doc_id=f"d{i:06d}", text=f"text {i}") for i in range(lo, lo + rows.shape[0])]
            writer.add_csr(documents, rows.indptr, VOCAB - 1 - rows.indices, rows.data, vocab)
    assert not (path / ".runs").exists()
    return writer.index


def test_runs_concatenate_to_the_one_pass_segment(tmp_path: Path, matrix, monkeypatch) -> None:
    one_pass = build(tmp_path / "one", matrix, 5_000)
    monkeypatch.setattr(writer_module, "RUN_POSTINGS", 20_000)  # a run every few hundred documents
    written = []
    write_run = IndexWriter._write_run
    monkeypatch.setattr(IndexWriter, "_write_run", lambda self: written.append(1) or write_run(self))
    runs = build(tmp_path / "runs", matrix, 777)
    assert len(written) > 5
    for name in FILES:
        assert (tmp_path / "one" / "seg-000001" / name).read_bytes() == (
            tmp_path / "runs" / "seg-000001" / name
        ).read_bytes(), name
    assert one_pass.manifest["nnz"] == runs.manifest["nnz"] == matrix.nnz
    assert one_pass.manifest["avg_terms_per_doc"] == runs.manifest["avg_terms_per_doc"]
    rng = np.random.default_rng(3)
    dense = matrix.toarray().astype(np.float64)
    for _ in range(20):
        terms = rng.choice(VOCAB, size=4, replace=False)
        weights = rng.uniform(0.1, 2, 4)
        scores = dense[:, terms] @ weights
        hits = runs.search(
            EncodedQuery({f"t{t}": float(w) for t, w in zip(terms, weights, strict=True)}, FINGERPRINT), 10
        )
        expected = sorted(np.flatnonzero(scores > 0).tolist(), key=lambda d: (-scores[d], d))[:10]
        assert [h.doc_id for h in hits] == [f"d{d:06d}" for d in expected]


def test_merge_streams_segments_and_drops_deleted_documents_terms(tmp_path: Path, matrix) -> None:
    index = build(tmp_path / "index", matrix[:3000], 3000)
    index = EmbeddedIndex.open(tmp_path / "index", auto_merge=False)
    index.upsert([Document("extra", "new")], [{"only-here": 2.5, "t3": 1.0}])
    index.delete(["d000000", "d000001", "extra"])
    assert index.merge()
    (segment,) = index.manifest["segments"]
    assert segment["n_docs"] == 2998 and "only-here" not in index.postings.vocab
    postings = index.postings
    kept = matrix[2:3000].tocsc()
    order = [postings.vocab.index(f"t{t}") for t in range(VOCAB)]
    np.testing.assert_array_equal(np.diff(postings.indptr)[order], np.diff(kept.indptr))
    assert index.get_documents(["d000002"])[0].text == "text 2"


def test_query_tokens_without_a_positive_weight_are_left_out(tmp_path: Path, matrix) -> None:
    index = build(tmp_path / "index", matrix[:2000], 2000)
    plain = index.search(EncodedQuery({"t3": 1.0}, FINGERPRINT), 5)
    noisy = index.search(EncodedQuery({"t3": 1.0, "t4": float("nan"), "t5": -2.0, "t6": 0.0}, FINGERPRINT), 5)
    assert noisy == plain and len(plain) == 5
