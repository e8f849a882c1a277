"""Operations: health, readiness, metrics, outages and recovery, API keys, settings, the last resort."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sparsearch.api import Settings
from tests.api.conftest import app_client, make_settings
from tests.api.test_search import assert_error


def test_health_touches_nothing(client, tiny_bm25_index: Path) -> None:
    tiny_bm25_index.rename(tiny_bm25_index.with_name("gone"))
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_ready_reports_model_and_engine(client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    tiny = response.json()["indexes"]["tiny"]
    assert tiny["model"] == "bm25"
    assert tiny["engine"]["engine"] == "embedded" and tiny["engine"]["documents"] == 8


def test_a_missing_index_gives_503_and_the_service_recovers(client, tiny_bm25_index: Path) -> None:
    moved = tiny_bm25_index.with_name("elsewhere")
    tiny_bm25_index.rename(moved)
    error = assert_error(client.post("/v1/search", json={"query": "wing"}), 503, "engine_unavailable", "'tiny'")
    assert "retry" in error["message"]
    assert client.post("/v1/search", json={"query": "wing"}).headers["retry-after"] == "5"
    not_ready = assert_error(client.get("/ready"), 503, "not_ready", "tiny")
    assert not_ready["details"][0]["loc"] == ["indexes", "tiny"]
    assert_error(client.get("/v1/indexes/tiny"), 503, "engine_unavailable")
    moved.rename(tiny_bm25_index)
    assert client.post("/v1/search", json={"query": "wing"}).status_code == 200
    assert client.get("/ready").status_code == 200
    assert 'sparsearch_engine_unavailable_total{index="tiny"} 3.0' in client.get("/metrics").text


def test_metrics_count_requests_by_route_template(client) -> None:
    for _ in range(3):
        client.post("/v1/search", json={"query": "wing"})
    client.post("/v1/search", json={"query": ""})
    client.get("/v1/indexes/tiny")
    client.get("/no/such/route")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text

    def value(pattern: str) -> float:
        match = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
        assert match, pattern
        return float(match.group(1))

    assert value(r'sparsearch_http_requests_total\{method="POST",route="/v1/search",status="200"\}') == 3
    assert value(r'sparsearch_http_requests_total\{method="POST",route="/v1/search",status="422"\}') == 1
    assert value(r'sparsearch_http_requests_total\{method="GET",route="/v1/indexes/\{name\}",status="200"\}') == 1
    assert value(r'sparsearch_http_requests_total\{method="GET",route="unmatched",status="404"\}') == 1
    assert value(r'sparsearch_http_request_duration_seconds_count\{method="POST",route="/v1/search"\}') == 4
    assert value(r'sparsearch_search_queries_total\{index="tiny"\}') == 3
    assert value(r'sparsearch_search_stage_seconds_count\{index="tiny",stage="encode"\}') == 3


def test_unexpected_errors_are_a_500_without_a_trace(client, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from sparsearch.api import service

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(service, "search", broken)
    response = client.post("/v1/search", json={"query": "wing"})
    error = assert_error(response, 500, "internal_error", response.headers["x-request-id"])
    assert "secret" not in response.text
    assert "secret internal detail" in caplog.text  # logged for the operator, with the request id
    assert error["request_id"] in caplog.text
    assert 'sparsearch_http_unhandled_exceptions_total{type="RuntimeError"} 1.0' in client.get("/metrics").text


# -- API keys ------------------------------------------------------------------------------------------------
KEYS = ["first-key-123", "second-key-456"]


@pytest.fixture
def secured(tiny_bm25_index: Path):
    with app_client(make_settings(f"tiny={tiny_bm25_index}", api_keys=KEYS)) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/search"),
        ("POST", "/v1/search/batch"),
        ("GET", "/v1/indexes"),
        ("GET", "/v1/indexes/tiny"),
        ("POST", "/v1/indexes/tiny/documents"),
        ("DELETE", "/v1/indexes/tiny/documents/d1"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/v1/unknown"),
    ],
)
def test_every_route_but_health_needs_a_key(secured, method: str, path: str) -> None:
    assert_error(secured.request(method, path), 401, "unauthorized", "X-API-Key")
    assert_error(secured.request(method, path, headers={"X-API-Key": "wrong-key-000"}), 401, "unauthorized")
    assert_error(secured.request(method, path, headers={"X-API-Key": KEYS[0][:-1]}), 401, "unauthorized")


def test_a_valid_key_opens_every_route(secured) -> None:
    for key in KEYS:
        response = secured.post("/v1/search", json={"query": "wing"}, headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
    assert secured.get("/ready", headers={"X-API-Key": KEYS[1]}).status_code == 200
    assert secured.delete("/v1/indexes/tiny/documents/d1", headers={"X-API-Key": KEYS[0]}).status_code == 200


def test_health_and_the_page_shell_are_public(secured) -> None:
    assert secured.get("/health").status_code == 200
    assert secured.get("/").status_code == 200
    assert secured.get("/static/app.js").status_code == 200


def test_the_schema_declares_the_key(secured) -> None:
    schema = secured.get("/openapi.json", headers={"X-API-Key": KEYS[0]}).json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schema["paths"]["/v1/search"]["post"]["security"] == [{"apiKey": []}]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch, secured) -> None:
    import hmac

    from sparsearch.api import middleware

    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def recording_compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(middleware.hmac, "compare_digest", recording_compare)
    secured.get("/ready", headers={"X-API-Key": KEYS[0]})
    assert len(compared) == len(KEYS)  # every key is compared, even after a match


# -- settings ---------------------------------------------------------------------------------------------
def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARSEARCH_INDEXES", "indexes/cranfield, wp=indexes/cran-wp")
    monkeypatch.setenv("SPARSEARCH_API_KEYS", json.dumps(KEYS))
    monkeypatch.setenv("SPARSEARCH_PORT", "9000")
    monkeypatch.setenv("SPARSEARCH_CACHE", "/somewhere")  # another tool's variable: ignored
    settings = Settings()
    assert [(s.name, s.location) for s in settings.index_specs()] == [
        ("cranfield", "indexes/cranfield"),
        ("wp", "indexes/cran-wp"),
    ]
    assert settings.default_index == "cranfield" and settings.port == 9000
    assert [key.get_secret_value() for key in settings.api_keys] == KEYS
    assert KEYS[0] not in repr(settings)
    assert Settings(port=1234).port == 1234  # arguments override the environment
    # what `serve --workers N` hands to its worker processes reads back to the same settings
    environment = settings.to_environment()
    assert environment["SPARSEARCH_API_KEYS"] == json.dumps(KEYS)
    for name in ("SPARSEARCH_INDEXES", "SPARSEARCH_API_KEYS", "SPARSEARCH_PORT"):
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"indexes": []}, "no index to serve"),
        ({"indexes": ["a/x", "b/x"]}, "index name(s) x given twice"),
        ({"indexes": ["bad name=dir"]}, "not allowed"),
        ({"indexes": ["x"], "backend": "opensearch"}, "needs --url"),
        ({"indexes": ["x"], "engine_url": "http://localhost:9200"}, "only for --backend"),
        ({"indexes": ["x"], "api_keys": ["short"]}, "at least 8"),
        ({"indexes": ["x"], "api_key_header": "X Key"}, "not a valid HTTP header"),
        ({"indexes": ["x"], "max_body_bytes": 10}, "max_body_bytes"),
    ],
)
def test_invalid_settings_say_what_to_fix(kwargs: dict, fragment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pydantic

    monkeypatch.delenv("SPARSEARCH_INDEXES", raising=False)
    with pytest.raises(pydantic.ValidationError, match=re.escape(fragment)):
        Settings(**kwargs)
