"""What the scale section of bench/run.py runs (``scale_plan``): the profiles and sizes of a default,
a ``--full`` and a partial run, the engines ``--full`` runs on its first profile only; its checkpoints
and ``--resume``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

DATA = [Path("data/cisi"), Path("data/cranfield")]  # the default --data collections, in order


def args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"full": False, "sizes": None, "profiles": None, **given})


def test_a_default_run_fits_the_first_collection_at_the_small_sizes(run_module) -> None:
    (plan,) = run_module.scale_plan(args(), DATA)
    assert (plan.data.name, plan.sizes, plan.first_only) == ("cisi", [10_000, 100_000], {})


def test_full_runs_four_profiles_to_one_million_and_the_first_to_ten_million(run_module) -> None:
    plans = run_module.scale_plan(args(full=True), DATA)
    assert [p.data.name for p in plans] == ["cisi", "cranfield", "cacm", "npl"]
    assert plans[0].sizes == [10_000, 100_000, 1_000_000, 10_000_000]
    assert plans[0].first_only == {}
    for plan in plans[1:]:
        assert plan.sizes == [10_000, 100_000, 1_000_000]
        assert plan.first_only["lucene-impact"][0] == 1_000_000
    assert {p.data for p in plans[:2]} == set(DATA)  # the given collections, not a second copy


SMALL, FULL = [10_000, 100_000], [10_000, 100_000, 1_000_000]


@pytest.mark.parametrize(
    ("given", "sizes", "lucene_limited"),
    [
        ({"profiles": ["npl", "cacm"]}, [SMALL, SMALL], [False, False]),
        ({"full": True, "profiles": ["npl", "cacm"]}, [[*FULL, 10_000_000], FULL], [False, True]),  # first given
        ({"full": True, "profiles": ["npl"], "sizes": [1_000_000]}, [[1_000_000]], [False]),  # --sizes wins
    ],
)
def test_profiles_and_sizes_given_are_run_as_given(run_module, given, sizes, lucene_limited) -> None:
    plans = run_module.scale_plan(args(**given), DATA)
    assert [p.data.name for p in plans] == given["profiles"]
    assert [p.sizes for p in plans] == sizes
    assert ["lucene-impact" in p.first_only for p in plans] == lucene_limited


def test_an_engine_named_in_skip_is_skipped_with_the_reason(run_module, tmp_path) -> None:
    skip = {"lucene-impact": "first profile only"}
    lucene, pisa = run_module.run_engines(tmp_path, tmp_path, ["lucene-impact", "pisa"], {}, {}, 1, 1000, 60, skip=skip)
    assert lucene == {"engine": "lucene-impact", "skipped": "first profile only"}
    assert pisa.get("error") == "interpreter unavailable"  # not skipped: it was started


def test_a_checkpoint_is_marked_partial_and_the_last_write_is_not(run_module, tmp_path) -> None:
    output = tmp_path / "results" / "bench.json"
    result = {"created_at": "then", "sections": {}, "resumed_after_s": 100.0}
    run_module.write_result(result, output, started=0.0, partial=True)
    written = json.loads(output.read_text())
    assert written["partial"] is True
    assert written["wall_s"] > 100.0  # the interrupted part's time is counted
    run_module.write_result(result, output, started=0.0, partial=False)
    assert "partial" not in json.loads(output.read_text())
    assert [p.name for p in output.parent.iterdir()] == ["bench.json"]  # no temporary file left


def test_rows_an_interrupted_run_finished_are_kept_not_rerun(run_module, tmp_path) -> None:
    plan = run_module.ScalePlan(Path("data/cisi"), [10_000], {})
    row = {"docs": 10_000, "engines": [], "run_at": "then"}
    given = argparse.Namespace(work=tmp_path, queries=5, repeats=1, timeout=60)
    rows = list(run_module.scale_rows(None, plan, given, ["pisa"], {}, {}, "then", {10_000: row}))
    assert rows == [row]
    assert not (tmp_path / "corpora").exists()  # nothing generated


@pytest.mark.parametrize("partial", [False, True])
def test_resume_refuses_an_output_without_that_interrupted_run(run_module, tmp_path, monkeypatch, capsys, partial):
    output = tmp_path / "bench.json"
    output.write_text(json.dumps({"command": "bench/run.py --full", "created_at": "then", "partial": partial}))
    monkeypatch.setattr(run_module.signal, "signal", lambda *_: None)
    argv = ["run.py", "--sections", "scale", "--sizes", "10000", "--output", str(output), "--resume"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stopped:
        run_module.main()
    assert stopped.value.code == 2
    found = "an interrupted run of `bench/run.py --full`" if partial else "no interrupted run"
    assert f"holds {found}; run without --resume to start anew" in capsys.readouterr().err
