"""``sparsearch index --dense``, ``search --mode hybrid`` and ``eval --mode hybrid`` on the tiny collection."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.search import Searcher

runner = CliRunner()
QUERY = "heat transfer in boundary layers at high speed"


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_search_and_eval_in_hybrid_mode(tiny_dense_index: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = invoke("search", "--index", str(tiny_dense_index), "--json", "--mode", "hybrid", "--top-k", "3", QUERY)
    assert result.exit_code == 0, result.output
    with Searcher.open(tiny_dense_index) as searcher:
        expected = searcher.search(QUERY, 3, mode="hybrid")
    assert [(h["id"], round(h["score"], 6)) for h in json.loads(result.stdout)["hits"]] == [
        (h.doc_id, round(h.score, 6)) for h in expected
    ]

    output = tmp_path / "report.json"
    result = invoke(
        "eval", "--data", str(tiny_data), "--index", str(tiny_dense_index), "--mode", "hybrid", "--output", str(output)
    )
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text())
    assert report["mode"] == "hybrid"
    assert 0 < report["metrics"]["ndcg@10"] <= 1


def test_index_dense_records_the_model(tiny_data: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    result = invoke("index", "--data", str(tiny_data), "--index", str(index), "--model", "bm25", "--dense")
    assert result.exit_code == 0, result.output
    assert "dense vectors" in result.stdout and "all-MiniLM-L6-v2" in result.stdout
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["dense"]["model"] == "all-MiniLM-L6-v2" and manifest["dense"]["dtype"] == "float16"


def test_hybrid_on_an_index_without_dense_vectors_is_one_clear_error(tiny_bm25_index: Path) -> None:
    result = invoke("search", "--index", str(tiny_bm25_index), "--mode", "hybrid", QUERY)
    assert result.exit_code == 2  # the options do not fit the index: a usage error
    assert "stores no dense vectors" in result.output and "--dense" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_mode_is_a_usage_error(tiny_bm25_index: Path) -> None:
    result = invoke("search", "--index", str(tiny_bm25_index), "--mode", "dense", QUERY)
    assert result.exit_code == 2
    assert "use sparse or hybrid" in result.output


def test_eval_candidates_option(tiny_dense_index: Path, tiny_data: Path, tmp_path: Path) -> None:
    base = ("eval", "--data", str(tiny_data), "--index", str(tiny_dense_index))
    result = invoke(*base, "--candidates", "union")
    assert result.exit_code == 2 and "--candidates goes with --mode hybrid" in result.output
    result = invoke(*base, "--mode", "hybrid", "--candidates", "dense")
    assert result.exit_code == 2 and "unknown candidate set" in result.output
    output = tmp_path / "union.json"
    result = invoke(*base, "--mode", "hybrid", "--candidates", "union", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert 0 < json.loads(output.read_text())["metrics"]["ndcg@10"] <= 1


def test_hybrid_the_backend_cannot_run_is_refused_before_any_encoding(tiny_data: Path, tmp_path: Path) -> None:
    """eval would otherwise encode the corpus (minutes with the default model) and fail afterwards."""
    cases = [
        (["--backend", "lucene", "--mode", "hybrid"], "lucene backend has no hybrid mode"),
        (["--backend", "opensearch", "--mode", "hybrid", "--candidates", "union"], "cannot search dense vectors"),
    ]
    for options, message in cases:
        result = invoke("eval", "--data", str(tiny_data), "--index", str(tmp_path / "never"), *options)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "never").exists()
    result = invoke("search", "--index", str(tmp_path / "never"), "--backend", "lucene", "--mode", "hybrid", QUERY)
    assert result.exit_code == 2 and "lucene backend has no hybrid mode" in result.output
