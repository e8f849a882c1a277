"""The pure request bodies shared by the OpenSearch and Elasticsearch backends (no server needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsearch.backends.engines import bodies
from sparsearch.errors import UsageError
from sparsearch.types import Document, EncoderFingerprint

FINGERPRINT = EncoderFingerprint(name="bm25", vocab_hash="v" * 16, idf_hash="i" * 16)


# -- feature names ------------------------------------------------------------------------------------
@given(st.text())
def test_escape_round_trips_and_gives_engine_safe_names(token: str) -> None:
    name = bodies.escape_feature(token)
    assert bodies.unescape_feature(name) == token
    assert name != "" and "." not in name


@given(st.text(), st.text())
def test_distinct_tokens_get_distinct_names(a: str, b: str) -> None:
    if a != b:
        assert bodies.escape_feature(a) != bodies.escape_feature(b)


@pytest.mark.parametrize(
    ("token", "name"),
    [
        ("##ing", "##ing"),
        ("w:run", "w:run"),
        ("naïve", "naïve"),
        ("u.s.a", "u%2Es%2Ea"),
        ("", "%"),
        ("%", "%25"),
        ("%2E", "%252E"),
        (".", "%2E"),
    ],
)
def test_escape_examples(token: str, name: str) -> None:
    assert bodies.escape_feature(token) == name
    assert bodies.unescape_feature(name) == token


# -- stored precision ---------------------------------------------------------------------------------
def test_quantize_matches_the_value_opensearch_returned() -> None:
    # Measured on OpenSearch 3.8: a document weight 1.2345678 boosted by 2 scored 2.46875.
    assert bodies.quantize_weights([1.2345678])[0] * 2 == pytest.approx(2.46875, rel=0, abs=0)


@given(st.floats(min_value=bodies.MIN_WEIGHT, max_value=1e30, allow_nan=False, allow_infinity=False))
def test_quantize_truncates_below_the_documented_tolerance(weight: float) -> None:
    w32 = float(np.float32(weight))
    stored = float(bodies.quantize_weights([weight])[0])
    assert stored <= w32
    assert (w32 - stored) / w32 < 2.0**-8
    assert float(bodies.quantize_weights([stored])[0]) == stored  # stored values are fixed points


def test_quantize_keeps_nine_significant_bits_exactly() -> None:
    exact = np.array([1.0, 1.5, 1.99609375, 0.75, 2.0**-20 * 1.5], dtype=np.float32)  # <= 9 significant bits
    np.testing.assert_array_equal(bodies.quantize_weights(exact), exact)
    assert bodies.quantize_weights([1.998046875])[0] == np.float32(1.99609375)  # the 10th bit is dropped


# -- documents ----------------------------------------------------------------------------------------
def test_document_source_escapes_and_keeps_title_text() -> None:
    doc = Document(doc_id="d1", title="T", text="body")
    source = bodies.build_document_source(doc, {"u.s.a": 1.5, "##ing": 0.25, "": 2.0})
    assert source == {
        "doc_id": "d1",
        "title": "T",
        "text": "body",
        "features": {"u%2Es%2Ea": 1.5, "##ing": 0.25, "%": 2.0},
    }
    assert bodies.parse_features(source["features"]) == {"u.s.a": 1.5, "##ing": 0.25, "": 2.0}


@pytest.mark.parametrize(
    ("weight", "fragment"),
    [
        (0.0, "weights > 0"),
        (-1.0, "weights > 0"),
        (math.nan, "weights > 0"),
        (math.inf, "weights > 0"),
        (1e-39, "storable range"),
        (1e39, "storable range"),
        (True, "non-numeric"),
        ("1.0", "non-numeric"),
    ],
)
def test_document_weights_engines_cannot_store_are_rejected_by_name(weight: object, fragment: str) -> None:
    doc = Document(doc_id="doc-7", text="x")
    with pytest.raises(ValueError, match=fragment) as info:
        bodies.build_document_source(doc, {"ok": 1.0, "bad.token": weight})  # type: ignore[dict-item]
    assert "doc-7" in str(info.value) and "bad.token" in str(info.value)


def test_bulk_actions_use_doc_id_as_id() -> None:
    docs = [Document("a", "x"), Document("b", "y")]
    actions = list(bodies.iter_bulk_actions("idx-v000001", docs, [{"t": 1.0}, {}]))
    assert [(a["_op_type"], a["_index"], a["_id"]) for a in actions] == [
        ("index", "idx-v000001", "a"),
        ("index", "idx-v000001", "b"),
    ]
    assert actions[1]["_source"]["features"] == {}  # an empty document is still indexed (and counted)
    with pytest.raises(ValueError):
        list(bodies.iter_bulk_actions("i", docs, [{"t": 1.0}]))


# -- queries ------------------------------------------------------------------------------------------
def test_query_is_a_bool_of_linear_rank_feature_clauses() -> None:
    body = bodies.build_query({"wing": 2.0, "u.s.a": 0.5, "stop": 0.0}, 10)
    assert body["size"] == 10 and body["_source"] is False
    assert body["sort"] == [{"_score": {"order": "desc"}}, {"doc_id": {"order": "asc"}}]
    assert body["query"] == {
        "bool": {
            "should": [
                {"rank_feature": {"field": "features.u%2Es%2Ea", "linear": {}, "boost": 0.5}},
                {"rank_feature": {"field": "features.wing", "linear": {}, "boost": 2.0}},
            ]
        }
    }


def test_sparse_vector_query_carries_the_same_weights_and_turns_pruning_off() -> None:
    # "prune": false explicitly: without it Elasticsearch 8.19+/9.1+ applies the field's default
    # pruning (index_options) and the scores stop being the dot product.
    body = bodies.build_query({"wing": 2.0, "u.s.a": 0.5}, 5, field_type="sparse_vector")
    assert body["query"] == {
        "sparse_vector": {"field": "features", "query_vector": {"u%2Es%2Ea": 0.5, "wing": 2.0}, "prune": False}
    }


def test_sparse_vector_query_with_pruning_sends_the_documented_pruning_config() -> None:
    # Shape of the Elasticsearch 8.19 / 9.x reference (query-dsl-sparse-vector-query): "prune": true
    # and a "pruning_config" object with the three documented keys.
    pruning = bodies.TokenPruning(tokens_freq_ratio_threshold=10, tokens_weight_threshold=0.2)
    body = bodies.build_query({"wing": 2.0}, 5, field_type="sparse_vector", pruning=pruning)
    assert body["query"] == {
        "sparse_vector": {
            "field": "features",
            "query_vector": {"wing": 2.0},
            "prune": True,
            "pruning_config": {
                "tokens_freq_ratio_threshold": 10.0,
                "tokens_weight_threshold": 0.2,
                "only_score_pruned_tokens": False,
            },
        }
    }
    assert bodies.TokenPruning().to_body() == {  # Elasticsearch's documented defaults
        "tokens_freq_ratio_threshold": 5.0,
        "tokens_weight_threshold": 0.4,
        "only_score_pruned_tokens": False,
    }
    rescore = bodies.TokenPruning(only_score_pruned_tokens=True).to_body()
    assert rescore["only_score_pruned_tokens"] is True
    assert json.loads(json.dumps(body)) == body  # plain JSON (floats, bools), nothing client-specific


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"tokens_freq_ratio_threshold": 0.5}, "between 1 and 100"),
        ({"tokens_freq_ratio_threshold": 101}, "between 1 and 100"),
        ({"tokens_weight_threshold": -0.1}, "between 0 and 1"),
        ({"tokens_weight_threshold": 1.5}, "between 0 and 1"),
        ({"tokens_weight_threshold": math.nan}, "between 0 and 1"),
    ],
)
def test_pruning_thresholds_outside_the_documented_ranges_are_refused(options: dict, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        bodies.TokenPruning(**options)


def test_pruning_needs_a_sparse_vector_index() -> None:
    with pytest.raises(UsageError, match="sparse_vector"):
        bodies.build_query({"wing": 1.0}, 5, pruning=bodies.TokenPruning())


@pytest.mark.parametrize(
    ("weights", "top_k", "fragment"),
    [
        ({"a": -1.0}, 10, "weights >= 0"),
        ({"a": math.nan}, 10, "weights >= 0"),
        ({}, 10, "no token"),
        ({"a": 0.0}, 10, "no token"),
        ({"a": 1.0}, 0, "top_k"),
    ],
)
def test_bad_queries_are_refused(weights: dict, top_k: int, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        bodies.build_query(weights, top_k)


def test_text_query_is_the_engines_bm25_over_title_and_text() -> None:
    body = bodies.build_text_query("hypersonic flow", 5)
    assert body["query"] == {"multi_match": {"query": "hypersonic flow", "fields": ["title", "text"]}}
    assert body["sort"] == bodies.build_query({"a": 1.0}, 5)["sort"] and "highlight" not in body
    highlighted = bodies.build_text_query("flow", 5, fields=["text"], highlight=True)
    assert highlighted["highlight"] == {"fields": {"text": {}}}
    for args, fragment in [(("  ", 5), "empty"), (("x", 0), "top_k")]:
        with pytest.raises(UsageError, match=fragment):
            bodies.build_text_query(*args)
    with pytest.raises(UsageError, match="text fields"):
        bodies.build_text_query("x", 5, fields=["features"])


def test_msearch_pairs_a_header_with_each_body() -> None:
    first, second = bodies.build_query({"a": 1.0}, 3), bodies.build_query({"b": 1.0}, 3)
    assert bodies.build_msearch("alias", [first, second]) == [{"index": "alias"}, first, {"index": "alias"}, second]


def test_parse_hits_refuses_partial_results() -> None:
    ok = {"_shards": {"failed": 0}, "hits": {"hits": [{"_id": "d1", "_score": 1.5}]}}
    assert bodies.parse_hits(ok) == [("d1", 1.5)]
    with pytest.raises(bodies.EngineError, match="1 shard"):
        bodies.parse_hits({"_shards": {"failed": 1, "failures": ["boom"]}, "hits": {"hits": []}})


# -- index body, names, versions ----------------------------------------------------------------------
def test_index_body_records_the_encoder_and_uses_rank_features() -> None:
    meta = bodies.build_meta(FINGERPRINT, extra={"job": {"corpus": "x"}})
    body = bodies.build_index_body(meta, shards=3, bulk_loading=True)
    assert body["settings"] == {
        "index": {"number_of_shards": 3, "auto_expand_replicas": "0-1", "refresh_interval": "-1"}
    }
    mappings = body["mappings"]
    assert mappings["dynamic"] == "strict"
    assert mappings["properties"]["features"] == {"type": "rank_features"}
    assert mappings["properties"]["doc_id"] == {"type": "keyword"}
    # searchable text for the engine's own BM25 / highlighting (never part of our scores)
    assert mappings["properties"]["title"] == mappings["properties"]["text"] == {"type": "text"}
    entry = mappings["_meta"]["sparsearch"]
    assert (
        entry["encoder"] == FINGERPRINT.to_dict() and entry["state"] == "building" and entry["job"] == {"corpus": "x"}
    )
    assert bodies.build_index_body(meta, replicas=2)["settings"]["index"] == {
        "number_of_shards": 1,
        "number_of_replicas": 2,
    }
    with pytest.raises(UsageError):
        bodies.build_index_body(meta, shards=0)
    with pytest.raises(UsageError, match="field type"):
        bodies.build_meta(FINGERPRINT, field_type="dense_vector")


@pytest.mark.parametrize(
    "name", ["", "Upper", "_hidden", "-x", ".x", "a b", "a*b", "a/b", "a:b", "a#b", "x" * 201, "cranfield-v000001"]
)
def test_bad_index_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="index name"):
        bodies.check_index_name(name)


def test_versions_belong_to_their_alias_only() -> None:
    assert bodies.version_name("cran", 3) == "cran-v000003"
    assert bodies.parse_version("cran", "cran-v000003") == 3
    assert bodies.parse_version("cran", "cran-x-v000003") is None  # a version of alias "cran-x"
    assert bodies.parse_version("cran", "cranfield-v000001") is None
    assert bodies.parse_version("cran", "cran-v3") is None


def test_alias_swap_is_one_request_removing_every_old_target() -> None:
    assert bodies.build_alias_swap("cran", "cran-v000003", ["cran-v000001", "cran-v000002"]) == {
        "actions": [
            {"remove": {"index": "cran-v000001", "alias": "cran"}},
            {"remove": {"index": "cran-v000002", "alias": "cran"}},
            {"add": {"index": "cran-v000003", "alias": "cran"}},
        ]
    }


def test_docstring_examples_run() -> None:
    import doctest

    results = doctest.testmod(bodies)
    assert results.attempted == 7 and results.failed == 0


def test_token_pruning_from_the_environment() -> None:
    from sparsearch.backends.engines.bodies import TokenPruning
    from sparsearch.backends.factory import TOKEN_PRUNING_ENV, token_pruning_from_env
    from sparsearch.errors import UsageError

    assert token_pruning_from_env({}) is None
    assert token_pruning_from_env({TOKEN_PRUNING_ENV: "off"}) is None
    assert token_pruning_from_env({TOKEN_PRUNING_ENV: "on"}) == TokenPruning()
    assert token_pruning_from_env({TOKEN_PRUNING_ENV: "8, 0.2"}) == TokenPruning(8, 0.2)
    for bad in ("yes please", "5", "500,0.4"):
        with pytest.raises(UsageError, match="SPARSEARCH_ES_TOKEN_PRUNING|between"):
            token_pruning_from_env({TOKEN_PRUNING_ENV: bad})


# -- dense vectors (hybrid search) ---------------------------------------------------------------------
def test_dense_windows_round_trip_through_the_source() -> None:
    import numpy as np

    from sparsearch.types import Document

    windows = np.random.default_rng(0).normal(size=(3, bodies.DENSE_DIM)).astype(np.float16)
    source = bodies.build_document_source(Document("a", "text"), {"t": 1.0}, windows)
    np.testing.assert_array_equal(bodies.decode_dense(source[bodies.DENSE_FIELD]), windows)
    assert bodies.decode_dense(bodies.encode_dense(np.zeros((0, bodies.DENSE_DIM)))).shape == (0, bodies.DENSE_DIM)
    assert bodies.DENSE_FIELD not in bodies.build_document_source(Document("a", "text"), {"t": 1.0})


def test_dense_values_are_checked() -> None:
    import numpy as np

    from sparsearch.errors import IndexFormatError

    with pytest.raises(ValueError, match="finite"):
        bodies.encode_dense(np.full((1, bodies.DENSE_DIM), np.nan))
    with pytest.raises(ValueError, match=r"\(n, 384\)"):
        bodies.encode_dense(np.zeros((1, 10)))
    with pytest.raises(IndexFormatError, match="not whole float16 rows"):
        bodies.decode_dense("AAAA")
    with pytest.raises(IndexFormatError, match="not base64"):
        bodies.decode_dense("***")


def test_a_dense_query_returns_the_dense_field_and_a_plain_one_nothing() -> None:
    assert bodies.build_query({"t": 1.0}, 5, with_dense=True)["_source"] == [bodies.DENSE_FIELD]
    assert bodies.build_query({"t": 1.0}, 5)["_source"] is False
    assert bodies.DENSE_FIELD not in bodies.build_index_body(bodies.build_meta(FINGERPRINT))["mappings"]["properties"]


def test_parse_dense_hits_refuses_a_hit_without_windows() -> None:
    from sparsearch.errors import IndexFormatError

    response = {"hits": {"hits": [{"_id": "a", "_score": 1.0, "_source": {}}]}}
    with pytest.raises(IndexFormatError, match="--dense"):
        bodies.parse_dense_hits(response)
