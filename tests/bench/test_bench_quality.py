"""The quality section's plumbing (bench/run.py) on tests/data/tiny: adapted models made once per
collection and cached, labelled rows with every column, and the siamese model indexed over the cached
document vectors of its inference-free twin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

COLUMNS = ("ndcg@10", "recall@100", "avg_terms_per_doc", "postings_per_query", "search_p50_ms", "kind")


def test_adapted_rows_run_adapt_once_per_collection(run_module, tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    from sparsearch.encoders.registry import load_encoder

    calls: list[tuple[Path, float, int]] = []

    def adapt(data: Path, output: Path, minutes: float, seed: int) -> None:
        # stands in for `sparsearch adapt` (slow, and being rewritten): any saved model directory will do
        calls.append((data, minutes, seed))
        load_encoder("bm25-wordpiece").save(output)

    monkeypatch.setattr(run_module, "run_adapt", adapt)
    rows = run_module.quality_rows([tiny_data], [run_module.ADAPTED], tmp_path, adapt_minutes=3, adapt_seed=5)
    assert [r["model"] for r in rows] == ["adapted (tiny)"]
    assert "error" not in rows[0], rows[0].get("error")
    assert all(rows[0][c] is not None for c in COLUMNS)
    assert calls == [(tiny_data, 3, 5)]
    (made,) = (tmp_path / "adapted").iterdir()
    assert made.name.startswith("tiny-") and (made / "config.json").is_file()
    assert rows[0]["kind"] == "bm25" and rows[0]["postings_per_query"] > 0 and rows[0]["ndcg@10"] > 0

    again = run_module.quality_rows([tiny_data], [run_module.ADAPTED], tmp_path)
    assert len(calls) == 1, "a cached adapted model is reused"
    assert again[0]["ndcg@10"] == rows[0]["ndcg@10"]
    run_module.quality_rows([tiny_data], [run_module.ADAPTED], tmp_path, reencode=True)
    assert len(calls) == 2, "--reencode runs adapt again"


def test_caches_are_keyed_by_the_model_content(run_module, tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    """A retrained model (new config.json, which carries its weight digests) gets a new index and a new
    adapted model; the same content keeps the cache entry, whatever the file's time."""
    from sparsearch.encoders import registry as models

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "config.json").write_text('{"head_digest": "a"}')
    monkeypatch.setattr(models, "default_model_dir", lambda: shipped)
    before = run_module.model_stamp(models.SHIPPED_MODEL)
    assert before and run_module.model_stamp("bm25") == ""
    (shipped / "config.json").write_text('{"head_digest": "a"}')  # rewritten, same content
    assert run_module.model_stamp(models.SHIPPED_MODEL) == before
    monkeypatch.setattr(run_module, "run_adapt", lambda data, output, *_: models.load_encoder("bm25").save(output))
    first = run_module.adapted_model(tiny_data, tmp_path, 1, 13)
    (shipped / "config.json").write_text('{"head_digest": "b"}')
    assert run_module.model_stamp(models.SHIPPED_MODEL) != before
    second = run_module.adapted_model(tiny_data, tmp_path, 1, 13)
    assert first != second and (first / "config.json").is_file() and (second / "config.json").is_file()
    assert run_module.model_stamp(str(first)) == run_module.model_stamp(str(second)) != ""


def test_encoded_collections_are_keyed_by_the_corpus_content(run_module, tiny_data: Path, tmp_path: Path) -> None:
    """A fresh clone (same corpus bytes, another folder, a new file time) reuses the cached index; a
    changed corpus gets a new one."""
    import shutil

    work = tmp_path / "work"
    first = run_module.cached_index("bm25", tiny_data, work)
    built = (first / "manifest.json").stat().st_mtime_ns
    clone = tmp_path / "clone" / tiny_data.name
    shutil.copytree(tiny_data, clone)  # new mtimes
    assert run_module.cached_index("bm25", clone, work) == first
    assert (first / "manifest.json").stat().st_mtime_ns == built, "reused, not rebuilt"
    with (clone / "corpus.jsonl").open("a") as corpus:
        corpus.write('{"_id": "extra", "title": "", "text": "one more document"}\n')
    changed = run_module.cached_index("bm25", clone, work)
    assert changed != first and (changed / "manifest.json").is_file()


def test_failed_adapt_becomes_an_error_row(run_module, tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(run_module, "run_adapt", lambda *args: "no documents to train on")
    rows = run_module.quality_rows([tiny_data], [run_module.ADAPTED], tmp_path)
    assert rows == [
        {"model": "adapted (tiny)", "collection": "tiny", "error": "sparsearch adapt failed: no documents to train on"}
    ]


def test_every_model_kind_is_in_the_quality_table(run_module) -> None:
    from sparsearch.encoders.registry import BUILTIN_MODELS

    assert run_module.ADAPTED in run_module.QUALITY_MODELS
    for model in run_module.QUALITY_MODELS:
        assert model == run_module.ADAPTED or model in BUILTIN_MODELS
    for model, partner in run_module.SAME_DOCUMENTS.items():
        assert model in run_module.QUALITY_MODELS and partner in run_module.QUALITY_MODELS


@pytest.mark.slow
def test_siamese_index_reuses_the_document_vectors(run_module, tiny_data: Path, tmp_path: Path) -> None:
    """The siamese index built over the cached inference-free vectors equals one encoded from scratch."""
    from sparsearch.backends.embedded.index import EmbeddedIndex
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_embedded import build_embedded_index

    siamese = "minilm-splade-siamese-untrained"
    reused = EmbeddedIndex.open(run_module.cached_index(siamese, tiny_data, tmp_path))
    assert len(list((tmp_path / "indexes").iterdir())) == 2  # the inference-free twin, then the siamese one
    encoded, _ = build_embedded_index(tiny_data, tmp_path / "direct", load_encoder(siamese))
    assert reused.fingerprint == encoded.fingerprint
    assert json.loads((reused.encoder_dir / "config.json").read_text())["kind"] == "siamese"
    assert reused.doc_ids == encoded.doc_ids and reused.postings.vocab == encoded.postings.vocab
    for name in ("indptr", "doc_idx", "weights"):
        np.testing.assert_array_equal(getattr(reused.postings, name), getattr(encoded.postings, name))
    query = load_encoder(reused.encoder_dir).encode_query("heat transfer")
    assert reused.search(query, 5) == encoded.search(query, 5)
