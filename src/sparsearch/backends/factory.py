"""Open any search backend by kind: ``embedded`` (a local directory), ``lucene`` (a local Lucene impact
index, read-only, through pyserini), ``opensearch`` or ``elasticsearch``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sparsearch.backends.base import SearchBackend
from sparsearch.errors import UsageError

if TYPE_CHECKING:
    from sparsearch.backends.engines.client import SearchEngineBackend

BackendKind = Literal["embedded", "lucene", "opensearch", "elasticsearch"]
BACKEND_KINDS: tuple[str, ...] = ("embedded", "lucene", "opensearch", "elasticsearch")
LOCAL_KINDS: tuple[str, ...] = ("embedded", "lucene")
"""Backends whose ``--index`` is a local directory (no ``--url``)."""


def check_backend_kind(kind: str) -> str:
    """Return ``kind`` if it names a backend, else raise :class:`UsageError` listing the choices."""
    if kind not in BACKEND_KINDS:
        raise UsageError(f"unknown --backend {kind!r}: use one of {', '.join(BACKEND_KINDS)}")
    return kind


def open_backend(kind: str, *, index: str | Path, url: str | None = None) -> SearchBackend:
    """Open an existing index.

    Args:
        kind: ``embedded``, ``lucene``, ``opensearch`` or ``elasticsearch``.
        index: the index directory (embedded, lucene) or the alias name on the engine.
        url: engine URL (``http(s)://[user:pass@]host:port``; default ``http://localhost:9200``);
            must not be given for ``embedded`` or ``lucene``.

    Returns:
        An :class:`~sparsearch.backends.embedded.index.EmbeddedIndex`,
        :class:`~sparsearch.backends.lucene.index.LuceneIndex`,
        :class:`~sparsearch.backends.engines.opensearch.OpenSearchBackend` or
        :class:`~sparsearch.backends.engines.elasticsearch.ElasticsearchBackend`. Engine backends connect
        lazily: the first call reaches the server.

    Raises:
        UsageError: unknown kind, or ``url`` given for a local index.
        IndexNotFoundError: no embedded or Lucene index at ``index``.
        MissingExtraError: ``lucene`` without pyserini (``pip install 'sparsearch[lucene]'``).
        JavaNotFoundError: ``lucene`` without a Java 21+ JDK.
    """
    check_backend_kind(kind)
    if kind in LOCAL_KINDS and url is not None:
        raise UsageError(f"--url is for --backend opensearch or elasticsearch; the {kind} backend reads --index DIR")
    if kind == "embedded":
        from sparsearch.backends.embedded.index import EmbeddedIndex

        return EmbeddedIndex.open(index)
    if kind == "lucene":
        from sparsearch.backends.lucene.index import LuceneIndex

        return LuceneIndex.open(index)
    return open_engine(kind, alias=str(index), url=url)


def open_engine(kind: str, *, alias: str, url: str | None = None) -> SearchEngineBackend:
    """An OpenSearch or Elasticsearch backend for ``alias`` (typed with the engines' own methods: versions,
    statistics, the stored encoder). Connects lazily: the first call reaches the server.

    Raises:
        UsageError: ``kind`` is not an engine.
    """
    if kind == "opensearch":
        from sparsearch.backends.engines.opensearch import OpenSearchBackend

        return OpenSearchBackend.connect(url, alias)
    if kind == "elasticsearch":
        from sparsearch.backends.engines.elasticsearch import ElasticsearchBackend

        return ElasticsearchBackend.connect(url, alias, pruning=token_pruning_from_env())
    raise UsageError(f"{kind!r} is not an engine backend: use opensearch or elasticsearch")


TOKEN_PRUNING_ENV = "SPARSEARCH_ES_TOKEN_PRUNING"


def token_pruning_from_env(environ: Mapping[str, str] = os.environ):  # noqa: ANN201 - TokenPruning | None
    """Elasticsearch token pruning as ``SPARSEARCH_ES_TOKEN_PRUNING`` asks: unset, empty or ``off``:
    none (exact scores, the default); ``on``: Elasticsearch's default thresholds; ``RATIO,WEIGHT``
    (e.g. ``5,0.4``): those ``tokens_freq_ratio_threshold`` and ``tokens_weight_threshold``.

    Raises:
        UsageError: any other value, or thresholds out of range.
    """
    from sparsearch.backends.engines.bodies import TokenPruning

    value = environ.get(TOKEN_PRUNING_ENV, "").strip().lower()
    if value in ("", "off", "false", "0"):
        return None
    if value in ("on", "true", "1"):
        return TokenPruning()
    ratio, comma, weight = value.partition(",")
    try:
        return TokenPruning(tokens_freq_ratio_threshold=float(ratio), tokens_weight_threshold=float(weight))
    except ValueError:
        raise UsageError(
            f"{TOKEN_PRUNING_ENV}={value!r}: use off, on, or RATIO,WEIGHT (e.g. 5,0.4: prune tokens more than 5x "
            "as frequent as average and lighter than 0.4x the query's largest weight)"
        ) from None


def load_backend_encoder(backend: SearchBackend, model: str | Path | None = None):  # noqa: ANN201 - an Encoder
    """The encoder that queries ``backend``: the one it was built with.

    Embedded indexes hold their encoder in ``encoder/``; engine indexes get it from the companion
    index ``sparsearch-encoders`` (downloaded once into the local cache). ``model`` overrides both
    with a saved model directory (or built-in name), which must have the index's fingerprint.

    Raises:
        EncoderMismatchError: ``model`` is not the encoder the index was built with.
        ModelNotFoundError: the engine holds no copy of the encoder and no ``model`` was given.
    """
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.errors import ModelNotFoundError

    where = f"{backend.name} index"
    if model is not None:
        encoder = load_encoder(model)
        if not encoder.is_fitted:
            raise UsageError(
                f"--model {model} has no corpus statistics (a built-in BM25 is fitted when indexing): pass the saved "
                "model directory, or leave --model out to use the encoder stored with the index"
            )
        backend.fingerprint.check_compatible(encoder.fingerprint, where=where)
        return encoder
    from sparsearch.backends.engines.client import SearchEngineBackend

    if not isinstance(backend, SearchEngineBackend):  # the embedded index keeps its encoder in encoder/
        encoder_dir = backend.encoder_dir  # type: ignore[attr-defined] - EmbeddedIndex (imported only when used)
    else:
        encoder_dir = backend.fetch_encoder(backend.fingerprint)
        if encoder_dir is None:
            from sparsearch.backends.engines.client import ENCODER_INDEX

            raise ModelNotFoundError(
                f"the engine holds no copy of encoder {backend.fingerprint.name!r} (index {ENCODER_INDEX}); pass "
                "--model DIR with the saved encoder this index was built with"
            )
    encoder = load_encoder(encoder_dir)
    backend.fingerprint.check_compatible(encoder.fingerprint, where=where)
    return encoder
