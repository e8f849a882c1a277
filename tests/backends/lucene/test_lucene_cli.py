"""``--backend lucene`` through the command line, as a user runs it: each command a new process (its
own JVM), on tests/data/tiny with BM25, against the embedded engine's answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TINY = Path(__file__).parents[2] / "data" / "tiny"


def sparsearch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from sparsearch.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def lucene_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "lucene"
    done = sparsearch("index", "--data", str(TINY), "--index", str(path), "--model", "bm25", "--backend", "lucene")
    assert done.returncode == 0, done.stderr
    assert "lucene index" in done.stdout and "document scale" in done.stdout
    return path


def test_search_topics_match_the_embedded_run(lucene_index: Path, tiny_bm25_index: Path, tmp_path: Path) -> None:
    runs = {}
    for name, extra in (("lucene", [str(lucene_index), "--backend", "lucene"]), ("embedded", [str(tiny_bm25_index)])):
        run = tmp_path / f"{name}.run"
        done = sparsearch("search", "--index", *extra, "--topics", str(TINY / "queries.jsonl"), "--run", str(run))
        assert done.returncode == 0, done.stderr
        runs[name] = [line.split()[:3] for line in run.read_text().splitlines()]
    assert runs["lucene"] == runs["embedded"]  # same queries, documents and order on tiny


def test_search_one_query_shows_titles(lucene_index: Path) -> None:
    done = sparsearch("search", "--index", str(lucene_index), "--backend", "lucene", "boundary layer", "--hits", "2")
    assert done.returncode == 0, done.stderr
    assert "hits for 'boundary layer'" in done.stdout and "Boundary layers" in done.stdout


def test_eval_existing_and_fresh_lucene_index(lucene_index: Path, tmp_path: Path) -> None:
    reports = {}
    for name, extra in (
        ("existing", ["--index", str(lucene_index), "--backend", "lucene"]),
        ("fresh", ["--model", "bm25", "--backend", "lucene"]),
        ("embedded", ["--model", "bm25"]),
    ):
        out = tmp_path / f"{name}.json"
        done = sparsearch("eval", "--data", str(TINY), *extra, "--output", str(out))
        assert done.returncode == 0, done.stderr
        reports[name] = json.loads(out.read_text())
    assert reports["existing"]["backend"] == reports["fresh"]["backend"] == "lucene"
    for name in ("existing", "fresh"):
        assert reports[name]["metrics"]["ndcg@10"] == pytest.approx(reports["embedded"]["metrics"]["ndcg@10"], abs=0.01)


def test_usage_errors(lucene_index: Path, tmp_path: Path) -> None:
    done = sparsearch("search", "--index", str(lucene_index), "--backend", "lucene", "--url", "http://x:9200", "flow")
    assert done.returncode == 2 and "the lucene backend reads --index DIR" in done.stderr
    done = sparsearch("search", "--index", str(tmp_path), "--backend", "lucene", "flow")
    assert done.returncode == 1 and "sparsearch index --backend lucene" in done.stderr
    done = sparsearch(
        "index", "--data", str(TINY), "--index", str(lucene_index), "--backend", "lucene", "--model", "bm25"
    )
    assert done.returncode == 1 and "--overwrite" in done.stderr
