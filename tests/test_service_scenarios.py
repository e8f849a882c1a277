"""The service under concurrent updates, overwrites, heavy requests and churn (``bench/service_scenarios.py``,
short sizes): real ``sparsearch serve`` processes over BM25 indexes of the bundled Cranfield sample.

Behaviour only: no HTTP 5xx, no acknowledged update lost, the index still opens, the term count of a
fresh build after a merge. Latency (the p99 ratio of scenario b) is the benchmark report's business,
never asserted here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import bundled_collection

BENCH = Path(__file__).resolve().parents[1] / "bench"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def scenarios() -> Iterator[ModuleType]:
    """``bench/service_scenarios.py`` as a module; every process it started is stopped afterwards."""
    bundled_collection("cranfield")
    sys.path.insert(0, str(BENCH))
    try:
        import service_scenarios

        yield service_scenarios
        service_scenarios.stop_all_children()
    finally:
        sys.path.remove(str(BENCH))


def _context(result: dict) -> str:
    """What to read when an assertion fails: outcomes per kind of request, first errors, server exceptions."""
    keys = ("requests", "error_examples", "server_log_exceptions", "hung_threads", "merge")
    return json.dumps({key: result[key] for key in keys if key in result}, indent=1)[:4000]


def test_two_workers_updates_and_overwrites_lose_nothing(scenarios: ModuleType, tmp_path: Path) -> None:
    """Searchers, one updater and a loop of ``sparsearch index --overwrite`` on the served directory, 2 workers."""
    result = scenarios.scenario_updates_and_overwrite(tmp_path, 2, scenarios.SHORT)
    context = _context(result)
    assert result["server_errors"] == 0, context
    assert result["transport_errors"] == 0 and not result["hung_threads"], context
    assert result["overwrites"]["runs"] >= 1, result["overwrites"]
    assert result["acknowledged_after_last_overwrite"] > 0, context  # the check below has something to check
    assert result["lost_over_http"] == [], context
    assert result["lost_on_disk"] == [], result["disk_check"]
    assert result["deleted_but_found_over_http"] == [] and result["deleted_but_found_on_disk"] == []
    assert result["disk_check"]["opened"], result["disk_check"]["error"]
    assert result["cli_search_ok"], result["cli_search_error"]


def test_heavy_batches_next_to_searches_and_updates_fail_nothing(scenarios: ModuleType, tmp_path: Path) -> None:
    """A slow batch (or its refusal for cost, a 4xx), 1-document upserts and plain searches at once."""
    result = scenarios.scenario_heavy_requests(tmp_path, scenarios.SHORT)
    context = _context(result)
    assert result["server_errors"] == 0, context
    assert result["transport_errors"] == 0 and not result["hung_threads"], context
    requests = result["requests"]
    assert requests["plain"]["2xx"] == requests["plain"]["requests"] > 0, context
    assert requests["upsert"]["2xx"] == requests["upsert"]["requests"], context
    heavy = requests["heavy"]
    shed = heavy["5xx"].get("504 search_timeout", 0)  # the service's own deadline: shed, not failed
    assert heavy["requests"] >= 1 and heavy["2xx"] + sum(heavy["4xx"].values()) + shed == heavy["requests"], context


def test_merge_after_churn_leaves_the_terms_of_a_fresh_build(scenarios: ModuleType, tmp_path: Path) -> None:
    """Rounds of upserts then deletes of random-word documents, a force-merge, against a fresh build."""
    result = scenarios.scenario_churn(tmp_path, scenarios.SHORT)
    context = _context(result)
    assert result["server_errors"] == 0 and result["transport_errors"] == 0, context
    assert result["survivors_found"] == f"{result['rounds']}/{result['rounds']}", result["survivors_found"]
    assert result["deleted_found"].startswith("0/"), result["deleted_found"]
    merge = result["merge"]
    assert merge["available"], f"no force-merge: POST /v1/indexes/{{name}}/merge and sparsearch merge: {merge}"
    assert merge["ok"], merge
    merged, fresh = result["after_merge"], result["fresh_build"]
    assert merged["documents"] == fresh["documents"]
    assert merged["n_terms"] == fresh["n_terms"], (result["after_churn"], merged, fresh)
