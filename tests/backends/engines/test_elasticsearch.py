"""The Elasticsearch backend's client wiring, without an Elasticsearch server.

No Elasticsearch can run on the development machine, and a fake server would only echo our own
assumptions. These tests use the real elasticsearch-py client and stop each request at the wire:
the transport records the request the client built (method, path, headers, body) and raises, so
nothing is answered on Elasticsearch's behalf. The bodies are the shared pure builders, which the
OpenSearch tests run against a real engine; the version rules are pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sparsearch.backends.engines import bodies
from sparsearch.backends.engines.elasticsearch import ElasticsearchBackend, check_elasticsearch_server
from sparsearch.errors import UsageError
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint

FINGERPRINT = EncoderFingerprint("bm25", "vocab", "idf")
URL = "https://elastic:s3cret@es.example:9243"


class _AtTheWire(Exception):
    """Raised by the recording transport instead of sending the request."""


@pytest.fixture
def wired() -> Iterator[tuple[ElasticsearchBackend, list[dict[str, Any]]]]:
    backend = ElasticsearchBackend.connect(URL, "cranfield")
    sent: list[dict[str, Any]] = []

    def record(method: str, target: str, **kwargs: Any) -> None:
        sent.append({"method": method, "target": target, **kwargs})
        raise _AtTheWire

    backend.client.transport.perform_request = record  # every client.options() copy shares this transport
    backend._meta = {"encoder": FINGERPRINT.to_dict(), "field_type": "rank_features"}  # skip the mapping read
    backend._server_info = {"version": {"number": "9.1.0"}}  # and the version check (tested below)
    yield backend, sent
    backend.close()


def test_the_real_client_is_configured_from_the_url() -> None:
    backend = ElasticsearchBackend.connect(URL, "cranfield")
    node = backend.client.transport.node_pool.all()[0].config
    assert (node.scheme, node.host, node.port) == ("https", "es.example", 9243)
    assert node.http_compress and node.verify_certs and node.connections_per_node == 16
    assert backend.url == "https://es.example:9243"  # credentials never appear in messages
    assert backend.client._headers["authorization"] == "Basic ZWxhc3RpYzpzM2NyZXQ="  # elastic:s3cret
    assert (backend.client._request_timeout, backend.client._max_retries) == (60.0, 2)
    with pytest.raises(UsageError, match="not an http"):
        ElasticsearchBackend.connect("es.example:9200", "cranfield")


def test_search_sends_the_shared_query_body(wired) -> None:
    backend, sent = wired
    query = EncodedQuery({"wing": 1.5, "u.s.a": 0.5}, FINGERPRINT)
    with pytest.raises(_AtTheWire):
        backend.search(query, top_k=7)
    (request,) = sent
    assert (request["method"], request["target"]) == ("POST", "/cranfield/_search")
    assert request["body"] == bodies.build_query(query.weights, 7)
    assert "compatible-with=" in request["headers"]["Accept"]


def test_sparse_vector_search_turns_pruning_off_unless_asked(wired) -> None:
    backend, sent = wired
    backend._meta = {"encoder": FINGERPRINT.to_dict(), "field_type": "sparse_vector"}
    query = EncodedQuery({"wing": 1.5}, FINGERPRINT)
    with pytest.raises(_AtTheWire):
        backend.search(query, top_k=3)
    assert sent[-1]["body"]["query"]["sparse_vector"]["prune"] is False
    backend.pruning = bodies.TokenPruning(tokens_weight_threshold=0.3)
    with pytest.raises(_AtTheWire):
        backend.search(query, top_k=3)
    sparse = sent[-1]["body"]["query"]["sparse_vector"]
    assert sparse["prune"] is True and sparse["pruning_config"]["tokens_weight_threshold"] == 0.3


def test_pruning_is_a_connect_option() -> None:
    pruning = bodies.TokenPruning()
    backend = ElasticsearchBackend.connect(URL, "cranfield", pruning=pruning)
    assert backend.pruning is pruning
    assert ElasticsearchBackend.connect(URL, "cranfield").pruning is None


def test_batch_search_sends_one_msearch(wired) -> None:
    backend, sent = wired
    queries = [
        EncodedQuery({"a": 1.0}, FINGERPRINT),
        EncodedQuery({}, FINGERPRINT),
        EncodedQuery({"b": 2.0}, FINGERPRINT),
    ]
    with pytest.raises(_AtTheWire):
        backend.search_batch(queries, top_k=3)
    (request,) = sent
    assert (request["method"], request["target"]) == ("POST", "/_msearch")
    expected = bodies.build_msearch("cranfield", [bodies.build_query({"a": 1.0}, 3), bodies.build_query({"b": 2.0}, 3)])
    assert request["body"] == expected


@pytest.mark.parametrize(
    ("call", "method", "target", "body"),
    [
        (lambda b: b.count(), "POST", "/cranfield/_count", None),
        (lambda b: b.count("cranfield-v000002"), "POST", "/cranfield-v000002/_count", None),
        (
            lambda b: b.get_documents(["d1"]),
            "POST",
            "/cranfield/_mget",
            {"docs": [{"_id": "d1", "_source": ["doc_id", "title", "text"]}]},
        ),
        (lambda b: b.live_indexes(), "HEAD", "/_alias/cranfield", None),
        (lambda b: b.versions(), "GET", "/cranfield-v*/_mapping", None),
        (lambda b: b.refresh("cranfield-v000001"), "POST", "/cranfield-v000001/_refresh", None),
        (lambda b: b.delete_index("cranfield-v000001"), "DELETE", "/cranfield-v000001?ignore_unavailable=true", None),
        (
            lambda b: b.write_meta("cranfield-v000001", {"state": "complete"}),
            "PUT",
            "/cranfield-v000001/_mapping",
            {"_meta": {"sparsearch": {"state": "complete"}}},
        ),
        (lambda b: ElasticsearchBackend(b.client, "cranfield").server_info(), "GET", "/", None),
    ],
)
def test_each_operation_builds_the_documented_request(wired, call, method, target, body) -> None:
    backend, sent = wired
    with pytest.raises(_AtTheWire):
        call(backend)
    assert (sent[0]["method"], sent[0]["target"]) == (method, target)
    assert sent[0].get("body") == body


def test_a_new_version_is_created_with_the_shared_index_body(wired) -> None:
    backend, sent = wired
    with pytest.raises(_AtTheWire):
        backend.create_version("cranfield-v000001", FINGERPRINT, shards=2, job={"corpus": "c"})
    (request,) = sent
    assert (request["method"], request["target"]) == ("PUT", "/cranfield-v000001")
    expected = bodies.build_index_body(
        bodies.build_meta(FINGERPRINT, extra={"job": {"corpus": "c"}}), shards=2, bulk_loading=True
    )
    meta = request["body"]["mappings"]["_meta"]["sparsearch"]
    meta.pop("updated_at"), expected["mappings"]["_meta"]["sparsearch"].pop("updated_at")
    assert request["body"] == expected


def test_bulk_goes_through_the_clients_parallel_bulk_helper(wired) -> None:
    backend, sent = wired
    documents = [Document("d1", "text one", "T1"), Document("d2", "text two")]
    actions = list(bodies.iter_bulk_actions("cranfield-v000001", documents, [{"u.s.a": 1.0}, {"x": 2.0}]))
    with pytest.raises(_AtTheWire):
        list(backend.parallel_bulk(actions, threads=1, chunk_size=10))
    (request,) = sent
    assert request["target"] == "/_bulk" and request["method"] in {"POST", "PUT"}
    assert "x-ndjson" in request["headers"]["Content-Type"]
    lines = [json.loads(line) for line in request["body"]]
    assert lines == [
        {"index": {"_id": "d1", "_index": "cranfield-v000001"}},
        actions[0]["_source"],
        {"index": {"_id": "d2", "_index": "cranfield-v000001"}},
        actions[1]["_source"],
    ]


def test_connection_errors_are_what_bulk_load_retries() -> None:
    import elasticsearch

    backend = ElasticsearchBackend.connect("http://127.0.0.1:9", "cranfield")
    assert elasticsearch.ConnectionError in backend.unavailable_errors
    assert backend.api_error is elasticsearch.ApiError


# -- version rules --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("server", "client", "field_type", "fragment"),
    [
        ("9.1.0", "9.0.0", "rank_features", None),
        ("9.1.0", "8.15.0", "rank_features", None),  # older clients talk to newer servers
        ("8.17.0", "8.13.0", "sparse_vector", None),
        ("8.15.0", "9.1.0", "rank_features", "pip install 'elasticsearch>=8,<9'"),
        ("8.12.2", "8.13.0", "sparse_vector", "8.15"),
        ("7.17.0", "8.13.0", "rank_features", "8.x and 9.x"),
    ],
)
def test_version_rules(server: str, client: str, field_type: str, fragment: str | None) -> None:
    info = {"version": {"number": server, "build_flavor": "default"}}
    if fragment is None:
        check_elasticsearch_server(info, client, field_type=field_type)
    else:
        with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace("*", r"\*")):
            check_elasticsearch_server(info, client, field_type=field_type)


def test_an_opensearch_is_told_apart() -> None:
    with pytest.raises(UsageError, match="--backend opensearch"):
        check_elasticsearch_server({"version": {"number": "3.1.0", "distribution": "opensearch"}}, "9.0.0")


def test_the_real_client_against_a_real_opensearch_says_to_use_the_opensearch_backend(opensearch_url: str) -> None:
    backend = ElasticsearchBackend.connect(opensearch_url, "anything")
    with pytest.raises(UsageError, match="use --backend opensearch"):
        backend.search(EncodedQuery({"a": 1.0}, FINGERPRINT))
    with pytest.raises(UsageError, match="use --backend opensearch"):
        ElasticsearchBackend.connect(opensearch_url, "anything").health()
