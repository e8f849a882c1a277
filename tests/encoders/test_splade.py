"""Inference-free and siamese SPLADE on a tiny BERT MLM: the fast path against sentence-transformers,
queries, passages, bad input, pruning, persistence and end-to-end search."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sparsearch.encoders import neural
from sparsearch.encoders.idf import IdfTable
from sparsearch.encoders.neural import EncodingOptions
from sparsearch.encoders.registry import load_encoder
from sparsearch.encoders.splade import SpladeEncoder
from sparsearch.errors import EncoderMismatchError, IndexFormatError, ModelNotFoundError, UsageError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.types import dot

CORPUS = [
    "An experimental study of a wing in a propeller slipstream and the lift increase.",
    "Heat conduction in composite slabs with variable thermal conductivity.",
    "Laminar boundary layer flow over a flat plate at high speed; skin friction and heat transfer.",
    "Buckling of thin cylindrical shells under axial compression and external pressure.",
]
OPTIONS = EncodingOptions(max_length=32, passage_overlap=8, batch_tokens=256)


@pytest.fixture(scope="module")
def inference_free(tiny_mlm_dir: Path) -> SpladeEncoder:
    encoder = SpladeEncoder.from_mlm(tiny_mlm_dir, kind="inference-free", options=OPTIONS)
    encoder.fit(CORPUS)
    return encoder


@pytest.fixture(scope="module")
def siamese(tiny_mlm_dir: Path) -> SpladeEncoder:
    return SpladeEncoder.from_mlm(tiny_mlm_dir, kind="siamese", options=OPTIONS)


def assert_vectors_close(actual: dict[str, float], expected: dict[str, float], tol: float = 1e-5) -> None:
    assert set(actual) == set(expected)
    assert all(abs(actual[t] - expected[t]) <= tol for t in expected)


# -- documents -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["inference-free", "siamese"])
def test_fast_path_matches_sentence_transformers(kind: str, inference_free: SpladeEncoder, siamese) -> None:
    encoder = inference_free if kind == "inference-free" else siamese
    fast = encoder.encode_document(CORPUS)
    reference = encoder.encode_document_reference(CORPUS)
    for actual, expected in zip(fast, reference, strict=True):
        assert actual and all(w > 0 for w in actual.values())
        assert_vectors_close(actual, expected)


def test_special_tokens_never_in_documents(inference_free: SpladeEncoder) -> None:
    vectors = inference_free.encode_document([*CORPUS, "[CLS] [MASK] wing [SEP]"])
    special = {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"}
    assert all(not special & set(v) for v in vectors)


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u3000"])
def test_empty_documents_get_empty_vectors(inference_free: SpladeEncoder, text: str) -> None:
    vectors = inference_free.encode_document(["wing", text])
    assert vectors[0] and vectors[1] == {}


def test_long_document_is_max_pooled_over_passages(inference_free: SpladeEncoder) -> None:
    import torch

    text = " ".join(CORPUS * 3)  # ~120 tokens: several 32-token passages
    passages = inference_free._split_passages([text])
    assert len(passages) > 3
    assert all(len(ids) <= OPTIONS.max_length for _, ids in passages)
    with torch.inference_mode():
        per_passage = torch.stack([inference_free._forward([ids])[0] for _, ids in passages])
    expected = per_passage.amax(dim=0)
    vector = inference_free.encode_document([text])[0]
    vocabulary = inference_free.vocabulary.vocabulary
    special = inference_free.vocabulary.special_ids
    expected_map = {vocabulary[i]: float(w) for i, w in enumerate(expected.tolist()) if w > 0 and i not in special}
    assert_vectors_close(vector, expected_map)
    # the last words are seen (no silent truncation): the vector differs from the first passage alone
    first = inference_free.encode_document([inference_free.vocabulary._tokenizer.decode(passages[0][1])])[0]
    assert vector != first


def test_one_passage_truncates_like_sentence_transformers(tiny_mlm_dir: Path) -> None:
    encoder = SpladeEncoder.from_mlm(tiny_mlm_dir, options=OPTIONS.replace(max_passages=1))
    long_texts = [" ".join(CORPUS * 3), " ".join(reversed(CORPUS * 2))]
    for actual, expected in zip(
        encoder.encode_document(long_texts), encoder.encode_document_reference(long_texts), strict=True
    ):
        assert_vectors_close(actual, expected)


def test_hundred_thousand_characters(inference_free: SpladeEncoder) -> None:
    text = ("slipstream wing lift " * 5000)[:100_000]
    vectors = inference_free.encode_document([text, "heat"])
    assert len(text) == 100_000 and vectors[0] and vectors[1]


def test_lone_surrogates_are_replaced_not_fatal(inference_free: SpladeEncoder) -> None:
    text = b"wing \xff slipstream".decode("utf-8", errors="surrogateescape")
    clean = inference_free.encode_document(["wing \ufffd slipstream"])[0]
    assert_vectors_close(inference_free.encode_document([text])[0], clean)
    assert inference_free.encode_query(text).weights == inference_free.encode_query("wing \ufffd slipstream").weights


@pytest.mark.parametrize(("max_active_dims", "min_weight"), [(5, 0.0), (None, 0.3), (3, 0.2)])
def test_pruning(tiny_mlm_dir: Path, max_active_dims: int | None, min_weight: float) -> None:
    options = OPTIONS.replace(max_active_dims=max_active_dims, min_weight=min_weight)
    full = SpladeEncoder.from_mlm(tiny_mlm_dir, options=OPTIONS).encode_document(CORPUS)
    pruned = SpladeEncoder.from_mlm(tiny_mlm_dir, options=options).encode_document(CORPUS)
    for f, p in zip(full, pruned, strict=True):
        kept = sorted(((w, t) for t, w in f.items() if w >= min_weight), reverse=True)[:max_active_dims]
        assert_vectors_close(p, {t: w for w, t in kept})


def test_bfloat16_is_close_to_float32(tiny_mlm_dir: Path, inference_free: SpladeEncoder) -> None:
    bf16 = SpladeEncoder.from_mlm(tiny_mlm_dir, options=OPTIONS.replace(precision="bfloat16"))
    for a, b in zip(bf16.encode_document(CORPUS), inference_free.encode_document(CORPUS), strict=True):
        shared = set(a) & set(b)
        assert len(shared) >= 0.9 * len(b)
        assert max(abs(a[t] - b[t]) for t in shared) < 0.05


# -- queries -------------------------------------------------------------------------------------------
def test_inference_free_query_is_idf_of_distinct_tokens(inference_free: SpladeEncoder) -> None:
    idf = inference_free.idf
    assert idf is not None
    query = inference_free.encode_query("wing WING heat [SEP] qqq")
    tokens = inference_free.vocabulary.tokenize("wing WING heat [SEP] qqq")
    assert tokens.count("wing") == 2 and "[SEP]" not in tokens
    assert query.weights == {t: idf.idf(t) for t in dict.fromkeys(tokens)}
    # a token absent from the corpus gets the table's maximum (df = 0), the rule used in training too
    assert query.weights["q"] == idf.idf("never-seen") == max(query.weights.values())


def test_query_fast_path_matches_the_static_embedding(inference_free: SpladeEncoder) -> None:
    model = inference_free.sparse_encoder
    for text in ["lift of a wing in a propeller slipstream", "heat heat transfer", "buckling of shells"]:
        decoded = dict(model.decode(model.encode_query(text)))
        assert_vectors_close(inference_free.encode_query(text).weights, decoded)


def test_siamese_query_uses_the_model(siamese: SpladeEncoder) -> None:
    query = siamese.encode_query("wing slipstream")
    assert len(query.weights) > 2  # expansion terms, not just the two tokens
    assert_vectors_close(query.weights, siamese.encode_document_reference(["wing slipstream"])[0])


def test_unfitted_inference_free_model_says_how_to_fit(tiny_mlm_dir: Path) -> None:
    encoder = SpladeEncoder.from_mlm(tiny_mlm_dir, options=OPTIONS)
    assert not encoder.is_fitted
    with pytest.raises(UsageError, match="call fit"):
        encoder.encode_query("wing")


# -- persistence ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["inference-free", "siamese"])
def test_save_load_round_trip(kind: str, inference_free, siamese, tmp_path: Path) -> None:
    encoder = inference_free if kind == "inference-free" else siamese
    encoder.save(tmp_path / "model")
    loaded = load_encoder(tmp_path / "model")
    assert isinstance(loaded, SpladeEncoder) and loaded.kind == kind
    assert loaded.fingerprint == encoder.fingerprint
    assert loaded.encode_query("wing in a slipstream").weights == encoder.encode_query("wing in a slipstream").weights
    for a, b in zip(loaded.encode_document(CORPUS), encoder.encode_document(CORPUS), strict=True):
        assert_vectors_close(a, b)
    # saving a loaded model again (the indexer does this) links the files without loading torch
    reloaded = load_encoder(tmp_path / "model")
    reloaded.save(tmp_path / "again")
    assert reloaded._model is None
    assert load_encoder(tmp_path / "again").fingerprint == encoder.fingerprint


def test_inference_free_queries_need_no_model(inference_free: SpladeEncoder, tmp_path: Path) -> None:
    inference_free.save(tmp_path / "model")
    loaded = SpladeEncoder.load(tmp_path / "model")
    loaded.encode_query("wing")
    assert loaded._model is None


def test_large_weights_are_referenced_and_checked(inference_free, tmp_path: Path, monkeypatch) -> None:
    inference_free.save(tmp_path / "source")
    source = SpladeEncoder.load(tmp_path / "source")
    monkeypatch.setattr(neural, "COPY_LIMIT_BYTES", 0)
    source.save(tmp_path / "ref")
    config = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert config["weights"]["copied"] is False and not (tmp_path / "ref" / "sparse_encoder").exists()
    assert SpladeEncoder.load(tmp_path / "ref").encode_document(CORPUS[:1]) == source.encode_document(CORPUS[:1])
    weights = next((tmp_path / "source" / "sparse_encoder").rglob("model.safetensors"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(IndexFormatError, match="changed since it was saved"):
        SpladeEncoder.load(tmp_path / "ref")
    shutil.rmtree(tmp_path / "source")
    with pytest.raises(IndexFormatError, match="missing"):
        SpladeEncoder.load(tmp_path / "ref")


# -- bad input -----------------------------------------------------------------------------------------
def test_unknown_model_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        load_encoder(tmp_path / "nope")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(ModelNotFoundError, match="minilm-splade-untrained"):
        load_encoder(tmp_path / "bare")


def test_checkpoint_without_tokenizer_json(tiny_mlm_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "mlm"
    shutil.copytree(tiny_mlm_dir, copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ModelNotFoundError, match="tokenizer.json"):
        load_encoder(copy)


def test_plain_mlm_checkpoint_loads_as_inference_free(tiny_mlm_dir: Path) -> None:
    encoder = load_encoder(tiny_mlm_dir)
    assert isinstance(encoder, SpladeEncoder) and encoder.kind == "inference-free" and not encoder.is_fitted


def test_window_longer_than_the_model(tiny_mlm_dir: Path) -> None:
    encoder = SpladeEncoder.from_mlm(tiny_mlm_dir, options=EncodingOptions(max_length=128, passage_overlap=8))
    with pytest.raises(UsageError, match="exceeds model"):
        encoder.encode_document(["wing"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"passage_overlap": 20, "max_length": 32}, "passage_overlap"),
        ({"max_active_dims": 0}, "max_active_dims"),
        ({"min_weight": -1.0}, "min_weight"),
        ({"precision": "float16"}, "precision"),
        ({"max_passages": 0}, "max_passages"),
    ],
)
def test_invalid_options(changes: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        EncodingOptions(**changes)


def test_idf_table_of_another_vocabulary_is_refused(inference_free: SpladeEncoder, tmp_path: Path) -> None:
    inference_free.save(tmp_path / "model")
    table = IdfTable(df={"wing": 1}, n_docs=1, analyzer={"analyzer": "hf-tokenizer", "vocab_sha256": "other"})
    table.save(tmp_path / "model" / "idf.json")
    with pytest.raises(IndexFormatError, match="another tokenizer"):
        SpladeEncoder.load(tmp_path / "model")


def test_tokenizer_and_model_vocabularies_must_agree(inference_free: SpladeEncoder, tmp_path: Path) -> None:
    from sparsearch.encoders.analyzers import minilm_model_dir

    inference_free.save(tmp_path / "model")
    shutil.copyfile(minilm_model_dir() / "tokenizer.json", tmp_path / "model" / "tokenizer.json")
    with pytest.raises(IndexFormatError, match="does not match"):
        SpladeEncoder.load(tmp_path / "model")


# -- end to end ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["inference-free", "siamese"])
def test_index_and_search_end_to_end(kind: str, tiny_mlm_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    encoder = SpladeEncoder.from_mlm(tiny_mlm_dir, kind=kind, options=OPTIONS)
    index, summary = build_embedded_index(tiny_data, tmp_path / "index", encoder)
    assert summary.documents == 8 and summary.empty_documents == ["d6"]
    served = load_encoder(index.encoder_dir)
    assert served.fingerprint == index.fingerprint
    query = served.encode_query("lift of a wing in a propeller slipstream")
    hits = index.search(query, 8)
    vectors = dict(zip(index.doc_ids, encoder.encode_document(_tiny_texts(tiny_data)), strict=True))
    expected = sorted(((-dot(query.weights, v), doc_id) for doc_id, v in vectors.items() if v), key=lambda x: x)
    assert [h.doc_id for h in hits] == [doc_id for _, doc_id in expected]
    assert [h.score for h in hits] == pytest.approx([-s for s, _ in expected], rel=1e-4)


def test_query_from_another_vocabulary_is_refused(tiny_mlm_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    encoder = SpladeEncoder.from_mlm(tiny_mlm_dir, options=OPTIONS)
    index, _ = build_embedded_index(tiny_data, tmp_path / "index", encoder)
    bm25 = load_encoder("bm25-wordpiece")
    bm25.fit(_tiny_texts(tiny_data))
    with pytest.raises(EncoderMismatchError):
        index.search(bm25.encode_query("wing"), 3)


def _tiny_texts(tiny_data: Path) -> list[str]:
    from sparsearch.corpus import iter_corpus

    return [d.full_text for d in iter_corpus(tiny_data)]
