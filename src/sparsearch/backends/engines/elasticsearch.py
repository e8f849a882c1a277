"""The Elasticsearch backend (official ``elasticsearch`` client; Elasticsearch 8.x and 9.x servers).

**Not tested against a running Elasticsearch** (none can run on the development machine): it sends
the same bodies as the OpenSearch backend (:mod:`sparsearch.backends.engines.bodies`, tested against a
real OpenSearch), through the shared code of :mod:`sparsearch.backends.engines.client`. Its tests
check the real client's construction, the exact HTTP requests the real client builds for each
operation, and the version rules below.

Version rules:

* elasticsearch-py N talks to Elasticsearch N.x (it sends ``compatible-with=N`` headers, which
  older servers refuse): install ``elasticsearch>=8.13,<9`` for an 8.x server.
* ``--field-type sparse_vector`` needs Elasticsearch 8.15+ (the ``sparse_vector`` query); the
  default ``rank_features`` works on every supported version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sparsearch.backends.engines.client import POOL_SIZE, SearchEngineBackend
from sparsearch.errors import SparsearchError, UsageError, require

SUPPORTED_MAJORS = (8, 9)
SPARSE_VECTOR_QUERY_SINCE = (8, 15)


def parse_version(number: str) -> tuple[int, int]:
    """``"8.15.3"`` -> ``(8, 15)`` (unparseable parts count as 0)."""
    parts = [int(p) if p.isdigit() else 0 for p in (number.split("-")[0].split(".") + ["0", "0"])[:2]]
    return parts[0], parts[1]


def check_elasticsearch_server(
    info: Mapping[str, Any], client_version: str, url: str = "the server", field_type: str = "rank_features"
) -> None:
    """Raise :class:`UsageError` unless ``GET /`` describes an Elasticsearch this client can use.

    Args:
        info: JSON of ``GET /`` (``version.number``, and ``version.distribution`` on OpenSearch).
        client_version: the installed elasticsearch-py version, e.g. ``"9.1.0"``.
        field_type: ``rank_features`` or ``sparse_vector`` (the latter needs 8.15+).
    """
    version = info.get("version") or {}
    number = str(version.get("number", "?"))
    if version.get("distribution") == "opensearch":
        raise UsageError(f"{url} runs OpenSearch {number}, not Elasticsearch: use --backend opensearch")
    server_major, server_minor = parse_version(number)
    client_major, _ = parse_version(client_version)
    if server_major not in SUPPORTED_MAJORS:
        raise UsageError(f"{url} runs Elasticsearch {number}; sparsearch supports Elasticsearch 8.x and 9.x")
    if client_major > server_major:
        raise UsageError(
            f"{url} runs Elasticsearch {number} but the installed elasticsearch client is {client_version}, which "
            f"talks to {client_major}.x servers only: pip install 'elasticsearch>={server_major},<{server_major + 1}'"
        )
    if field_type == "sparse_vector" and (server_major, server_minor) < SPARSE_VECTOR_QUERY_SINCE:
        raise UsageError(
            f"field type sparse_vector needs Elasticsearch 8.15+ (the sparse_vector query); {url} runs {number}: "
            "use the default rank_features"
        )


class ElasticsearchBackend(SearchEngineBackend):
    """A sparsearch index (an alias over versioned indexes) on Elasticsearch.

    Example (needs a running Elasticsearch, e.g. ``docker compose up elasticsearch``)::

        backend = ElasticsearchBackend.connect("http://127.0.0.1:9200", "cranfield")
        hits = backend.search(encoder.encode_query("hypersonic flow"), top_k=10)
    """

    name = "elasticsearch"
    product = "Elasticsearch"
    client_module = "elasticsearch"

    @classmethod
    def make_client(cls, url: str, auth: tuple[str, str] | None, timeout: float) -> Any:
        elasticsearch = require("elasticsearch", "engines")
        return elasticsearch.Elasticsearch(
            url,
            basic_auth=auth,
            request_timeout=timeout,
            max_retries=2,
            retry_on_timeout=True,
            http_compress=True,
            connections_per_node=POOL_SIZE,
        )

    @property
    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        elasticsearch = require("elasticsearch", "engines")
        return (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout)

    @property
    def not_found_error(self) -> type[BaseException]:
        return require("elasticsearch", "engines").NotFoundError

    @property
    def api_error(self) -> type[BaseException]:
        return require("elasticsearch", "engines").ApiError

    def translate_error(self, error: Exception) -> SparsearchError | None:
        elasticsearch = require("elasticsearch", "engines")
        if isinstance(error, elasticsearch.UnsupportedProductError):
            return UsageError(
                f"{self.url} is not an Elasticsearch server (an OpenSearch answers that way): use --backend opensearch"
            )
        if (
            isinstance(error, elasticsearch.ApiError)
            and error.status_code in (400, 406)
            and "compatib" in str(error).lower()
        ):
            return UsageError(
                f"{self.url} refused the compatibility headers of elasticsearch client {elasticsearch.__versionstr__} "
                "(an older server): install the client of the server's major version, e.g. "
                "pip install 'elasticsearch>=8.13,<9' for Elasticsearch 8"
            )
        return None

    def check_server(self, info: Mapping[str, Any]) -> None:
        elasticsearch = require("elasticsearch", "engines")
        check_elasticsearch_server(info, elasticsearch.__versionstr__, self.url)

    def check_field_type(self, field_type: str) -> None:
        if field_type not in ("rank_features", "sparse_vector"):
            raise UsageError(f"unknown field type {field_type!r}: use rank_features or sparse_vector")
        if field_type == "rank_features":  # every supported version has it
            return
        elasticsearch = require("elasticsearch", "engines")
        check_elasticsearch_server(self.server_info(), elasticsearch.__versionstr__, self.url, field_type)
