"""Property-based fuzzing of the OpenAPI schema (schemathesis) against a real server: for any
generated request, valid or not, no 5xx, and every response conforms to the schema.

The example count is kept small so the default suite stays fast; ``SPARSEARCH_FUZZ_EXAMPLES``
raises it, and ``bench/fuzz_api.py`` runs the schemathesis CLI with many more (results committed).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.api.conftest import LiveServer, make_settings

EXAMPLES = int(os.environ.get("SPARSEARCH_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory, _tiny_bm25_index: Path) -> Iterator[LiveServer]:
    index = tmp_path_factory.mktemp("fuzzed") / "tiny"
    shutil.copytree(_tiny_bm25_index, index)  # the fuzzer adds and deletes documents
    with LiveServer(make_settings(f"tiny={index}")) as server:
        yield server


def _schema():
    """The app's OpenAPI schema, built without starting it (no index is opened for this)."""
    from sparsearch.api import create_app

    return schemathesis.openapi.from_dict(create_app(make_settings("tiny=unused")).openapi())


schema = _schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_no_server_error_for_any_generated_request(case, fuzzed_server: LiveServer) -> None:
    response = case.call(base_url=fuzzed_server.url)
    if response.status_code == 413:  # documented, and only for bodies really over the limit
        assert len(response.request.body) > fuzzed_server.app.state.settings.max_body_bytes
        return
    case.validate_response(response)
