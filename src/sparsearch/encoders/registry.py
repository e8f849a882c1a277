"""Resolve ``--model`` values to encoders, and load the encoder saved inside an index.

A model is either a built-in name (``bm25``, ``bm25-wordpiece``) or a directory. What a directory
holds is read from its files by :func:`sparsearch.encoders.layouts.detect_layout` (a sparsearch
saved model, a sentence-transformers SparseEncoder folder, an OpenSearch doc-only model, a plain
Hugging Face masked or causal LM); its name is never used to guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparsearch.encoders.bm25 import BM25Encoder, bm25_wordpiece, bm25_words
from sparsearch.encoders.layouts import Layout, detect_layout
from sparsearch.encoders.sources import resolve_model_source
from sparsearch.errors import ModelNotFoundError, UsageError
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
}


MODEL_KINDS: tuple[str, ...] = ("inference-free", "siamese")
"""``--model-kind`` values: how a plain ``*ForMaskedLM`` directory is served."""


def load_encoder(spec: str | Path | None = None, *, kind: str | None = None, refit_idf: bool = False) -> Encoder:
    """An encoder for ``spec``: a built-in model name, a model directory, or ``None`` (default).

    Args:
        spec: a built-in name (:data:`BUILTIN_MODELS`), or a model directory of any layout
            :func:`~sparsearch.encoders.layouts.detect_layout` knows, given as a path, a Hugging Face
            id in the local cache or ``pkg:DIST/PATH`` (:mod:`sparsearch.encoders.sources`).
        kind: ``"inference-free"`` or ``"siamese"``, for a plain ``*ForMaskedLM`` directory (``None``:
            inference-free). Other layouts say their kind themselves; a different ``kind`` is refused.
        refit_idf: drop the query weights a model ships with (a Router's ``SparseStaticEmbedding``,
            an OpenSearch ``idf.json``, a saved table) so indexing fits IDF on the corpus.

    Raises:
        ModelNotFoundError: the name is unknown and no model directory exists at that path, or the
            directory holds a layout that cannot be served (the message says why).
        UsageError: ``kind`` or ``refit_idf`` does not apply to this model.
    """
    if kind is not None and kind not in MODEL_KINDS:
        raise UsageError(f"unknown model kind {kind!r}: use one of {', '.join(MODEL_KINDS)}")
    spec = DEFAULT_MODEL if spec is None else spec
    if isinstance(spec, str) and spec in BUILTIN_MODELS:
        if kind is not None or refit_idf:
            raise UsageError(f"--model-kind and --refit-idf apply to model directories, not to the built-in {spec!r}")
        return BUILTIN_MODELS[spec].load()
    path = resolve_model_source(spec)
    if path is None:
        raise ModelNotFoundError(
            f"unknown model {str(spec)!r}: use one of {', '.join(sorted(BUILTIN_MODELS))}, a model directory, "
            "a Hugging Face id in the local cache (ORG/NAME) or pkg:DISTRIBUTION/PATH"
        )
    layout = detect_layout(path)
    encoder = _load_layout(layout, kind)
    if refit_idf:
        _drop_query_weights(encoder, layout)
    return encoder


def _load_layout(layout: Layout, kind: str | None) -> Encoder:
    if layout.name == "sparsearch":
        return _load_saved(layout, kind)
    if layout.name == "causal-lm":
        if kind == "siamese":
            raise UsageError(f"{layout.path}: a causal LM serves inference-free queries only (--model-kind siamese)")
        return _load_llm_splade_checkpoint(layout.path)
    from sparsearch.encoders.external import load_external

    native = {"st-siamese": "siamese", "st-inference-free": "inference-free", "opensearch-doc-only": "inference-free"}
    if kind is not None and layout.name in native and kind != native[layout.name]:
        raise UsageError(
            f"{layout.path}: --model-kind {kind} contradicts the model's files ({layout.reason}); "
            "--model-kind chooses the kind of a plain *ForMaskedLM directory only"
        )
    return load_external(layout, kind or native.get(layout.name, "inference-free"))


def _load_saved(layout: Layout, kind: str | None) -> Encoder:
    config = json.loads((layout.path / "config.json").read_text(encoding="utf-8"))
    model_type = config.get("type")
    loader = MODEL_LOADERS.get(model_type)
    if loader is None:
        raise ModelNotFoundError(
            f"{layout.path / 'config.json'}: unknown model type {model_type!r} "
            f"(known: {', '.join(sorted(MODEL_LOADERS))})"
        )
    encoder = loader(layout.path)
    saved_kind = getattr(encoder, "kind", None)
    if kind is not None and kind != saved_kind:
        raise UsageError(f"{layout.path}: a saved {saved_kind or model_type} model; --model-kind {kind} does not apply")
    return encoder


def _load_llm_splade_checkpoint(path: Path) -> Encoder:
    from sparsearch.encoders.llm_splade import EchoSpladeEncoder

    return EchoSpladeEncoder.from_causal_lm(path)


def _drop_query_weights(encoder: Encoder, layout: Layout) -> None:
    from sparsearch.encoders.neural import NeuralSparseEncoder

    if not isinstance(encoder, NeuralSparseEncoder) or getattr(encoder, "kind", "inference-free") == "siamese":
        raise UsageError(f"{layout.path}: --refit-idf is for inference-free neural models (this is {layout.reason})")
    encoder.clear_idf()
