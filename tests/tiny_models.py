"""Tiny neural models built locally (no model hub): a 2-layer BERT MLM and a 2-layer Llama.

Both use tokenizers whose vocabulary comes from the tiny fixture corpus, random weights with a fixed
seed, and a small position window (64 for BERT) so passage splitting is exercised by short texts.
Built once per session (about a second each); tests get the directories and build encoders on them.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

TINY_CORPUS = Path(__file__).resolve().parent / "data" / "tiny" / "corpus.jsonl"


def _tiny_texts() -> list[str]:
    rows = [json.loads(line) for line in TINY_CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"{row['title']} {row['text']}".strip() for row in rows]


def build_tiny_bert(path: Path, max_position_embeddings: int = 64, seed: int = 0) -> Path:
    """A BERT masked LM with 2 layers, hidden size 32, and a WordPiece vocabulary of ~150 tokens."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    words = sorted({w for text in _tiny_texts() for w in re.findall(r"\w+", text.lower())})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(string.punctuation) + list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase]
    vocab = list(dict.fromkeys(vocab + words))
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_position_embeddings,
    )
    BertForMaskedLM(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def build_tiny_llama(path: Path, seed: int = 0) -> Path:
    """A Llama causal LM with 2 layers, hidden size 32, and a byte-fallback-free BPE of ~200 tokens."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=specials, show_progress=False)
    backend.train_from_iterator(_tiny_texts() + ["passage the same again"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT masked-LM checkpoint directory (window of 64 positions)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama causal-LM checkpoint directory."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")


# -- the same tiny BERT in the layouts other tools save (tests/encoders/test_layouts.py) ---------------
def build_st_siamese(path: Path, mlm_dir: Path, pooling_strategy: str = "max") -> Path:
    """A sentence-transformers siamese SPLADE folder (masked LM + SpladePooling), saved by ``.save()``."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    transformer = Transformer(str(mlm_dir), transformer_task="fill-mask")
    SparseEncoder(modules=[transformer, SpladePooling(pooling_strategy)]).save(str(path))
    return path


def build_st_router(path: Path, mlm_dir: Path, seed: int = 0, query_model: bool = False) -> Path:
    """A sentence-transformers inference-free Router: SparseStaticEmbedding queries with random
    weights (a quarter of them 0), masked LM + SpladePooling documents. ``query_model``: a masked LM
    on the query route too (a layout sparsearch refuses)."""
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding, SpladePooling, Transformer

    document = Transformer(str(mlm_dir), transformer_task="fill-mask")
    generator = torch.Generator().manual_seed(seed)
    weight = torch.rand(len(document.tokenizer), generator=generator) * 3
    weight[torch.rand(len(document.tokenizer), generator=generator) < 0.25] = 0.0
    if query_model:
        query: list = [Transformer(str(mlm_dir), transformer_task="fill-mask"), SpladePooling("max")]
    else:
        query = [SparseStaticEmbedding(tokenizer=document.tokenizer, weight=weight, frozen=True)]
    router = Router.for_query_document(query_modules=query, document_modules=[document, SpladePooling("max")])
    SparseEncoder(modules=[router]).save(str(path))
    return path


def build_opensearch_doc_only(path: Path, seed: int = 0) -> Path:
    """A tiny BERT MLM saved with ``save_pretrained`` plus an OpenSearch ``idf.json`` (``{token: weight}``)
    covering the vocabulary except a few tokens."""
    import random

    build_tiny_bert(path, seed=seed)
    vocab = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    rng = random.Random(seed)
    idf = {token: round(rng.uniform(0.1, 5.0), 4) for token in sorted(vocab) if rng.random() > 0.1}
    (path / "idf.json").write_text(json.dumps(idf), encoding="utf-8")
    return path


# A small expansion vocabulary keeps the semantic channel fast (the shipped one has ~22.7k words).
TWO_CHANNEL_TOKENS = ["wing", "lift", "propeller", "aircraft", "heat", "temperature", "shell", "flow", "banana"]


def two_channel_model():  # noqa: ANN201 - a TwoChannelEncoder (imported lazily)
    """A two-channel model like the shipped default (stemmed-word BM25 + the training-free semantic
    channel) with :data:`TWO_CHANNEL_TOKENS` as its expansion vocabulary, not fitted."""
    from sparsearch.encoders.semantic import SemanticChannelEncoder
    from sparsearch.encoders.two_channel import TwoChannelEncoder, lexical_channel

    semantic = SemanticChannelEncoder(threshold=0.2, top_k=8, candidate_tokens=TWO_CHANNEL_TOKENS)
    return TwoChannelEncoder(lexical_channel(), semantic, name="two-channel-test")


def build_two_channel(path: Path) -> Path:
    """:func:`two_channel_model` saved at ``path`` (a ``--model`` folder)."""
    two_channel_model().save(path)
    return path
