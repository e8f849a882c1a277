"""Encoders over model folders made elsewhere: sentence-transformers, OpenSearch, plain Hugging Face.

Every one becomes a :class:`~sparsearch.encoders.splade.SpladeEncoder` (one SPLADE implementation);
what changes is where the weights and the query side come from (the layouts are described in
:mod:`sparsearch.encoders.layouts`):

* ``st-siamese``: the folder is loaded by ``SparseEncoder(path)`` as is; queries run the model
  (``SparseEncoder.encode_query``).
* ``st-inference-free``: the folder is loaded by ``SparseEncoder(path)``; the query weights are the
  Router's ``SparseStaticEmbedding`` (a (V,) float vector), kept as shipped.
* ``opensearch-doc-only``: the masked LM plus its ``idf.json`` of ``token -> weight`` as shipped
  (the model card's rule: a query is the weights of its distinct tokens; a token missing from the
  file weighs 0).
* ``masked-lm``: a plain ``*ForMaskedLM`` folder, of the kind the caller chose.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sparsearch.encoders.idf import IdfTable
from sparsearch.encoders.layouts import Layout
from sparsearch.encoders.neural import EncodingOptions
from sparsearch.encoders.splade import Kind, SpladeEncoder
from sparsearch.encoders.vocabulary import TokenizerVocabulary
from sparsearch.errors import ModelNotFoundError, UsageError

log = logging.getLogger(__name__)


def _shipped_table(weights: dict[str, float], vocabulary: TokenizerVocabulary) -> IdfTable:
    """Shipped query weights restricted to the vocabulary's non-special tokens with a weight != 0."""
    known = set(vocabulary.vocabulary) - set(vocabulary.special_tokens)
    kept = {token: float(w) for token, w in weights.items() if token in known and w != 0}
    if not kept:
        raise ModelNotFoundError("the model's query weights share no token with its tokenizer")
    return IdfTable.from_weights(kept, vocabulary.identity)


def static_embedding_weights(layout: Layout, vocabulary: TokenizerVocabulary) -> IdfTable:
    """The Router's ``SparseStaticEmbedding`` weights ((V,) floats, by term id) as a shipped table.

    Raises:
        ModelNotFoundError: the weights do not match the vocabulary (size or tokenizer).
    """
    from safetensors.numpy import load_file

    assert layout.query_weights_file is not None
    query_vocabulary = TokenizerVocabulary.from_file(layout.query_weights_file.parent)
    if query_vocabulary.vocab_hash != vocabulary.vocab_hash:
        raise ModelNotFoundError(
            f"{layout.path}: the query route's tokenizer differs from the document route's; sparsearch needs one "
            "vocabulary for both sides"
        )
    tensors = load_file(str(layout.query_weights_file))
    if "weight" not in tensors or tensors["weight"].shape != (len(vocabulary),):
        shapes = {name: tuple(t.shape) for name, t in tensors.items()}
        raise ModelNotFoundError(
            f"{layout.query_weights_file}: expected a 'weight' vector of {len(vocabulary)} floats, found {shapes}"
        )
    weights = tensors["weight"].astype(float).tolist()
    return _shipped_table(dict(zip(vocabulary.vocabulary, weights, strict=True)), vocabulary)


def opensearch_weights(layout: Layout, vocabulary: TokenizerVocabulary) -> IdfTable:
    """An OpenSearch doc-only model's ``idf.json`` (``{token: weight}``) as a shipped table."""
    assert layout.query_weights_file is not None
    data = json.loads(layout.query_weights_file.read_text(encoding="utf-8"))
    table = _shipped_table(data, vocabulary)
    missing = len(data) - len(table.fixed or {})
    if missing:
        log.info(
            "%s: %d entries are not non-special tokens of the tokenizer or weigh 0", layout.query_weights_file, missing
        )
    return table


def default_options(document_dir: Path) -> EncodingOptions:
    """Encoding options for a model made elsewhere: 256-token passages, or its window when smaller."""
    config_file = document_dir / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    window = int(config.get("max_position_embeddings") or 512)
    max_length = min(EncodingOptions.max_length, window)
    return EncodingOptions(max_length=max_length, passage_overlap=min(EncodingOptions.passage_overlap, max_length // 2))


def load_external(layout: Layout, kind: Kind) -> SpladeEncoder:
    """A :class:`SpladeEncoder` over a detected layout (the torch model loads on first use).

    Args:
        layout: from :func:`~sparsearch.encoders.layouts.detect_layout` (not ``sparsearch`` or
            ``causal-lm``).
        kind: the kind to serve a plain ``masked-lm`` folder as (other layouts have their own).

    Returns:
        The encoder, with ``source_layout`` = its kind and ``layout.reason``. Inference-free layouts with
        shipped weights come fitted; a plain masked LM fits IDF on the corpus it indexes.
    """
    assert layout.document_dir is not None
    name = layout.path.resolve().name
    vocabulary = TokenizerVocabulary.from_file(layout.document_dir)
    options = default_options(layout.document_dir)
    if layout.name == "st-siamese":
        encoder = SpladeEncoder(name, vocabulary, kind="siamese", options=options, weights_dir=layout.path)
    elif layout.name == "st-inference-free":
        idf = static_embedding_weights(layout, vocabulary)
        encoder = SpladeEncoder(
            name, vocabulary, kind="inference-free", options=options, idf=idf, weights_dir=layout.path
        )
    elif layout.name == "opensearch-doc-only":
        encoder = SpladeEncoder.from_mlm(layout.path, kind="inference-free", name=name, options=options)
        encoder.set_idf(opensearch_weights(layout, vocabulary))
    elif layout.name == "masked-lm":
        encoder = SpladeEncoder.from_mlm(layout.path, kind=kind, name=name, options=options)
    else:
        raise UsageError(f"{layout.path}: layout {layout.name} is not loaded here")
    encoder.source_layout = f"{encoder.kind} SPLADE ({layout.reason})"
    return encoder
