"""Hostile input: bounded metrics labels, no reflected Host, and the one JSON error body for every error."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from sparsearch.api.metrics import method_label
from sparsearch.api.middleware import host_allowed, host_name
from tests.api.conftest import app_client, make_settings
from tests.api.test_search import assert_error

SEARCH = {"query": "wing", "top_k": 2}


def request_lines(metrics: str) -> list[str]:
    return [line for line in metrics.splitlines() if line.startswith("sparsearch_http_requests_total{")]


# -- metrics labels --------------------------------------------------------------------------------------
def test_made_up_methods_and_paths_share_one_label(client) -> None:
    before = client.get("/metrics").text
    methods = [f"X{uuid.uuid4().hex.upper()}{'A' * 8_000}" for _ in range(50)]
    paths = [f"/v1/{uuid.uuid4().hex}" for _ in range(50)]
    for method in methods:
        assert_error(client.request(method, "/v1/search"), 405, "method_not_allowed", method[:20] + "...")
    for path in paths:
        assert_error(client.get(path), 404, "not_found")
    after = client.get("/metrics").text
    assert not any(method[:33] in after for method in methods)
    assert not any(path in after for path in paths)
    assert 'sparsearch_http_requests_total{method="other",route="/v1/search",status="405"} 50.0' in after
    assert 'sparsearch_http_requests_total{method="GET",route="unmatched",status="404"} 50.0' in after
    # 100 hostile requests added two label sets (and /metrics' own), not 100
    new = set(request_lines(after)) - set(request_lines(before))
    assert len({line.split("}")[0] for line in new}) <= 3


def test_refused_requests_are_labelled_the_same_way(tiny_bm25_index: Path) -> None:
    """Even a 401 (answered before routing) never labels the client's method or path."""
    with app_client(make_settings(f"tiny={tiny_bm25_index}", api_keys=["key-123456"])) as client:
        for _ in range(20):
            assert_error(client.request("Y" * 8_000 + uuid.uuid4().hex, f"/{uuid.uuid4().hex}"), 401, "unauthorized")
        metrics = client.get("/metrics", headers={"X-API-Key": "key-123456"}).text
    assert 'sparsearch_http_requests_total{method="other",route="unmatched",status="401"} 20.0' in metrics
    assert "YYYY" not in metrics


@pytest.mark.parametrize(
    ("method", "label"), [("GET", "GET"), ("PATCH", "PATCH"), ("get", "other"), ("FOO", "other"), ("", "other")]
)
def test_method_labels(method: str, label: str) -> None:
    assert method_label(method) == label


# -- hosts -----------------------------------------------------------------------------------------------
def test_a_trailing_slash_is_a_404_not_a_redirect_to_the_clients_host(client) -> None:
    for method, path in (("POST", "/v1/search/"), ("GET", "/v1/indexes/"), ("GET", "/static")):
        response = client.request(method, path, json=SEARCH, headers={"Host": "evil.example"}, follow_redirects=False)
        assert_error(response, 404, "not_found")
        assert "location" not in response.headers
        assert "evil.example" not in response.text and "evil.example" not in str(response.headers)


def test_any_host_is_served_by_default(client) -> None:
    assert client.post("/v1/search", json=SEARCH, headers={"Host": "anything.example"}).status_code == 200


def test_trusted_hosts(tiny_bm25_index: Path) -> None:
    settings = make_settings(f"tiny={tiny_bm25_index}", trusted_hosts=["search.example.com", "*.internal"])
    with app_client(settings) as client:
        for host in ("search.example.com", "search.example.com:8000", "a.b.internal", "SEARCH.example.com"):
            response = client.post("/v1/search", json=SEARCH, headers={"Host": host})
            assert response.status_code == 200, (host, response.text)
        for host in ("evil.example", "example.com", "internal", "search.example.com.evil", ""):
            response = client.post("/v1/search", json=SEARCH, headers={"Host": host})
            error = assert_error(response, 400, "untrusted_host", "SPARSEARCH_TRUSTED_HOSTS")
            assert host not in error["message"] or not host
        assert client.get("/health", headers={"Host": "10.0.0.7:8000"}).status_code == 200  # probes by address


@pytest.mark.parametrize(
    ("header", "host"),
    [("example.com", "example.com"), ("Example.com:80", "example.com"), ("[::1]:8000", "[::1]"), ("", "")],
)
def test_host_names(header: str, host: str) -> None:
    assert host_name(header) == host


def test_host_patterns() -> None:
    assert host_allowed("a.example.com", ["*.example.com"]) and not host_allowed("example.com", ["*.example.com"])
    assert host_allowed("whatever", ["*"]) and not host_allowed("whatever", ["other"])


@pytest.mark.parametrize("hosts", [["bad host"], ["*example.com"], ["a.*.com"], []])
def test_invalid_trusted_hosts_say_what_to_fix(hosts: list[str]) -> None:
    import pydantic

    with pytest.raises(pydantic.ValidationError, match="trusted_hosts"):
        make_settings("tiny=unused", trusted_hosts=hosts)


def test_trusted_hosts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsearch.api import Settings

    monkeypatch.setenv("SPARSEARCH_INDEXES", "tiny=unused")
    monkeypatch.setenv("SPARSEARCH_TRUSTED_HOSTS", "search.example.com,*.internal")
    assert Settings().trusted_hosts == ["search.example.com", "*.internal"]


# -- one JSON error body ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (json.dumps(SEARCH).encode("utf-16"), "NUL byte"),
        (json.dumps(SEARCH).encode("utf-16-le"), "NUL byte"),  # no BOM: JSON decoders would guess UTF-16
        (json.dumps(SEARCH).encode("utf-32"), "NUL byte"),
        (json.dumps(SEARCH).encode("utf-16-be"), "NUL byte"),
        ('{"query": "café"}'.encode("latin-1"), "invalid byte at byte 14"),
        ('{"query": "wing"}'.encode("cp1252") + b"\x93", "invalid byte at byte 17"),
    ],
)
def test_bodies_that_are_not_utf8_are_refused(http, content: bytes, reason: str) -> None:
    response = http.post("/v1/search", content=content, headers={"Content-Type": "application/json"})
    assert_error(response, 415, "unsupported_media_type", "not UTF-8", reason, "send JSON encoded as UTF-8")


def test_a_declared_charset_other_than_utf8_is_refused(http) -> None:
    for charset in ("utf-16", "latin-1", '"iso-8859-1"'):
        response = http.post(
            "/v1/search", content=b'{"query": "wing"}', headers={"Content-Type": f"application/json; charset={charset}"}
        )
        assert_error(response, 415, "unsupported_media_type", "charset=", "UTF-8")
    for charset in ("utf-8", "UTF-8", '"utf-8"'):
        response = http.post(
            "/v1/search", content=b'{"query": "wing"}', headers={"Content-Type": f"application/json; charset={charset}"}
        )
        assert response.status_code == 200, response.text


def test_utf8_split_across_chunks_and_a_utf8_bom_are_accepted(http) -> None:
    encoded = '{"query": "wing über"}'.encode()
    split = encoded.index("ü".encode()) + 1  # between the two bytes of ü

    def chunks():
        yield encoded[:split]
        yield encoded[split:]

    response = http.post("/v1/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    bom = http.post("/v1/search", content=b"\xef\xbb\xbf" + encoded, headers={"Content-Type": "application/json"})
    assert bom.status_code == 200, bom.text


def test_deep_nesting_says_so(http) -> None:
    body = b'{"query": "wing", "top_k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = http.post("/v1/search", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "malformed_json", "nests arrays or objects deeper", "at most 3 levels")
    shallow = b'{"query": "wing", "top_k": [[[[1]]]]}'  # parsed fine, then refused as a field error
    response = http.post("/v1/search", content=shallow, headers={"Content-Type": "application/json"})
    assert_error(response, 422, "invalid_request", "body.top_k")


def test_huge_integers_say_so(http) -> None:
    body = b'{"query": "wing", "top_k": ' + b"9" * 5_000 + b"}"
    response = http.post("/v1/search", content=body, headers={"Content-Type": "application/json"})
    error = assert_error(response, 400, "malformed_json", "more than 4300 digits", "top_k is at most 1000")
    assert "set_int_max_str_digits" not in error["message"]  # Python's advice is for the operator, not clients
    big = b'{"query": "wing", "top_k": ' + b"9" * 50 + b"}"
    response = http.post("/v1/search", content=big, headers={"Content-Type": "application/json"})
    assert_error(response, 422, "invalid_request", "less than or equal to 1000")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/v1/search", {"content": b"{", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/v1/search", {"content": b"query=wing", "headers": {"Content-Type": "text/plain"}}, 422),
        ("POST", "/v1/search", {"data": {"query": "wing"}}, 422),
        ("PUT", "/v1/search", {}, 405),
        ("OPTIONS", "/v1/search", {}, 405),
        ("POST", "/static/app.js", {}, 405),
        ("GET", "/static/", {}, 404),
        ("GET", "/static/../../etc/passwd", {}, 404),
        ("GET", "/v1/search/", {}, 404),
        ("DELETE", "/v1/indexes/tiny/documents/" + "x" * 300, {}, 422),
    ],
)
def test_every_error_is_the_json_body(client, method: str, path: str, kwargs: dict, status: int) -> None:
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert_error(response, status, response.json()["error"]["code"])


def test_a_head_request_answers_with_headers_only(client) -> None:
    response = client.head("/v1/search")
    assert response.status_code == 405 and response.headers["content-type"] == "application/json"
    assert not re.search(r"\S", response.text)
