"""Echo (LLM-based) SPLADE on a tiny random Llama: echo pooling, LoRA, persistence, end-to-end search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparsearch.encoders.llm_splade import EchoSpladeEncoder
from sparsearch.encoders.neural import EncodingOptions
from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import ModelNotFoundError, UsageError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.types import dot

OPTIONS = EncodingOptions(max_length=24, passage_overlap=6, batch_tokens=256)
CORPUS = [
    "An experimental study of a wing in a propeller slipstream and the lift increase.",
    "Heat conduction in composite slabs with variable thermal conductivity.",
    "Buckling of thin cylindrical shells under axial compression and external pressure.",
]


@pytest.fixture(scope="module")
def encoder(tiny_llm_dir: Path) -> EchoSpladeEncoder:
    encoder = EchoSpladeEncoder.from_causal_lm(tiny_llm_dir, options=OPTIONS)
    encoder.fit(CORPUS)
    return encoder


def test_echo_pools_only_the_second_copy(encoder: EchoSpladeEncoder) -> None:
    import torch

    ids = encoder.vocabulary.encode_ids([CORPUS[0]])[0][: OPTIONS.max_length]
    prefix, middle, bos = encoder._template()
    sequence = bos + prefix + ids + middle + ids
    with torch.inference_mode():
        logits = encoder.model(input_ids=torch.tensor([sequence])).logits[0]  # (L, V) full causal LM
        second = logits[len(sequence) - len(ids) :]
        expected = torch.log1p(torch.relu(second)).amax(dim=0)
        actual = encoder.forward_passages([ids])[0]
        first_copy = torch.log1p(torch.relu(logits[len(bos + prefix) : len(bos + prefix) + len(ids)])).amax(dim=0)
    assert torch.allclose(actual, expected, atol=1e-5)
    assert not torch.allclose(actual, first_copy, atol=1e-3)  # the first copy would give other weights


def test_padding_does_not_change_vectors(encoder: EchoSpladeEncoder) -> None:
    import torch

    ids = encoder.vocabulary.encode_ids(CORPUS)
    with torch.inference_mode():
        batched = encoder.forward_passages([ids[0][:10], ids[1][:20]])
        alone = torch.cat([encoder.forward_passages([ids[0][:10]]), encoder.forward_passages([ids[1][:20]])])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_documents_queries_and_special_tokens(encoder: EchoSpladeEncoder) -> None:
    vectors = encoder.encode_document([*CORPUS, "", "  "])
    assert all(vectors[:3]) and vectors[3] == {} and vectors[4] == {}
    special = encoder.vocabulary.special_tokens
    assert special == {"<unk>", "<s>", "</s>", "<pad>"}
    assert all(not special & set(v) for v in vectors)
    query = encoder.encode_query("wing wing slipstream </s>")
    tokens = encoder.vocabulary.tokenize("wing wing slipstream </s>")
    assert "</s>" not in tokens and query.weights == {t: encoder.idf.idf(t) for t in dict.fromkeys(tokens)}


def test_long_documents_are_split_into_windows(encoder: EchoSpladeEncoder) -> None:
    text = " ".join(CORPUS * 4)
    ids = encoder.vocabulary.encode_ids([text])[0]
    passages = encoder._split_passages([text])
    assert len(passages) > 2 and all(len(p) <= OPTIONS.max_length for _, p in passages)
    step = OPTIONS.max_length - OPTIONS.passage_overlap
    assert passages[1][1][: OPTIONS.passage_overlap] == ids[step : step + OPTIONS.passage_overlap]
    assert passages[-1][1][-1] == ids[-1]  # the end of the document is read
    assert encoder.encode_document([text])[0]


def test_lora_trains_only_adapters(tiny_llm_dir: Path, tmp_path: Path) -> None:
    import torch

    encoder = EchoSpladeEncoder.from_causal_lm(tiny_llm_dir, options=OPTIONS)
    encoder.fit(CORPUS)
    model = encoder.add_lora(r=4, alpha=8, dropout=0.0)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    with pytest.raises(UsageError, match="already has LoRA"):
        encoder.add_lora()
    model.train()
    ids = encoder.vocabulary.encode_ids(CORPUS[:2])
    loss = encoder.forward_passages(ids).sum()
    loss.backward()
    grads = [p.grad for name, p in model.named_parameters() if "lora_B" in name]
    assert grads and all(g is not None and torch.count_nonzero(g) > 0 for g in grads)
    with torch.no_grad():  # make the adapters matter, then check they survive save/load
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    model.eval()
    before = encoder.encode_document(CORPUS)
    encoder.save(tmp_path / "model")
    assert (tmp_path / "model" / "adapter" / "adapter_config.json").is_file()
    loaded = load_encoder(tmp_path / "model")
    assert isinstance(loaded, EchoSpladeEncoder) and loaded.fingerprint == encoder.fingerprint
    after = loaded.encode_document(CORPUS)
    plain = EchoSpladeEncoder.from_causal_lm(tiny_llm_dir, options=OPTIONS).encode_document(CORPUS)
    for a, b, c in zip(after, before, plain, strict=True):
        assert set(a) == set(b) and max(abs(a[t] - b[t]) for t in b) < 1e-5
        assert a != c


def test_save_load_round_trip_without_adapters(encoder: EchoSpladeEncoder, tmp_path: Path) -> None:
    encoder.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["type"] == "llm-splade" and config["adapter"] is None and config["backbone"]["copied"]
    loaded = load_encoder(tmp_path / "model")
    assert loaded.fingerprint == encoder.fingerprint
    assert loaded.encode_query("wing").weights == encoder.encode_query("wing").weights
    for a, b in zip(loaded.encode_document(CORPUS), encoder.encode_document(CORPUS), strict=True):
        assert set(a) == set(b) and max(abs(a[t] - b[t]) for t in b) < 1e-5


def test_plain_causal_lm_directory_is_recognised(tiny_llm_dir: Path) -> None:
    encoder = load_encoder(tiny_llm_dir)
    assert isinstance(encoder, EchoSpladeEncoder) and not encoder.is_fitted
    assert encoder.options.precision == "bfloat16"  # LLM backbones load in bfloat16 by default
    encoder.options = OPTIONS.replace(precision="bfloat16")
    encoder.fit(CORPUS)
    assert all(encoder.encode_document(CORPUS))


def test_window_too_small_for_echo(tiny_llm_dir: Path) -> None:
    encoder = EchoSpladeEncoder.from_causal_lm(tiny_llm_dir, options=EncodingOptions(max_length=200))
    with pytest.raises(UsageError, match="echo needs"):
        encoder.encode_document(["wing"])


def test_missing_backbone(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="causal-LM"):
        EchoSpladeEncoder.from_causal_lm(tmp_path)


def test_index_and_search_end_to_end(tiny_llm_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    from sparsearch.corpus import iter_corpus

    encoder = EchoSpladeEncoder.from_causal_lm(tiny_llm_dir, options=OPTIONS)
    index, summary = build_embedded_index(tiny_data, tmp_path / "index", encoder)
    assert summary.documents == 8 and summary.empty_documents == ["d6"]
    served = load_encoder(index.encoder_dir)
    query = served.encode_query("propeller slipstream")
    hits = index.search(query, 3)
    vectors = encoder.encode_document([d.full_text for d in iter_corpus(tiny_data)])
    scores = sorted(
        ((dot(query.weights, v), doc_id) for doc_id, v in zip(index.doc_ids, vectors, strict=True)), reverse=True
    )
    assert [h.score for h in hits] == pytest.approx([s for s, _ in scores[:3]], rel=1e-4)
