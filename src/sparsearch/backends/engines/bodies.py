"""Request bodies for Elasticsearch and OpenSearch: pure functions shared by both backends.

Nothing here talks to a server. Both engines receive exactly these payloads, so the unit tests of
this module cover the Elasticsearch backend as well as the OpenSearch one (which is also tested
against a real OpenSearch).

**Scoring.** Documents keep their ``token -> weight`` map in a ``rank_features`` field (or, on
Elasticsearch 8.15+, optionally a ``sparse_vector`` field). A query is a bool ``should`` of one
``rank_feature`` query per query token with the ``linear`` function and ``boost`` = query weight,
so the engine's score is ``sum over shared tokens of q_weight x stored_d_weight``: the scoring
contract of :mod:`sparsearch.types` (the default ``saturation`` function would not
be a dot product).

**Stored precision.** Lucene's ``FeatureField`` keeps a weight as the top 16 bits of its float32
(sign, 8 exponent bits, 7 explicit mantissa bits: 8 significant bits plus the implicit one, "about
9 significant bits"), truncating the rest. A stored weight ``w'`` therefore satisfies
``w * (1 - 2**-8) < w' <= w`` (see :func:`quantize_weights`), and since query weights are positive
an engine score ``s'`` satisfies ``s * (1 - 2**-8) < s' <= s`` up to float32 rounding
(:data:`SCORE_RELATIVE_TOLERANCE`). Rankings can differ from the embedded engine only between
documents whose exact scores are closer than that.

**Feature names.** The engine addresses a feature as ``features.<name>``: a dot inside a name
breaks that path (OpenSearch indexes it but never matches it; Elasticsearch rejects it) and an empty
name is not a valid path either. :func:`escape_feature` maps every token to a safe, reversible name:
``%`` -> ``%25``, ``.`` -> ``%2E``, and the empty token -> ``%``. WordPiece tokens (``##ing``),
prefixed word tokens (``w:run``) and any other unicode pass through unchanged.

**Dense vectors (hybrid search).** An index built with ``--dense`` keeps each document's dense-model
window embeddings in ``_source`` under :data:`DENSE_FIELD`, a ``binary`` field (base64 of the float16
little-endian (n_windows, 384) array: 1,024 characters a window): never indexed, no doc values, no
k-NN plugin needed; hybrid search reads them back with its sparse candidates and fuses client-side
(:mod:`sparsearch.hybrid`). The ``binary`` type is the same on both engines:
https://docs.opensearch.org/docs/2.19/field-types/supported-field-types/binary/ and
https://www.elastic.co/guide/en/elasticsearch/reference/8.19/binary.html (not stored separately,
not searchable, ``doc_values`` off by default; the Elasticsearch side checked against the docs only).

**Weights.** Engines only store positive normal float32 weights; :func:`build_document_source`
rejects zero, negative, non-finite, subnormal and too-large weights with the token named.

**Token pruning (Elasticsearch ``sparse_vector`` only).** Elasticsearch's ``sparse_vector`` query
can drop "non-significant" query tokens (frequent across the field *and* light compared with the
query's heaviest token) before scoring. When a query says nothing, Elasticsearch falls back to the
field's ``index_options``, and ``sparse_vector`` fields created on 8.19+ / 9.1+ prune by default, so
scores would no longer be the dot product. :func:`build_query` therefore sends ``"prune": false``
unless a :class:`TokenPruning` is given. Parameters as documented for the ``sparse_vector`` query
(``prune`` and ``pruning_config``, added in 8.15, generally available from 8.19 / 9.1):
https://www.elastic.co/guide/en/elasticsearch/reference/8.19/query-dsl-sparse-vector-query.html and
https://www.elastic.co/docs/reference/query-languages/query-dsl/query-dsl-sparse-vector-query
(checked against the docs only: no Elasticsearch server ever ran these bodies).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from sparsearch import __version__
from sparsearch.errors import EngineError, IndexFormatError, UsageError
from sparsearch.types import Document, EncoderFingerprint

FEATURES_FIELD = "features"
"""The ``rank_features`` (or ``sparse_vector``) field holding a document's token weights."""

META_KEY = "sparsearch"
"""Key of sparsearch's entry in the index mapping's ``_meta``."""

INDEX_FORMAT_VERSION = 1
"""Bumped when the mapping or the meta layout changes incompatibly."""

FIELD_TYPES = ("rank_features", "sparse_vector")

DENSE_FIELD = "dense"
"""The ``binary`` field holding a document's window embeddings (indexes built with ``--dense``)."""
DENSE_DIM = 384

TEXT_FIELDS = ("title", "text")
"""Document fields indexed as searchable ``text`` for the engine's own queries (BM25, highlighting)."""

STORED_SIGNIFICANT_BITS = 9
"""Significant bits (implicit one included) an engine keeps of a stored weight."""

SCORE_RELATIVE_TOLERANCE = 2.0**-8 + 1e-6
"""Bound on ``|engine_score - exact_score| / exact_score``: weight truncation plus float32 rounding."""

MIN_WEIGHT = float(np.finfo(np.float32).tiny)
"""Smallest storable weight (the smallest positive normal float32, about 1.2e-38)."""

MAX_WEIGHT = float(np.finfo(np.float32).max)
"""Largest storable weight (about 3.4e38)."""

STATE_BUILDING = "building"
STATE_COMPLETE = "complete"

_VERSION_SUFFIX = re.compile(r"-v(\d{6})$")
_INVALID_INDEX_CHARS = set('\\/*?"<>| ,#:')
_ESCAPES = {"%": "%25", ".": "%2E"}
_UNESCAPE = re.compile(r"%(25|2E)")


# -- feature names ------------------------------------------------------------------------------------
def escape_feature(token: str) -> str:
    """The engine-safe feature name of ``token`` (reversible, see the module docstring).

    Example:
        >>> [escape_feature(t) for t in ["##ing", "w:run", "u.s.a", "", "100%"]]
        ['##ing', 'w:run', 'u%2Es%2Ea', '%', '100%25']
    """
    if token == "":
        return "%"
    if "%" not in token and "." not in token:
        return token
    return "".join(_ESCAPES.get(char, char) for char in token)


def unescape_feature(name: str) -> str:
    """Inverse of :func:`escape_feature`.

    Example:
        >>> [unescape_feature(n) for n in ["##ing", "u%2Es%2Ea", "%", "100%25"]]
        ['##ing', 'u.s.a', '', '100%']
    """
    if name == "%":
        return ""
    if "%" not in name:
        return name
    return _UNESCAPE.sub(lambda match: "%" if match.group(1) == "25" else ".", name)


# -- weights ------------------------------------------------------------------------------------------
def quantize_weights(weights: np.ndarray | Sequence[float]) -> np.ndarray:
    """The weights an engine stores and scores with: float32 truncated to 9 significant bits.

    Mirrors Lucene's ``FeatureField`` (the low 15 bits of the float32 are dropped), so
    ``quantize_weights(w) <= w`` and the relative loss is below ``2**-8``.

    Args:
        weights: positive weights, any shape.

    Returns:
        float32 array of the same shape.
    """
    bits = np.asarray(weights, dtype=np.float32).view(np.uint32)
    return (bits & np.uint32(0xFFFF8000)).view(np.float32)


def _check_weight(token: str, weight: object, doc_id: str) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float | np.floating | np.integer):
        raise ValueError(f"document {doc_id!r}: token {token!r} has a non-numeric weight {weight!r}")
    value = float(weight)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"document {doc_id!r}: token {token!r} has weight {value!r}; engines store only weights > 0 "
            "(drop zero and negative weights before indexing)"
        )
    if not MIN_WEIGHT <= value <= MAX_WEIGHT:
        raise ValueError(
            f"document {doc_id!r}: token {token!r} has weight {value!r}, outside the storable range "
            f"[{MIN_WEIGHT:.3g}, {MAX_WEIGHT:.3g}] of positive normal float32 values"
        )
    return value


# -- index body ---------------------------------------------------------------------------------------
def check_index_name(name: str) -> str:
    """Validate an index/alias name the way both engines do; returns it unchanged.

    Raises:
        UsageError: the name is empty, not lowercase, too long, starts with ``-``, ``_``, ``+`` or
            ``.``, contains a forbidden character, or ends like a sparsearch version (``-v000001``).
    """
    problem = None
    if not name:
        problem = "is empty"
    elif name != name.lower():
        problem = "must be lowercase"
    elif len(name.encode("utf-8")) > 200:
        problem = "is longer than 200 bytes"
    elif name[0] in "-_+.":
        problem = "must not start with '-', '_', '+' or '.'"
    elif set(name) & _INVALID_INDEX_CHARS:
        problem = f"must not contain any of {''.join(sorted(_INVALID_INDEX_CHARS))!r}"
    elif _VERSION_SUFFIX.search(name):
        problem = "must not end like a version suffix (-v000001); sparsearch adds those itself"
    if problem:
        raise UsageError(f"index name {name!r} {problem}; choose a name such as 'cranfield'")
    return name


def version_name(alias: str, version: int) -> str:
    """The concrete index behind ``alias`` for one build: ``<alias>-v000003``."""
    return f"{alias}-v{version:06d}"


def parse_version(alias: str, index_name: str) -> int | None:
    """The version number of ``index_name`` if it is a version of ``alias``, else ``None``."""
    if not index_name.startswith(alias + "-v"):
        return None
    match = _VERSION_SUFFIX.search(index_name)
    if match is None or index_name[: match.start()] != alias:
        return None
    return int(match.group(1))


def build_meta(
    fingerprint: EncoderFingerprint,
    *,
    field_type: str = "rank_features",
    state: str = STATE_BUILDING,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The ``_meta`` entry that makes an engine index explain itself.

    Returns:
        ``{"sparsearch": {format_version, sparsearch_version, encoder, field_type, state, updated_at, ...}}``;
        ``encoder`` is the fingerprint dict the backend checks every query against.
    """
    if field_type not in FIELD_TYPES:
        raise UsageError(f"unknown field type {field_type!r}: use one of {', '.join(FIELD_TYPES)}")
    entry: dict[str, object] = {
        "format_version": INDEX_FORMAT_VERSION,
        "sparsearch_version": __version__,
        "encoder": fingerprint.to_dict(),
        "field_type": field_type,
        "state": state,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    entry.update(extra or {})
    return {META_KEY: entry}


def build_mapping(
    meta: Mapping[str, object], *, field_type: str = "rank_features", dense: bool = False
) -> dict[str, object]:
    """The index mapping: ``doc_id`` (keyword, the tie-break sort key), ``title`` and ``text`` (searchable
    ``text`` fields with the engine's standard analyzer, so its own BM25 ``match`` queries, highlighting
    and hybrid queries work next to ours; they never take part in sparsearch's scores) and the features
    field. ``dynamic: strict`` so a malformed document is rejected instead of widening the mapping.

    Indexes built before this mapping mapped ``title``/``text`` with ``"index": false``; they still
    search and return documents the same way (only the engine's text queries need a rebuild).

    With ``dense``, a ``binary`` :data:`DENSE_FIELD` holds the window embeddings (see the module docstring).

    Example:
        >>> build_mapping({}, dense=True)["properties"]["dense"]
        {'type': 'binary'}
    """
    if field_type not in FIELD_TYPES:
        raise UsageError(f"unknown field type {field_type!r}: use one of {', '.join(FIELD_TYPES)}")
    properties: dict[str, object] = {
        "doc_id": {"type": "keyword"},
        **{field: {"type": "text"} for field in TEXT_FIELDS},
        FEATURES_FIELD: {"type": field_type},
    }
    if dense:
        properties[DENSE_FIELD] = {"type": "binary"}
    return {"dynamic": "strict", "_meta": dict(meta), "properties": properties}


def build_index_body(
    meta: Mapping[str, object],
    *,
    shards: int = 1,
    replicas: int | None = None,
    field_type: str = "rank_features",
    bulk_loading: bool = False,
    dense: bool = False,
) -> dict[str, object]:
    """Settings and mappings for ``PUT /<index>``.

    Args:
        meta: from :func:`build_meta`.
        shards: primary shards (scores do not depend on shard statistics with ``linear``, so any
            number gives the same results).
        replicas: replica count; ``None`` means ``auto_expand_replicas: 0-1`` (no replica on a
            single node, one on a cluster).
        field_type: ``rank_features`` or ``sparse_vector``.
        bulk_loading: disable refreshes for a bulk load (re-enable with :func:`build_live_settings`).
        dense: add the ``binary`` field of window embeddings (hybrid search).
    """
    if shards < 1:
        raise UsageError(f"shards must be at least 1 (got {shards})")
    settings: dict[str, object] = {"number_of_shards": shards}
    if replicas is None:
        settings["auto_expand_replicas"] = "0-1"
    else:
        if replicas < 0:
            raise UsageError(f"replicas must be >= 0 (got {replicas})")
        settings["number_of_replicas"] = replicas
    if bulk_loading:
        settings["refresh_interval"] = "-1"
    return {"settings": {"index": settings}, "mappings": build_mapping(meta, field_type=field_type, dense=dense)}


def build_live_settings() -> dict[str, object]:
    """Settings restored after a bulk load (the engine's default refresh interval)."""
    return {"index": {"refresh_interval": None}}


# -- documents ----------------------------------------------------------------------------------------
def encode_dense(windows: np.ndarray) -> str:
    """(n_windows, 384) embeddings as the :data:`DENSE_FIELD` value: base64 of float16 little-endian.

    Example:
        >>> value = encode_dense(np.full((2, 384), 0.5))
        >>> len(value), decode_dense(value).shape, float(decode_dense(value)[1, 0])
        (2048, (2, 384), 0.5)

    Raises:
        ValueError: not (n, 384), or not finite.
    """
    array = np.asarray(windows, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != DENSE_DIM or not np.all(np.isfinite(array)):
        raise ValueError(f"dense windows must be finite (n, {DENSE_DIM}), got {array.shape}")
    return base64.b64encode(array.astype("<f2").tobytes()).decode("ascii")


def decode_dense(value: str | None) -> np.ndarray:
    """Inverse of :func:`encode_dense`: float16 (n_windows, 384); ``None`` or ``""`` (no text) -> (0, 384).

    Raises:
        IndexFormatError: not base64 of whole 384-wide float16 rows.
    """
    if not value:
        return np.zeros((0, DENSE_DIM), dtype=np.float16)
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, TypeError) as error:
        raise IndexFormatError(f"a stored {DENSE_FIELD!r} value is not base64 ({error})") from None
    if len(raw) % (2 * DENSE_DIM):
        raise IndexFormatError(f"a stored {DENSE_FIELD!r} value has {len(raw)} bytes, not whole float16 rows")
    return np.frombuffer(raw, dtype="<f2").reshape(-1, DENSE_DIM).astype(np.float16)


def build_document_source(
    document: Document, vector: Mapping[str, float], dense: np.ndarray | None = None
) -> dict[str, object]:
    """The ``_source`` of one document: ``doc_id``, ``title``, ``text``, escaped ``features`` and, for
    an index with dense vectors, the document's (n_windows, 384) window embeddings (:func:`encode_dense`).

    Raises:
        ValueError: a weight is not a positive normal float32 (the message names the document and token).
    """
    features = {
        escape_feature(token): _check_weight(token, weight, document.doc_id) for token, weight in vector.items()
    }
    source: dict[str, object] = {
        "doc_id": document.doc_id,
        "title": document.title,
        "text": document.text,
        FEATURES_FIELD: features,
    }
    if dense is not None:
        source[DENSE_FIELD] = encode_dense(dense)
    return source


def build_index_action(
    index: str, document: Document, vector: Mapping[str, float], dense: np.ndarray | None = None
) -> dict[str, object]:
    """One bulk ``index`` action with ``_id`` = ``doc_id``: re-sending it overwrites, never duplicates."""
    return {
        "_op_type": "index",
        "_index": index,
        "_id": document.doc_id,
        "_source": build_document_source(document, vector, dense),
    }


def iter_bulk_actions(
    index: str,
    documents: Iterable[Document],
    vectors: Iterable[Mapping[str, float]],
    dense: Iterable[np.ndarray] | None = None,
) -> Iterator[dict[str, object]]:
    """Bulk ``index`` actions for the clients' bulk helpers, one per document, in order (with each
    document's window embeddings when ``dense`` is given).

    Raises:
        ValueError: on the first invalid weight (see :func:`build_document_source`).
    """
    if dense is None:
        for document, vector in zip(documents, vectors, strict=True):
            yield build_index_action(index, document, vector)
        return
    for document, vector, rows in zip(documents, vectors, dense, strict=True):
        yield build_index_action(index, document, vector, rows)


def build_delete_action(index: str, doc_id: str) -> dict[str, object]:
    return {"_op_type": "delete", "_index": index, "_id": doc_id}


def parse_features(source_features: Mapping[str, float]) -> dict[str, float]:
    """A stored ``features`` object back to ``token -> weight`` (names unescaped)."""
    return {unescape_feature(name): float(weight) for name, weight in source_features.items()}


# -- queries ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenPruning:
    """Elasticsearch's ``pruning_config`` of the ``sparse_vector`` query (token pruning turned on).

    A query token is pruned when it is both frequent (its document frequency in the field is more
    than ``tokens_freq_ratio_threshold`` times the field's average) and light (its weight is below
    ``tokens_weight_threshold`` times the query's largest weight). Pruned queries are faster but
    their scores are no longer the exact dot product. The defaults are Elasticsearch's.

    Attributes:
        tokens_freq_ratio_threshold: between 1 and 100 (Elasticsearch's default 5).
        tokens_weight_threshold: between 0 and 1 (default 0.4).
        only_score_pruned_tokens: score with the pruned tokens only, discarding the others (for a
            rescore query; default ``False``).

    Example:
        >>> TokenPruning(tokens_weight_threshold=0.2).to_body()
        {'tokens_freq_ratio_threshold': 5.0, 'tokens_weight_threshold': 0.2, 'only_score_pruned_tokens': False}

    Raises:
        UsageError: a threshold outside its range.
    """

    tokens_freq_ratio_threshold: float = 5.0
    tokens_weight_threshold: float = 0.4
    only_score_pruned_tokens: bool = False

    def __post_init__(self) -> None:
        ratio, weight = float(self.tokens_freq_ratio_threshold), float(self.tokens_weight_threshold)
        if not 1 <= ratio <= 100:
            raise UsageError(f"tokens_freq_ratio_threshold must be between 1 and 100 (got {ratio!r})")
        if not 0 <= weight <= 1:
            raise UsageError(f"tokens_weight_threshold must be between 0 and 1 (got {weight!r})")
        object.__setattr__(self, "tokens_freq_ratio_threshold", ratio)
        object.__setattr__(self, "tokens_weight_threshold", weight)
        object.__setattr__(self, "only_score_pruned_tokens", bool(self.only_score_pruned_tokens))

    def to_body(self) -> dict[str, object]:
        """The ``pruning_config`` object of the ``sparse_vector`` query."""
        return {
            "tokens_freq_ratio_threshold": self.tokens_freq_ratio_threshold,
            "tokens_weight_threshold": self.tokens_weight_threshold,
            "only_score_pruned_tokens": self.only_score_pruned_tokens,
        }


def query_clauses(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(escaped feature, weight)`` pairs of a query, sorted by token; zero weights are dropped.

    Raises:
        UsageError: a weight is negative or not finite (engines reject negative boosts).
    """
    clauses = []
    for token in sorted(weights):
        weight = float(weights[token])
        if not math.isfinite(weight) or weight < 0:
            raise UsageError(
                f"query token {token!r} has weight {weight!r}; engines accept only weights >= 0 "
                "(zero weights are dropped)"
            )
        if weight > 0:
            clauses.append((escape_feature(token), weight))
    return clauses


def build_query(
    weights: Mapping[str, float],
    top_k: int,
    *,
    field_type: str = "rank_features",
    pruning: TokenPruning | None = None,
    with_dense: bool = False,
) -> dict[str, object]:
    """A search body whose scores are ``sum of q_weight x stored d_weight`` (unless ``pruning`` is set).

    Hits are sorted by score descending, then ``doc_id`` ascending (the embedded engine's order);
    ``_source`` is not returned (fetch documents with ``mget``).

    Args:
        weights: query ``token -> weight`` (non-empty after dropping zeros; weights >= 0).
        top_k: number of hits (at most the engine's ``index.max_result_window``, 10,000 by default).
        field_type: ``rank_features`` (bool of linear ``rank_feature`` queries) or ``sparse_vector``
            (Elasticsearch 8.15+ ``sparse_vector`` query, the same dot product: sent with
            ``"prune": false`` so a field's default pruning never applies).
        pruning: ``sparse_vector`` only: turn Elasticsearch's token pruning on with this
            ``pruning_config`` (faster, approximate scores).
        with_dense: return each hit's :data:`DENSE_FIELD` in ``_source`` (hybrid search's candidates).

    Raises:
        UsageError: empty query, ``top_k < 1``, a negative weight, or ``pruning`` with ``rank_features``.
    """
    if top_k < 1:
        raise UsageError(f"top_k must be at least 1 (got {top_k})")
    clauses = query_clauses(weights)
    if not clauses:
        raise UsageError("the query has no token with a positive weight")
    if pruning is not None and field_type != "sparse_vector":
        raise UsageError(
            f"token pruning is an option of Elasticsearch's sparse_vector query; this index has field type "
            f"{field_type!r}: rebuild it with --field-type sparse_vector (Elasticsearch 8.15+) or search "
            "without pruning"
        )
    if field_type == "rank_features":
        query: dict[str, object] = {
            "bool": {
                "should": [
                    {"rank_feature": {"field": f"{FEATURES_FIELD}.{name}", "linear": {}, "boost": weight}}
                    for name, weight in clauses
                ]
            }
        }
    elif field_type == "sparse_vector":
        # "prune" always explicit: see "Token pruning" in the module docstring
        sparse: dict[str, object] = {"field": FEATURES_FIELD, "query_vector": dict(clauses)}
        sparse["prune"] = pruning is not None
        if pruning is not None:
            sparse["pruning_config"] = pruning.to_body()
        query = {"sparse_vector": sparse}
    else:
        raise UsageError(f"unknown field type {field_type!r}: use one of {', '.join(FIELD_TYPES)}")
    return {
        "size": top_k,
        "query": query,
        "sort": [{"_score": {"order": "desc"}}, {"doc_id": {"order": "asc"}}],
        "_source": [DENSE_FIELD] if with_dense else False,
        "track_total_hits": False,
    }


def build_text_query(
    text: str, top_k: int, *, fields: Sequence[str] = TEXT_FIELDS, highlight: bool = False
) -> dict[str, object]:
    """A search body for the engine's own BM25 over ``title`` and ``text`` (a ``multi_match``).

    Not sparsearch's scoring contract: this is the engine's analyzer and BM25, useful next to our
    sparse scores (a baseline, a hybrid query, highlighted snippets). Same sort and tie-break as
    :func:`build_query`. With ``highlight``, each hit carries ``highlight: {field: [fragments]}``
    (the engine's default ``<em>`` tags).

    Example:
        >>> build_text_query("hypersonic flow", 3, highlight=True)["highlight"]
        {'fields': {'title': {}, 'text': {}}}

    Raises:
        UsageError: empty text, no field, or ``top_k < 1``.
    """
    if top_k < 1:
        raise UsageError(f"top_k must be at least 1 (got {top_k})")
    if not text.strip():
        raise UsageError("the text query is empty")
    if not fields or set(fields) - set(TEXT_FIELDS):
        raise UsageError(f"text fields must be among {', '.join(TEXT_FIELDS)} (got {list(fields)!r})")
    body: dict[str, object] = {
        "size": top_k,
        "query": {"multi_match": {"query": text, "fields": list(fields)}},
        "sort": [{"_score": {"order": "desc"}}, {"doc_id": {"order": "asc"}}],
        "_source": False,
        "track_total_hits": False,
    }
    if highlight:
        body["highlight"] = {"fields": {field: {} for field in fields}}
    return body


def build_msearch(index: str, bodies: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
    """The ``_msearch`` body: a header line and a search body per query, in order."""
    lines: list[dict[str, object]] = []
    for body in bodies:
        lines.append({"index": index})
        lines.append(dict(body))
    return lines


def build_alias_swap(alias: str, new_index: str, old_indexes: Sequence[str]) -> dict[str, object]:
    """One ``_aliases`` request that points ``alias`` at ``new_index`` only, atomically."""
    actions: list[dict[str, object]] = [{"remove": {"index": old, "alias": alias}} for old in old_indexes]
    actions.append({"add": {"index": new_index, "alias": alias}})
    return {"actions": actions}


def parse_hits(response: Mapping[str, object]) -> list[tuple[str, float]]:
    """``(doc_id, score)`` pairs of a search response, in the engine's order.

    Raises:
        EngineError: the response reports failed shards (a partial page must not pass as complete).
    """
    shards = response.get("_shards") or {}
    if isinstance(shards, Mapping) and shards.get("failed"):
        raise EngineError(f"search failed on {shards['failed']} shard(s): {shards.get('failures')}")
    hits = response["hits"]["hits"]  # type: ignore[index]
    return [(hit["_id"], float(hit["_score"])) for hit in hits]


def parse_dense_hits(response: Mapping[str, object]) -> list[tuple[str, float, np.ndarray]]:
    """``(doc_id, score, windows)`` of a :func:`build_query` ``with_dense`` response, in the engine's
    order; ``windows`` float16 (n_windows, 384) (none for a document without text).

    Raises:
        EngineError: failed shards (see :func:`parse_hits`).
        IndexFormatError: a hit without the dense field (a document indexed without dense vectors).
    """
    pairs = parse_hits(response)
    hits = response["hits"]["hits"]  # type: ignore[index]
    result = []
    for (doc_id, score), hit in zip(pairs, hits, strict=True):
        source = hit.get("_source") or {}
        if DENSE_FIELD not in source:
            raise IndexFormatError(
                f"document {doc_id!r} has no dense vectors: rebuild the index with sparsearch index --dense"
            )
        result.append((doc_id, score, decode_dense(source[DENSE_FIELD])))
    return result
