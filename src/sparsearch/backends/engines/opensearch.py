"""The OpenSearch backend (official ``opensearch-py`` client; OpenSearch 2.x and 3.x servers).

Tested against a real OpenSearch started by ``scripts/opensearch`` (see
docs/engines.md). Bodies come from :mod:`sparsearch.backends.engines.bodies`; the shared logic (alias and
versions, search, documents, encoder store) lives in :mod:`sparsearch.backends.engines.client`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sparsearch.backends.engines.client import POOL_SIZE, SearchEngineBackend
from sparsearch.errors import UsageError, require

log = logging.getLogger(__name__)

SUPPORTED_MAJORS = (2, 3)


def check_opensearch_server(info: Mapping[str, Any], url: str = "the server") -> None:
    """Raise :class:`UsageError` unless ``GET /`` says OpenSearch 2.x or 3.x.

    Args:
        info: the JSON of ``GET /`` (``version.distribution``, ``version.number``).
    """
    version = info.get("version") or {}
    number = str(version.get("number", "?"))
    if version.get("distribution") != "opensearch":
        raise UsageError(f"{url} runs Elasticsearch {number}, not OpenSearch: use --backend elasticsearch")
    major = int(number.split(".")[0]) if number.split(".")[0].isdigit() else 0
    if major < SUPPORTED_MAJORS[0]:
        raise UsageError(f"{url} runs OpenSearch {number}; sparsearch needs OpenSearch 2.x or 3.x")
    if major > SUPPORTED_MAJORS[-1]:
        log.warning("OpenSearch %s is newer than the versions sparsearch was tested with (2.x, 3.x)", number)


class OpenSearchBackend(SearchEngineBackend):
    """A sparsearch index (an alias over versioned indexes) on OpenSearch.

    Example (needs a running OpenSearch, e.g. ``scripts/opensearch start``)::

        backend = OpenSearchBackend.connect("http://127.0.0.1:9200", "cranfield")
        hits = backend.search(encoder.encode_query("hypersonic flow"), top_k=10)
    """

    name = "opensearch"
    product = "OpenSearch"
    client_module = "opensearchpy"

    @classmethod
    def make_client(cls, url: str, auth: tuple[str, str] | None, timeout: float) -> Any:
        opensearchpy = require("opensearchpy", "engines")
        return opensearchpy.OpenSearch(
            hosts=[url],
            http_auth=auth,
            timeout=timeout,
            max_retries=2,
            retry_on_timeout=True,
            http_compress=True,
            pool_maxsize=POOL_SIZE,
        )

    @property
    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        opensearchpy = require("opensearchpy", "engines")
        return (opensearchpy.ConnectionError,)  # ConnectionTimeout and SSLError derive from it

    @property
    def not_found_error(self) -> type[BaseException]:
        return require("opensearchpy", "engines").NotFoundError

    @property
    def api_error(self) -> type[BaseException]:
        return require("opensearchpy", "engines").TransportError

    def check_server(self, info: Mapping[str, Any]) -> None:
        check_opensearch_server(info, self.url)
