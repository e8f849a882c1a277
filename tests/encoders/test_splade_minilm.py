"""The real MiniLM base (all-MiniLM-L6-v2 from the pip package + a new MLM head), end to end on cranfield
documents: head construction, sparsity at init, encode -> index -> search, save/load."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparsearch.corpus import iter_corpus
from sparsearch.encoders.minilm_base import CALIBRATION_TEXTS, minilm_mlm_dir
from sparsearch.encoders.registry import load_encoder
from sparsearch.encoders.splade import SpladeEncoder
from sparsearch.eval import aggregate_metrics, load_beir_topics, run_queries
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.types import dot
from tests.conftest import bundled_collection

N_DOCS = 60


@pytest.fixture(scope="module")
def minilm_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``$SPARSEARCH_CACHE`` pointed at a fresh folder, so the built-in model is built by the test."""
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("cache")
        patch.setenv("SPARSEARCH_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def minilm_dir(minilm_cache: Path) -> Path:
    path = minilm_mlm_dir()
    assert path.is_relative_to(minilm_cache) and minilm_mlm_dir() == path  # built once, then reused
    return path


@pytest.fixture(scope="module")
def cranfield_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 60 cranfield documents, with the queries and judgements that concern them."""
    source = bundled_collection("cranfield")
    target = tmp_path_factory.mktemp("cranfield-subset")
    lines = list(itertools.islice((source / "corpus.jsonl").open(encoding="utf-8"), N_DOCS))
    (target / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    kept = {json.loads(line)["_id"] for line in lines}
    (target / "qrels").mkdir()
    qrels = (source / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    rows = [qrels[0]] + [row for row in qrels[1:] if row.split("\t")[1] in kept]
    (target / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    queries = {row.split("\t")[0] for row in rows[1:]}
    query_lines = (source / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    kept_queries = [line for line in query_lines if json.loads(line)["_id"] in queries]
    (target / "queries.jsonl").write_text("\n".join(kept_queries) + "\n", encoding="utf-8")
    return target


def test_head_is_tied_identity_initialised_and_sparse(minilm_dir: Path) -> None:
    import torch
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(str(minilm_dir))
    head = model.cls.predictions
    assert head.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    assert torch.equal(head.transform.dense.weight, torch.eye(384))
    info = json.loads((minilm_dir / "sparsearch_base.json").read_text())
    assert info["bias"] < 0 and torch.all(head.bias == info["bias"])
    encoder = SpladeEncoder.from_mlm(minilm_dir)
    active = [len(v) for v in encoder.encode_document(list(CALIBRATION_TEXTS))]
    assert 0.015 < sum(active) / len(active) / 30522 < 0.025  # ~2 % of the vocabulary at init


def test_encode_index_search_with_real_weights(minilm_dir: Path, cranfield_subset: Path, tmp_path: Path) -> None:
    encoder = load_encoder("minilm-splade-untrained")
    assert isinstance(encoder, SpladeEncoder) and encoder.kind == "inference-free" and not encoder.is_fitted
    index, summary = build_embedded_index(cranfield_subset, tmp_path / "index", encoder)
    assert summary.documents == N_DOCS and 100 < summary.avg_terms_per_doc < 2000
    served = load_encoder(index.encoder_dir)  # the index's own copy of the model
    assert served.fingerprint == encoder.fingerprint

    topics = load_beir_topics(cranfield_subset)
    run, _, _ = run_queries(index, served, topics.queries, depth=N_DOCS)
    metrics = aggregate_metrics(topics.qrels, run)
    rng = random.Random(0)
    shuffled = {
        qid: {doc_id: float(-rank) for rank, doc_id in enumerate(rng.sample(index.doc_ids, N_DOCS))}
        for qid in topics.queries
    }
    baseline = aggregate_metrics(topics.qrels, shuffled)
    # untrained, the model already ranks judged documents well above a random order (the
    # full-collection figure is in bench/results/encode_speed.json)
    assert metrics["ndcg@10"] > baseline["ndcg@10"] + 0.1

    # scores are exactly the dot products of the stored document vectors with the query
    texts = {d.doc_id: d.full_text for d in iter_corpus(cranfield_subset)}
    reloaded = load_encoder(index.encoder_dir)
    query = served.encode_query(next(iter(topics.queries.values())))
    hits = index.search(query, 5)
    vectors = reloaded.encode_document([texts[h.doc_id] for h in hits])
    assert [h.score for h in hits] == pytest.approx([dot(query.weights, v) for v in vectors], rel=1e-4)
    assert reloaded._model is not None and reloaded.fingerprint == encoder.fingerprint
