"""Streamed synthetic corpora (bench/run.py ``synthetic_corpus``, bench/peers/harness.py ``Corpus``): the
folder holds a descriptor and the profile instead of docs.npz, and regenerating its rows gives exactly the
materialised corpus of the same profile and seed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

N_DOCS = 3_000
GENERATOR_CHUNK = 700  # several generator chunks, none aligned with the chunks read back


@pytest.fixture(scope="module")
def profile():
    """A small hand-made profile: 300 tokens with Zipf-like document frequencies."""
    from sparsearch.eval.synthetic import CorpusProfile

    rng = np.random.default_rng(5)
    df_fraction = np.minimum(1.0, 3.0 / np.arange(1, 301))
    lengths = rng.integers(1, 40, size=500).astype(np.int64)
    weights = rng.gamma(2.0, 0.5, size=2_000).astype(np.float32) + np.float32(0.01)
    return CorpusProfile([f"tok{i}" for i in range(300)], df_fraction, lengths, weights)


@pytest.fixture(scope="module")
def corpora(run_module, profile, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """The same corpus twice: materialised (docs.npz) and streamed (generated.json + profile.npz)."""
    out = {}
    for kind in ("materialised", "streamed"):
        path = tmp_path_factory.mktemp(kind)
        meta = run_module.synthetic_corpus(
            profile, N_DOCS, 25, path, with_text=False, streamed=kind == "streamed", chunk=GENERATOR_CHUNK
        )
        out[kind] = (path, meta)
    return out


def all_rows(corpus, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Every row of ``corpus.iter_rows(chunk)`` as one CSR matrix, with the chunks' row counts."""
    pieces = list(corpus.iter_rows(chunk))
    sizes = [len(indptr) - 1 for indptr, _, _ in pieces]
    for indptr, terms, weights in pieces:
        assert indptr.dtype == np.int64 and terms.dtype == np.int32 and weights.dtype == np.float32
        assert indptr[0] == 0 and indptr[-1] == len(terms) == len(weights)
    offsets = np.cumsum([0] + [int(p[0][-1]) for p in pieces])
    indptr = np.concatenate([[0]] + [p[0][1:] + offsets[i] for i, p in enumerate(pieces)])
    return indptr, np.concatenate([p[1] for p in pieces]), np.concatenate([p[2] for p in pieces]), sizes


@pytest.mark.parametrize("chunk", [1_000, GENERATOR_CHUNK, 256, N_DOCS * 2])
def test_streamed_corpus_regenerates_the_materialised_rows(run_module, corpora, chunk) -> None:
    from harness import Corpus

    materialised, streamed = Corpus.load(corpora["materialised"][0]), Corpus.load(corpora["streamed"][0])
    assert not materialised.streamed and streamed.streamed
    assert materialised.n_docs == streamed.n_docs == N_DOCS
    expected = all_rows(materialised, chunk)
    found = all_rows(streamed, chunk)
    assert expected[3] == found[3] == [min(chunk, N_DOCS - s) for s in range(0, N_DOCS, chunk)]
    for want, got in zip(expected[:3], found[:3], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(found[0], materialised.doc_indptr)  # the stored arrays themselves
    np.testing.assert_array_equal(found[1], materialised.doc_terms)
    np.testing.assert_array_equal(found[2], materialised.doc_weights)
    assert streamed.read_s > 0


def test_streamed_folder_holds_no_documents_and_the_same_queries(run_module, corpora) -> None:
    from harness import Corpus, StreamedCorpusError

    (path, meta), (stored_path, stored_meta) = corpora["streamed"], corpora["materialised"]
    assert not (path / "docs.npz").exists()
    assert sorted(f.name for f in path.iterdir()) == ["generated.json", "profile.npz", "queries.npz", "vocab.json"]
    descriptor = json.loads((path / "generated.json").read_text())
    assert (descriptor["n_docs"], descriptor["seed"], descriptor["chunk"]) == (N_DOCS, N_DOCS, GENERATOR_CHUNK)
    assert meta["corpus_kind"] == "streamed" and stored_meta["corpus_kind"] == "materialised"
    assert meta["corpus_bytes"] == sum(f.stat().st_size for f in path.iterdir())
    assert meta["corpus_bytes"] < stored_meta["corpus_bytes"]
    same = ("docs", "avg_terms_per_doc", "avg_terms_per_query", "csc_bytes", "csc_dtypes")
    assert {key: meta[key] for key in same} == {key: stored_meta[key] for key in same}
    streamed, materialised = Corpus.load(path), Corpus.load(stored_path)
    assert streamed.query_dicts() == materialised.query_dicts()  # drawn from the whole corpus's IDF in both
    assert streamed.max_doc_weight() == materialised.max_doc_weight()
    with pytest.raises(StreamedCorpusError, match="streamed corpus .*iter_rows"):
        streamed.doc_terms  # noqa: B018 - a peer adapter asking for the whole arrays


def test_regeneration_that_draws_other_rows_is_refused(run_module, corpora, tmp_path) -> None:
    from harness import Corpus, StreamedCorpusError

    source = corpora["streamed"][0]
    for f in source.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    descriptor = json.loads((tmp_path / "generated.json").read_text())
    (tmp_path / "generated.json").write_text(json.dumps({**descriptor, "seed": descriptor["seed"] + 1}))
    with pytest.raises(StreamedCorpusError, match="first chunk differs"):
        next(Corpus.load(tmp_path).iter_rows(100))


def test_embedded_engine_builds_from_a_streamed_corpus(run_module, corpora, tmp_path) -> None:
    """In a fresh process, as bench/run.py runs it: exact top-10 on the streamed corpus equals numpy-csc's on
    the materialised one."""
    interpreters = {"project": Path(sys.executable)}
    ours = run_module.run_engine(
        "sparsearch-embedded", corpora["streamed"][0], tmp_path, {}, interpreters, repeats=1, timeout=300
    )
    baseline = run_module.run_engine(
        "numpy-csc", corpora["materialised"][0], tmp_path, {}, interpreters, repeats=1, timeout=300
    )
    assert "error" not in ours, ours.get("error")
    assert "error" not in baseline, baseline.get("error")
    assert ours["variants"][0]["top_k"] == baseline["variants"][0]["top_k"]
    assert ours["corpus_read_s"] > 0
    assert ours["settings"]["postings_bytes"] > 0


def test_which_engines_run_at_ten_million_documents(run_module, tmp_path) -> None:
    """At 10M documents the in-memory-CSC peers and Seismic are skipped by size, Lucene by its estimated
    build time; PISA's estimate (~22 min) fits the default one-hour step, not a 10-minute one."""
    engines = ["pisa", "lucene-impact", "numpy-csc", "splade-index", "seismic"]
    by = {r["engine"]: r for r in run_module.run_engines(tmp_path, tmp_path, engines, {}, {}, 1, 10_000_000, 3600)}
    assert by["pisa"].get("error") == "interpreter unavailable"  # not skipped: it was started
    assert by["lucene-impact"]["skipped"].startswith("estimated build 2.4 h")
    for engine in ("numpy-csc", "splade-index", "seismic"):
        assert "24 GB" in by[engine]["skipped"]
    (pisa,) = run_module.run_engines(tmp_path, tmp_path, ["pisa"], {}, {}, 1, 10_000_000, 600)
    assert pisa["skipped"].startswith("estimated build 0.4 h")
    (small,) = run_module.run_engines(tmp_path, tmp_path, ["lucene-impact"], {}, {}, 1, 1_000_000, 3600)
    assert "skipped" not in small  # 835 s at 1M: within the budget, as before
