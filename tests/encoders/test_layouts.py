"""``--model DIR`` of every layout users have, detected from the files: tiny models saved by
sentence-transformers itself (siamese, inference-free Router, refused kinds), an OpenSearch doc-only
model and plain masked LMs; vectors checked against sentence-transformers' own ``encode_query`` /
``encode_document`` and against the OpenSearch model card's rule."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from sparsearch.encoders.idf import IdfTable
from sparsearch.encoders.layouts import UnsupportedModelError, detect_layout
from sparsearch.encoders.registry import load_encoder
from sparsearch.encoders.splade import SpladeEncoder
from sparsearch.errors import ModelNotFoundError, UsageError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.search import Searcher
from tests.tiny_models import build_opensearch_doc_only, build_st_router, build_st_siamese

QUERIES = ["wing slipstream lift", "heat transfer in a slab", "buckling of shells", "zzz qqq"]
DOCUMENTS = [
    "An experimental study of a wing in a propeller slipstream and the lift increase.",
    "Heat conduction in composite slabs with variable thermal conductivity.",
    "Buckling of thin cylindrical shells under axial compression and external pressure.",
]
SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory, tiny_mlm_dir: Path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("layouts")
    return {
        "st-siamese": build_st_siamese(base / "siamese", tiny_mlm_dir),
        "st-inference-free": build_st_router(base / "router", tiny_mlm_dir),
        "opensearch-doc-only": build_opensearch_doc_only(base / "opensearch"),
        "masked-lm": tiny_mlm_dir,
    }


def st_vectors(path: Path, texts: list[str], side: str) -> list[dict[str, float]]:
    """sentence-transformers' own vectors: ``SparseEncoder(path).encode_{side}`` + ``decode``, specials dropped."""
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(path), device="cpu")
    encode = model.encode_query if side == "query" else model.encode_document
    embeddings = encode(texts, convert_to_tensor=True, convert_to_sparse_tensor=True)
    return [{t: w for t, w in decoded if t not in SPECIAL and w > 0} for decoded in model.decode(embeddings)]


def assert_close(actual: dict[str, float], expected: dict[str, float], tol: float = 1e-4) -> None:
    assert set(actual) == set(expected)
    assert all(abs(actual[t] - expected[t]) <= tol for t in expected), (actual, expected)
    top = sorted(expected, key=lambda t: (-round(expected[t], 3), t))[:5]  # ties broken by token
    assert sorted(actual, key=lambda t: (-round(actual[t], 3), t))[:5] == top


# -- detection -----------------------------------------------------------------------------------------
def test_each_layout_is_detected_from_its_files(layouts: dict[str, Path], tiny_llm_dir: Path) -> None:
    for name, path in layouts.items():
        assert detect_layout(path).name == name
    assert detect_layout(tiny_llm_dir).name == "causal-lm"


def test_names_are_never_used(layouts: dict[str, Path], tmp_path: Path) -> None:
    # a siamese folder named like an inference-free model is still siamese
    renamed = tmp_path / "opensearch-neural-sparse-encoding-doc-v2-distill"
    renamed.symlink_to(layouts["st-siamese"])
    assert detect_layout(renamed).name == "st-siamese"


def test_naver_splade_layout_is_siamese_not_a_plain_mlm(layouts: dict[str, Path]) -> None:
    # the folder also holds a BertForMaskedLM config.json at its root: modules.json decides
    path = layouts["st-siamese"]
    assert json.loads((path / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    encoder = load_encoder(path)
    assert isinstance(encoder, SpladeEncoder) and encoder.kind == "siamese"
    assert "siamese" in (encoder.source_layout or "")


def test_dense_and_csr_models_are_refused_with_the_reason(tiny_mlm_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer, SparseEncoder
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder

    transformer = Transformer(str(tiny_mlm_dir))
    pooling = Pooling(transformer.get_embedding_dimension())
    SentenceTransformer(modules=[transformer, pooling]).save(str(tmp_path / "dense"))
    with pytest.raises(UnsupportedModelError, match="dense sentence-transformers model"):
        load_encoder(tmp_path / "dense")
    csr = SparseAutoEncoder(input_dim=transformer.get_embedding_dimension(), hidden_dim=64, k=8)
    SparseEncoder(modules=[transformer, pooling, csr]).save(str(tmp_path / "csr"))
    with pytest.raises(UnsupportedModelError, match="CSR model"):
        load_encoder(tmp_path / "csr")


def test_unservable_splade_variants_are_refused(tiny_mlm_dir: Path, tmp_path: Path) -> None:
    build_st_siamese(tmp_path / "sum", tiny_mlm_dir, pooling_strategy="sum")
    with pytest.raises(UnsupportedModelError, match="max pooling"):
        detect_layout(tmp_path / "sum")
    build_st_router(tmp_path / "two-towers", tiny_mlm_dir, query_model=True)
    with pytest.raises(UnsupportedModelError, match="inference-free query side"):
        detect_layout(tmp_path / "two-towers")


def test_unknown_folders_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no config.json or modules.json"):
        load_encoder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(UnsupportedModelError, match="no vocabulary head"):
        load_encoder(tmp_path)
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        load_encoder(tmp_path / "missing")


# -- sentence-transformers folders against sentence-transformers -------------------------------------
@pytest.mark.parametrize("name", ["st-siamese", "st-inference-free"])
def test_queries_and_documents_equal_sentence_transformers(name: str, layouts: dict[str, Path]) -> None:
    path = layouts[name]
    encoder = load_encoder(path)
    assert encoder.is_fitted  # siamese needs no IDF; the Router ships its weights
    expected_queries = st_vectors(path, QUERIES, "query")
    assert all(expected_queries[:3])
    for text, expected in zip(QUERIES, expected_queries, strict=True):
        assert_close(dict(encoder.encode_query(text).weights), expected)
    for actual, expected in zip(
        encoder.encode_document(DOCUMENTS), st_vectors(path, DOCUMENTS, "document"), strict=True
    ):
        assert actual
        assert_close(actual, expected)


def test_router_weights_survive_indexing_and_refit_drops_them(
    layouts: dict[str, Path], tiny_data: Path, tmp_path: Path
) -> None:
    path = layouts["st-inference-free"]
    encoder = load_encoder(path)
    expected = dict(encoder.encode_query(QUERIES[0]).weights)
    build_embedded_index(tiny_data, tmp_path / "index", encoder)
    with Searcher.open(tmp_path / "index") as searcher:
        assert dict(searcher.encoder.encode_query(QUERIES[0]).weights) == pytest.approx(expected)
        assert searcher.search(QUERIES[0], top_k=3)
    refit = load_encoder(path, refit_idf=True)
    assert not refit.is_fitted
    refit.fit(DOCUMENTS)
    assert refit.idf is not None and refit.idf.fixed is None


# -- OpenSearch doc-only against the model card's rule -------------------------------------------------
def opensearch_rule(path: Path, texts: list[str], side: str) -> list[dict[str, float]]:
    """The model card's code, in words: a query is the idf.json weights of its distinct tokens; a
    document is max over positions of log(1 + relu(MLM logits)), special tokens 0."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    idf = json.loads((path / "idf.json").read_text())
    if side == "query":
        rows = [tokenizer.convert_ids_to_tokens(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        return [{t: idf[t] for t in tokens if idf.get(t, 0) > 0} for tokens in rows]
    model = AutoModelForMaskedLM.from_pretrained(str(path)).eval()
    features = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**features).logits
    values = torch.max(logits * features["attention_mask"].unsqueeze(-1), dim=1).values
    values = torch.log1p(torch.relu(values))
    values[:, tokenizer.all_special_ids] = 0
    vocabulary = tokenizer.convert_ids_to_tokens(list(range(values.shape[1])))
    return [{vocabulary[i]: float(row[i]) for i in torch.nonzero(row).flatten().tolist()} for row in values]


def test_opensearch_doc_only_follows_the_model_card(layouts: dict[str, Path]) -> None:
    path = layouts["opensearch-doc-only"]
    encoder = load_encoder(path)
    assert encoder.is_fitted and encoder.kind == "inference-free"
    for text, expected in zip(QUERIES, opensearch_rule(path, QUERIES, "query"), strict=True):
        assert dict(encoder.encode_query(text).weights) == pytest.approx(expected)
    for actual, expected in zip(
        encoder.encode_document(DOCUMENTS), opensearch_rule(path, DOCUMENTS, "document"), strict=True
    ):
        assert_close(actual, expected)


def test_opensearch_refit_idf_fits_on_the_corpus(layouts: dict[str, Path]) -> None:
    encoder = load_encoder(layouts["opensearch-doc-only"], refit_idf=True)
    assert not encoder.is_fitted
    encoder.fit(DOCUMENTS)
    weights = encoder.encode_query("wing").weights
    assert weights and all(math.isclose(w, encoder.idf.idf(t)) for t, w in weights.items())


def test_shipped_table_round_trips(tmp_path: Path) -> None:
    table = IdfTable.from_weights({"wing": 2.5, "lift": 0.5}, {"vocab_sha256": "x"})
    table.save(tmp_path / "idf.json")
    loaded = IdfTable.load(tmp_path / "idf.json")
    assert loaded.fixed == table.fixed and loaded.hash == table.hash
    assert loaded.weights(["wing", "unknown", "wing"]) == {"wing": 2.5}


# -- plain masked LMs: the kind is the caller's ---------------------------------------------------------
def test_plain_masked_lm_kind_is_an_explicit_choice(layouts: dict[str, Path]) -> None:
    path = layouts["masked-lm"]
    default = load_encoder(path)
    assert default.kind == "inference-free" and not default.is_fitted
    siamese = load_encoder(path, kind="siamese")
    assert siamese.kind == "siamese" and (siamese.source_layout or "").startswith("siamese SPLADE")
    assert siamese.encode_query(QUERIES[0]).weights
    with pytest.raises(UsageError, match="contradicts"):
        load_encoder(layouts["st-siamese"], kind="inference-free")
    with pytest.raises(UsageError, match="unknown model kind"):
        load_encoder(path, kind="dense")
    with pytest.raises(UsageError, match="built-in"):
        load_encoder("bm25", kind="siamese")


# -- the CLI says which kind it used --------------------------------------------------------------------
def test_cli_index_reports_the_kind(layouts: dict[str, Path], tiny_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sparsearch.cli import app

    runner = CliRunner()
    args = ["index", "--data", str(tiny_data), "--model", str(layouts["masked-lm"])]
    result = runner.invoke(app, [*args, "--index", str(tmp_path / "a"), "--model-kind", "siamese"])
    assert result.exit_code == 0, result.output
    assert "siamese SPLADE" in result.output and "inference-free" not in result.output
    result = runner.invoke(app, [*args, "--index", str(tmp_path / "b"), "--model-kind", "dense"])
    assert result.exit_code != 0 and "unknown model kind" in result.output


def test_cli_encode_takes_the_kind_and_keeps_it_for_indexing(
    layouts: dict[str, Path], tiny_data: Path, tmp_path: Path
) -> None:
    """``sparsearch encode --model-kind siamese``: the encode output carries the siamese encoder, so the
    index built from it answers queries through the MLM; --refit-idf on a plain MLM is refused as on index."""
    from typer.testing import CliRunner

    from sparsearch.backends.embedded.index import EmbeddedIndex
    from sparsearch.cli import app

    runner = CliRunner()
    args = ["encode", "--data", str(tiny_data), "--model", str(layouts["masked-lm"])]
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "enc"), "--model-kind", "siamese"])
    assert result.exit_code == 0, result.output
    assert "siamese SPLADE" in result.output
    result = runner.invoke(app, ["index", "--data", str(tmp_path / "enc"), "--index", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    saved = load_encoder(EmbeddedIndex.open(tmp_path / "idx").encoder_dir)
    assert saved.kind == "siamese"
    expected = load_encoder(layouts["masked-lm"], kind="siamese").encode_query(QUERIES[0]).weights
    assert saved.encode_query(QUERIES[0]).weights == pytest.approx(expected)
    result = runner.invoke(app, [*args, "--output", str(tmp_path / "enc2"), "--model-kind", "dense"])
    assert result.exit_code != 0 and "unknown model kind" in result.output


# -- where the folder comes from: the Hugging Face cache, a pip package --------------------------------
def populate_hub_cache(cache: Path, repo_id: str, model: Path, revision: str = "0123456789abcdef") -> Path:
    """The layout huggingface_hub writes: blobs/, snapshots/<rev>/ of symlinks to them, refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    for number, file in enumerate(sorted(f for f in model.rglob("*") if f.is_file())):
        blob = repo / "blobs" / f"{number:040x}"
        blob.write_bytes(file.read_bytes())
        link = snapshot / file.relative_to(model)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def test_hub_ids_resolve_through_the_local_cache_only(
    layouts: dict[str, Path], tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "acme/tiny-splade", layouts["st-siamese"])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = load_encoder("acme/tiny-splade")
    assert encoder.kind == "siamese"
    expected = dict(encoder.encode_query(QUERIES[0]).weights)
    build_embedded_index(tiny_data, tmp_path / "index", encoder)
    shutil.rmtree(cache)  # the index carries the weights, not links into the cache
    with Searcher.open(tmp_path / "index") as searcher:
        assert dict(searcher.encoder.encode_query(QUERIES[0]).weights) == pytest.approx(expected)
    with pytest.raises(ModelNotFoundError, match="hf download acme/absent"):
        load_encoder("acme/absent")


def test_a_folder_inside_a_pip_package(
    layouts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    site = tmp_path / "site"
    shutil.copytree(layouts["opensearch-doc-only"], site / "acme_models" / "model")
    info = site / "acme_models-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-models\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(site))
    encoder = load_encoder("pkg:acme-models/acme_models/model")
    assert encoder.kind == "inference-free" and encoder.is_fitted
    with pytest.raises(ModelNotFoundError, match="has no folder"):
        load_encoder("pkg:acme-models/acme_models/absent")
    with pytest.raises(ModelNotFoundError, match="not installed"):
        load_encoder("pkg:no-such-distribution/model")


# -- our own saved models load with sentence-transformers from their root ---------------------------------
@pytest.mark.parametrize("kind", ["siamese", "inference-free"])
def test_saved_models_load_with_sentence_transformers(kind: str, tiny_mlm_dir: Path, tmp_path: Path) -> None:
    encoder = load_encoder(tiny_mlm_dir, kind=kind)
    if kind == "inference-free":
        encoder.fit(DOCUMENTS)
    encoder.save(tmp_path / "saved")
    assert detect_layout(tmp_path / "saved").name == "sparsearch"  # config.json "type" is read first
    for text, expected in zip(QUERIES[:3], st_vectors(tmp_path / "saved", QUERIES[:3], "query"), strict=True):
        assert_close(dict(encoder.encode_query(text).weights), expected)
    for actual, expected in zip(
        encoder.encode_document(DOCUMENTS), st_vectors(tmp_path / "saved", DOCUMENTS, "document"), strict=True
    ):
        assert_close(actual, expected)
