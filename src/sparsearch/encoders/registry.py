"""Resolve ``--model`` values to encoders, and load the encoder saved inside an index.

A model is either a built-in name (``bm25``, ``bm25-wordpiece``) or a directory whose
``config.json`` has a ``"type"`` this module knows how to load.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparsearch.encoders.bm25 import BM25Encoder, bm25_wordpiece, bm25_words
from sparsearch.errors import ModelNotFoundError
from sparsearch.types import Encoder

SHIPPED_MODEL = "default"
"""The built-in name of the trained two-channel model shipped inside the package (model card:
``default_model/README.md``)."""

DEFAULT_MODEL = SHIPPED_MODEL
"""What ``--model`` means when it is not given."""


def default_model_dir() -> Path | None:
    """The shipped trained model's directory (inside the package), or ``None`` in a checkout without it."""
    directory = Path(__file__).resolve().parent / "default_model"
    return directory if (directory / "config.json").is_file() else None


def _shipped_default() -> Encoder:
    from sparsearch.encoders.two_channel import TwoChannelEncoder

    directory = default_model_dir()
    if directory is None:
        raise ModelNotFoundError("the shipped default model is missing from this installation: reinstall sparsearch")
    return TwoChannelEncoder.load(directory, load_encoder)


def _semantic() -> Encoder:
    from sparsearch.encoders.semantic import SemanticChannelEncoder

    return SemanticChannelEncoder()


def _hybrid_semantic() -> Encoder:
    from sparsearch.encoders.semantic import SemanticChannelEncoder
    from sparsearch.encoders.two_channel import TwoChannelEncoder, lexical_channel

    return TwoChannelEncoder(lexical_channel(), SemanticChannelEncoder(), learned_weight=2.0, name="hybrid-semantic")


def _load_semantic(path: Path) -> Encoder:
    from sparsearch.encoders.semantic import SemanticChannelEncoder

    return SemanticChannelEncoder.load(path)


def _load_two_channel(path: Path) -> Encoder:
    from sparsearch.encoders.two_channel import TwoChannelEncoder

    return TwoChannelEncoder.load(path, load_encoder)


def _minilm_splade_untrained() -> Encoder:
    from sparsearch.encoders.minilm_base import minilm_splade_untrained

    return minilm_splade_untrained()


def _minilm_splade_siamese_untrained() -> Encoder:
    from sparsearch.encoders.minilm_base import minilm_splade_siamese_untrained

    return minilm_splade_siamese_untrained()


def _load_splade(path: Path) -> Encoder:
    from sparsearch.encoders.splade import SpladeEncoder

    return SpladeEncoder.load(path)


def _load_llm_splade(path: Path) -> Encoder:
    from sparsearch.encoders.llm_splade import EchoSpladeEncoder

    return EchoSpladeEncoder.load(path)


def _load_huggingface(path: Path) -> Encoder:
    from sparsearch.encoders.splade import load_huggingface_checkpoint

    return load_huggingface_checkpoint(path)


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in ``--model`` name: how to build the encoder, and one line on what it is.

    Attributes:
        load: builds the encoder (imports its libraries only when called).
        description: one line for ``sparsearch index --help``.
    """

    load: Callable[[], Encoder]
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    SHIPPED_MODEL: BuiltinModel(
        _shipped_default,
        "the shipped trained model: BM25 on stemmed words plus a learned MiniLM channel; inference-free queries",
    ),
    "bm25": BuiltinModel(bm25_words, "BM25 on stemmed English words, stop words removed (no torch needed)"),
    "bm25-wordpiece": BuiltinModel(bm25_wordpiece, "BM25 on the BERT-uncased WordPiece tokens the neural models use"),
    "semantic": BuiltinModel(
        _semantic, "training-free learned channel alone: vocabulary words close to the document in MiniLM space"
    ),
    "hybrid-semantic": BuiltinModel(
        _hybrid_semantic, "stemmed-word BM25 plus the training-free semantic channel (weight 2)"
    ),
    "minilm-splade-untrained": BuiltinModel(
        _minilm_splade_untrained, "inference-free SPLADE on the untrained MiniLM masked-LM base (a training start)"
    ),
    "minilm-splade-siamese-untrained": BuiltinModel(
        _minilm_splade_siamese_untrained, "the same untrained MiniLM base as a siamese SPLADE (queries run the model)"
    ),
}

# config.json "type" -> loader of a saved model directory.
MODEL_LOADERS: dict[str, Callable[[Path], Encoder]] = {
    "bm25": BM25Encoder.load,
    "semantic": _load_semantic,
    "two-channel": _load_two_channel,
    "splade": _load_splade,
    "llm-splade": _load_llm_splade,
    "huggingface": _load_huggingface,  # a plain HF checkpoint (config.json without "type"): MLM or causal LM
}


def load_encoder(spec: str | Path | None = None) -> Encoder:
    """An encoder for ``spec``: a built-in model name, a saved model directory, or ``None`` (default).

    Raises:
        ModelNotFoundError: the name is unknown and no model directory exists at that path.
    """
    spec = DEFAULT_MODEL if spec is None else spec
    if isinstance(spec, str) and spec in BUILTIN_MODELS:
        return BUILTIN_MODELS[spec].load()
    path = Path(spec)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelNotFoundError(
            f"unknown model {str(spec)!r}: use one of {', '.join(sorted(BUILTIN_MODELS))} "
            "or a model directory containing config.json"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ModelNotFoundError(f"{config_file}: not valid JSON ({error})") from error
    model_type = config.get("type") or ("huggingface" if config.get("architectures") else None)
    loader = MODEL_LOADERS.get(model_type)
    if loader is None:
        raise ModelNotFoundError(
            f"{config_file}: unknown model type {model_type!r} (known: {', '.join(sorted(MODEL_LOADERS))})"
        )
    return loader(path)
