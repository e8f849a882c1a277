"""The embedded engine's goal check in bench/report.py (``embedded_goal_lines``) on hand-made scale
sections: every goal met, every goal missed, and the rows missing."""

from __future__ import annotations

import pytest

CSC = 1_000 * 2**20  # the plain CSC arrays of every row: 1000 MB
MET = "**met**"
MISSED = "**missed**"


def engine(name: str, p50: float, qps: float, postings: int | None = None, **extra) -> dict:
    """A scale-row engine entry as bench/run.py stores it (the reported setting only)."""
    entry = {
        "engine": name,
        "reported": {"variant": {}, "latency": {"p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3}, "qps": qps},
        "build_s": 12.0,
        "index_bytes": 3 * 2**30,
        "peak_rss_mb": 2048.0,
        "rss_method": "VmHWM",
        **extra,
    }
    if postings is not None:
        entry["settings"] = {"exact": True, "postings_bytes": postings + 512, "postings_array_bytes": postings}
    return entry


def row(docs: int, *engines: dict) -> dict:
    return {"docs": docs, "avg_terms_per_doc": 150.0, "avg_terms_per_query": 10.0, "csc_bytes": CSC,
            "engines": list(engines)}  # fmt: skip


def results(report_module, scale: dict) -> dict[tuple[str, str], tuple[str, str]]:
    """(profile, goal) -> (result, figure), read back from the Markdown table."""
    table = [line for line in report_module.embedded_goal_lines(scale) if line.startswith("| ") and "---" not in line]
    cells = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table[1:]]
    return {(profile, goal): (result, figure) for profile, goal, result, figure in cells}


def goal_named(found: dict, profile: str, words: str) -> tuple[str, str]:
    (match,) = [value for (p, goal), value in found.items() if p == profile and words in goal]
    return match


@pytest.fixture
def met_profile() -> dict:
    """Every goal met: postings 0.4x CSC, p50 0.4x the fastest peer (an approximate one at its reported
    setting), more QPS than every peer, and a 10M row without error."""
    peers = (engine("pisa", 2.5, 400.0), engine("seismic", 2.0, 500.0, variants=[{"variant": {"heap_factor": 1.0}}]))
    return {
        "profile": "default on cisi",
        "rows": [
            row(10_000, engine("sparsearch-embedded", 0.02, 60_000.0, postings=CSC // 100), *peers),
            row(100_000, engine("sparsearch-embedded", 0.1, 15_000.0, postings=CSC // 10), *peers),
            row(1_000_000, engine("sparsearch-embedded", 0.8, 2_000.0, postings=int(CSC * 0.4)), *peers),
            {
                **row(10_000_000, engine("sparsearch-embedded", 9.0, 180.0, postings=CSC * 4, corpus_read_s=380.0)),
                "corpus_bytes": 400_000,
                "corpus_kind": "streamed",
            },
        ],
    }


@pytest.fixture
def missed_profile() -> dict:
    """Every goal missed: postings 0.8x CSC, p50 0.7x the fastest peer, fewer QPS than splade-index at
    every size, and the embedded engine failing at 10M."""
    peers = (engine("splade-index", 1.0, 90_000.0), engine("pisa", 3.0, 300.0))
    return {
        "profile": "default on cranfield",
        "rows": [
            row(10_000, engine("sparsearch-embedded", 0.03, 50_000.0, postings=CSC // 100), *peers),
            row(100_000, engine("sparsearch-embedded", 0.2, 10_000.0, postings=CSC // 10), *peers),
            row(1_000_000, engine("sparsearch-embedded", 0.7, 1_500.0, postings=int(CSC * 0.8)), *peers),
            row(10_000_000, {"engine": "sparsearch-embedded", "error": "build failed: MemoryError | out of memory"}),
        ],
    }


def test_every_goal_met(report_module, met_profile) -> None:
    found = results(report_module, {"profiles": {"cisi": met_profile}})
    assert len(found) == 6  # postings, latency, QPS at three sizes, 10M
    assert {result for result, _ in found.values()} == {MET}
    result, figure = goal_named(found, "default on cisi", "postings")
    assert "= 0.400x CSC" in figure
    _, figure = goal_named(found, "default on cisi", "p50")
    assert "fastest peer seismic 2.000 ms" in figure and "0.4000x" in figure and "exact" in figure
    _, figure = goal_named(found, "default on cisi", "10,000 documents")
    assert "best peer seismic 500" in figure
    _, figure = goal_named(found, "default on cisi", "10M")
    for part in ("p50 9.000 ms", "p99 27.000 ms", "180 QPS", "build 12 s", "peak RSS 2,048 MB", "index 3.00 GB",
                 "postings 3.91 GB", "corpus on disk 0.4 MB"):  # fmt: skip
        assert part in figure


def test_every_goal_missed(report_module, missed_profile) -> None:
    found = results(report_module, {"profiles": {"cranfield": missed_profile}})
    assert {result for result, _ in found.values()} == {MISSED}
    assert "= 0.800x CSC" in goal_named(found, "default on cranfield", "postings")[1]
    assert "fastest peer splade-index 1.000 ms (0.7000x its p50)" in goal_named(found, "default on cranfield", "p50")[1]
    assert "MemoryError / out of memory" in goal_named(found, "default on cranfield", "10M")[1]  # no broken table


def test_missing_rows_are_not_measured_per_profile(report_module, met_profile) -> None:
    small = {"profile": "default on npl", "rows": met_profile["rows"][:2]}  # 10k and 100k only
    found = results(report_module, {"profiles": {"cisi": met_profile, "npl": small}})
    assert len(found) == 11  # the 10M goal once, on the profile that has the row
    npl = {goal: value for (profile, goal), value in found.items() if profile == "default on npl"}
    assert [result for result, _ in npl.values()] == ["not measured", "not measured", MET, MET, "not measured"]
    assert {result for (profile, _), (result, _) in found.items() if profile == "default on cisi"} == {MET}
    assert goal_named(found, "default on cisi", "10M")[0] == MET


def test_ten_million_documents_are_not_measured_once_when_no_profile_has_the_row(report_module, met_profile) -> None:
    rows = met_profile["rows"][:3]
    found = results(report_module, {"profiles": {p: {"profile": f"default on {p}", "rows": rows} for p in "ab"}})
    assert len(found) == 11  # five goals a profile, and the 10M goal once
    assert goal_named(found, "any", "10M") == ("not measured", "no 10,000,000-document row (`--full`)")


def test_the_single_profile_shape_of_older_results_is_read(report_module, met_profile) -> None:
    old = {"profile": "default on cisi", "rows": met_profile["rows"], "install_errors": {}}
    assert report_module.scale_profiles(old) == {"cisi": {"profile": "default on cisi", "rows": met_profile["rows"]}}
    assert results(report_module, old) == results(report_module, {"profiles": {"cisi": met_profile}})
    assert report_module.embedded_goal_lines({}) == ["No scale results: the embedded engine's goals are not measured."]
