"""Search over real HTTP (uvicorn): results match the engine, explain adds up, bad input gets a 4xx."""

from __future__ import annotations

import json

import pytest

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.encoders.registry import load_encoder
from sparsearch.types import dot

QUERIES = [
    "lift of a wing in a propeller slipstream",
    "heat transfer in boundary layers at high speed",
    "buckling of cylindrical shells",
    "aeroelastic flutter of heated aircraft",
]


def assert_error(response, status: int, code: str, *fragments: str) -> dict:
    """The one error body, with the request id of the response header; no trace leaks."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "request_id", "details"}
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    for fragment in fragments:
        assert fragment in error["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return error


@pytest.mark.parametrize("index_name", ["tiny", "wp"])
@pytest.mark.parametrize("query", QUERIES)
def test_hits_are_the_engines_hits(http, live_server, index_name: str, query: str) -> None:
    handle = live_server.app.state.registry.get(index_name)
    index = EmbeddedIndex.open(handle.path)
    expected = index.search(load_encoder(index.encoder_dir).encode_query(query), 3)
    response = http.post("/v1/search", json={"query": query, "top_k": 3, "index": index_name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["index"] == index_name
    assert body["model"] == index.fingerprint.name
    assert body["took_ms"] > 0
    assert [(h["id"], h["score"]) for h in body["hits"]] == [(h.doc_id, pytest.approx(h.score)) for h in expected]
    stored = {d.doc_id: d for d in index.get_documents([h.doc_id for h in expected])}
    for hit in body["hits"]:
        assert hit["title"] == stored[hit["id"]].title
        assert stored[hit["id"]].text.startswith(hit["snippet"].rstrip("…"))
        assert "explain" not in hit


def test_default_index_is_the_first(http) -> None:
    body = http.post("/v1/search", json={"query": "buckling of cylindrical shells"}).json()
    assert body["index"] == "tiny" and body["hits"][0]["id"] == "d5"


@pytest.mark.parametrize("index_name", ["tiny", "wp"])
def test_explain_contributions_add_up_to_the_score(http, live_server, index_name: str) -> None:
    query = "heat transfer in boundary layers at high speed"
    response = http.post("/v1/search", json={"query": query, "top_k": 5, "index": index_name, "explain": True})
    assert response.status_code == 200, response.text
    index = EmbeddedIndex.open(live_server.app.state.registry.get(index_name).path)
    encoded = load_encoder(index.encoder_dir).encode_query(query)
    hits = response.json()["hits"]
    assert hits
    for hit in hits:
        matched = hit["explain"]["matched"]
        assert matched, hit
        assert sum(m["contribution"] for m in matched) == pytest.approx(hit["score"])
        assert hit["score"] == pytest.approx(dot(encoded.weights, index.document_vector(hit["id"])))
        document = index.document_vector(hit["id"])
        for m in matched:
            assert m["query_weight"] == pytest.approx(encoded.weights[m["token"]])
            assert m["document_weight"] == pytest.approx(document[m["token"]])
            assert m["contribution"] == pytest.approx(m["query_weight"] * m["document_weight"])
        contributions = [m["contribution"] for m in matched]
        assert contributions == sorted(contributions, reverse=True)
        # every highlight marks a word of the title/snippet that produced one of the matched tokens
        tokens = {m["token"] for m in matched}
        for span in hit["explain"]["highlights"]:
            text = hit[span["field"]]
            assert text[span["start"] : span["end"]].isalnum() or "_" in text[span["start"] : span["end"]]
            assert set(span["tokens"]) <= tokens


def test_explain_highlights_the_query_words(http) -> None:
    hit = http.post("/v1/search", json={"query": "propeller slipstream", "top_k": 1, "explain": True}).json()["hits"][0]
    title_words = {
        hit["title"][s["start"] : s["end"]].lower() for s in hit["explain"]["highlights"] if s["field"] == "title"
    }
    snippet_words = {
        hit["snippet"][s["start"] : s["end"]].lower() for s in hit["explain"]["highlights"] if s["field"] == "snippet"
    }
    assert hit["id"] == "d1"
    assert title_words == {"slipstream"}
    assert snippet_words == {"propeller", "slipstream"}


def test_wordpiece_highlights_whole_words(http) -> None:
    hit = http.post("/v1/search", json={"query": "aeroelastic", "top_k": 1, "index": "wp", "explain": True}).json()[
        "hits"
    ][0]
    words = {hit["snippet"][s["start"] : s["end"]] for s in hit["explain"]["highlights"] if s["field"] == "snippet"}
    assert hit["id"] == "d4" and words == {"Aeroelastic"}
    assert {m["token"] for m in hit["explain"]["matched"]} >= {"aero"}


def test_batch_answers_like_single_searches(http) -> None:
    response = http.post("/v1/search/batch", json={"queries": QUERIES + ["the of a"], "top_k": 2})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["query"] for r in results] == QUERIES + ["the of a"]
    for result in results[:-1]:
        single = http.post("/v1/search", json={"query": result["query"], "top_k": 2}).json()
        assert result["hits"] == single["hits"]
    assert results[-1]["hits"] == []  # only stop words: nothing to match


def test_an_integral_float_is_an_integer(http) -> None:
    response = http.post("/v1/search", json={"query": "wing", "top_k": 2.0})
    assert response.status_code == 200 and len(response.json()["hits"]) == 2


def test_stop_word_query_has_no_hits(http) -> None:
    response = http.post("/v1/search", json={"query": "the of and"})
    assert response.status_code == 200 and response.json()["hits"] == []


def test_top_k_larger_than_the_corpus(http) -> None:
    hits = http.post("/v1/search", json={"query": "wing speed heat shells", "top_k": 1000}).json()["hits"]
    assert 0 < len(hits) <= 8
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"query": ""}, "body.query"),
        ({"query": "   \t\n"}, "empty or only whitespace"),
        ({"query": "wing", "top_k": 0}, "body.top_k"),
        ({"query": "wing", "top_k": 1001}, "less than or equal to 1000"),
        ({"query": "wing", "top_k": "10"}, "must be a JSON integer"),
        ({"query": "wing", "top_k": True}, "must be a JSON integer"),
        ({"query": "wing", "top_k": 2.5}, "body.top_k"),
        ({"query": "\u2003\u3000\ufeff\t"}, "empty or only whitespace"),
        ({"query": "wing", "topk": 3}, "body.topk"),
        ({"query": 42}, "body.query"),
        ({"query": "w" * 2049}, "body.query"),
        ({}, "body.query"),
        ({"queries": ["wing"]}, "body.queries"),
    ],
)
def test_invalid_search_requests_say_what_to_fix(http, body: dict, fragment: str) -> None:
    error = assert_error(http.post("/v1/search", json=body), 422, "invalid_request", fragment)
    assert error["details"] and all(set(d) == {"loc", "message", "type"} for d in error["details"])


@pytest.mark.parametrize(
    "body",
    [{"queries": []}, {"queries": ["wing", " "]}, {"queries": ["wing"] * 101}, {"queries": "wing"}],
)
def test_invalid_batch_requests(http, body: dict) -> None:
    assert_error(http.post("/v1/search/batch", json=body), 422, "invalid_request", "body.queries")


def test_unknown_index_lists_the_served_ones(http) -> None:
    assert_error(http.post("/v1/search", json={"query": "wing", "index": "nope"}), 404, "unknown_index", "tiny, wp")


@pytest.mark.parametrize(
    ("content", "code", "fragment"),
    [
        (b'{"query": "wing"', "malformed_json", "not valid JSON"),
        (b'{"query": "wing\xff"}', "unsupported_media_type", "not UTF-8"),
        (b'["wing"]', "invalid_request", "not a JSON object"),
        (b'{"query": "\\ud800"}', "invalid_request", "body.query"),
    ],
)
def test_malformed_bodies(http, content: bytes, code: str, fragment: str) -> None:
    response = http.post("/v1/search", content=content, headers={"Content-Type": "application/json"})
    assert_error(response, {"malformed_json": 400, "unsupported_media_type": 415}.get(code, 422), code, fragment)


def test_form_body_is_refused_with_the_expected_format(http) -> None:
    response = http.post("/v1/search", data={"query": "wing"})
    assert_error(response, 422, "invalid_request", "Content-Type: application/json")


def test_oversized_body_is_refused_before_reading(http) -> None:
    body = json.dumps({"query": "wing " * 1_000_000}).encode()
    assert_error(http.post("/v1/search", content=body), 413, "payload_too_large", "4194304 bytes")


def test_oversized_chunked_body_is_cut_off(http) -> None:
    def chunks():
        yield b'{"query": "'
        for _ in range(1000):
            yield b"wing " * 1000
        yield b'"}'

    response = http.post("/v1/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large", "more than 4194304 bytes")


def test_unknown_route_and_method(http) -> None:
    assert_error(http.get("/v1/nothing"), 404, "not_found", "/docs")
    assert_error(http.get("/v1/search"), 405, "method_not_allowed", "GET")


def test_request_id_is_echoed_when_safe_and_made_up_otherwise(http) -> None:
    mine = http.get("/health", headers={"X-Request-ID": "client-42.a_b"})
    assert mine.headers["x-request-id"] == "client-42.a_b"
    unsafe = http.get("/health", headers={"X-Request-ID": "x" * 65})
    assert len(unsafe.headers["x-request-id"]) == 32 and unsafe.headers["x-request-id"] != "x" * 65
    first, second = http.get("/health"), http.get("/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_openapi_documents_bounds_and_examples(http) -> None:
    schema = http.get("/openapi.json").json()
    request = schema["components"]["schemas"]["SearchRequest"]
    assert request["properties"]["top_k"]["maximum"] == 1000 and request["properties"]["top_k"]["minimum"] == 1
    assert request["properties"]["top_k"]["default"] == 10
    assert request["additionalProperties"] is False
    assert request["examples"][0]["query"] == "hypersonic heat transfer"
    search = schema["paths"]["/v1/search"]["post"]
    for status in ("400", "404", "413", "422", "503"):
        assert search["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert "/v1/indexes/{name}/documents/{doc_id}" in schema["paths"]
    assert http.get("/docs").status_code == 200
