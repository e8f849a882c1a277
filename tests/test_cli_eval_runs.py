"""`sparsearch eval --metrics/--per-query/--ignore-identical-ids`, `search --topics` into a TREC run,
`eval --run --qrels` on an existing run, and errors (not 0.0000) when run and qrels do not match."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch.cli import app

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def metric_rows(stdout: str) -> dict[str, float]:
    """``metric -> value`` from the eval table's rows (``│ nDCG@10 │ 0.7848 │``)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2 and " " not in cells[0]:  # metric names have no space; the other rows do
            try:
                rows[cells[0]] = float(cells[1].replace(",", ""))
            except ValueError:
                continue
    return rows


@pytest.mark.parametrize(
    "metric_args",
    [
        ["--metrics", "nDCG@10", "R@100", "RR@10", "AP", "P@10"],  # unquoted, as after trec_eval -m
        ["--metrics", "nDCG@10 R@100 RR@10 AP P@10"],
        ["--metrics", "nDCG@10,R@100", "-m", "RR@10", "-m", "AP,P@10"],
    ],
)
def test_eval_metrics_by_ir_measures_names(tiny_data: Path, tiny_bm25_index: Path, tmp_path: Path, metric_args) -> None:
    output = tmp_path / "r.json"
    result = invoke("eval", "--data", tiny_data, "--index", tiny_bm25_index, "--output", output, *metric_args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(output.read_text())["metrics"]
    assert list(metrics) == ["nDCG@10", "R@100", "RR@10", "AP", "P@10"]
    assert round(metrics["nDCG@10"], 4) == 0.7848 and metrics["RR@10"] == pytest.approx(0.8)  # the golden numbers
    assert metric_rows(result.stdout)["P@10"] == pytest.approx(metrics["P@10"], abs=5e-5)


def test_eval_metrics_by_trec_eval_names_equal_the_default_ones(tiny_data: Path, tiny_bm25_index: Path) -> None:
    default = invoke("eval", "--data", tiny_data, "--index", tiny_bm25_index)
    trec = invoke("eval", "--data", tiny_data, "--index", tiny_bm25_index, "-m", "ndcg_cut.10 recall.100 map")
    assert default.exit_code == 0 and trec.exit_code == 0, default.output + trec.output
    ours, theirs = metric_rows(default.stdout), metric_rows(trec.stdout)
    assert set(ours) >= {"ndcg@10", "recall@100", "recall@1000", "mrr@10", "map"}
    assert set(theirs) == {"ndcg_cut.10", "recall.100", "map"}
    assert (theirs["ndcg_cut.10"], theirs["recall.100"], theirs["map"]) == (
        ours["ndcg@10"],
        ours["recall@100"],
        ours["map"],
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "nDCG@10 foo"], "unknown metric 'foo': use ir_measures names such as nDCG@10"),
        (["-m", "P"], "needs a cut-off"),
        (["R@100"], "unexpected argument 'R@100': metric names go after --metrics"),
    ],
)
def test_eval_unknown_metric_is_a_usage_error(tiny_data: Path, tiny_bm25_index: Path, args, message: str) -> None:
    result = invoke("eval", "--data", tiny_data, "--index", tiny_bm25_index, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("suffix", ["tsv", "jsonl"])
def test_eval_per_query(tiny_data: Path, tiny_bm25_index: Path, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"per-query.{suffix}"
    result = invoke("eval", "--data", tiny_data, "--index", tiny_bm25_index, "-m", "nDCG@10 RR@10", "--per-query", path)
    assert result.exit_code == 0, result.output
    lines = path.read_text().splitlines()
    if suffix == "tsv":
        assert lines[0] == "query_id\tmetric\tvalue"
        rows = [line.split("\t") for line in lines[1:]]
    else:
        rows = [list(json.loads(line).values()) for line in lines]
    expected = [(q, m) for q in ("q1", "q2", "q3", "q4", "q5") for m in ("nDCG@10", "RR@10")]
    assert [(q, m) for q, m, _ in rows] == expected
    mean = sum(float(v) for _, m, v in rows if m == "RR@10") / 5
    assert mean == pytest.approx(metric_rows(result.stdout)["RR@10"], abs=5e-5)


# -- BEIR's identical-id rule -----------------------------------------------------------------------------
@pytest.fixture
def self_retrieving_data(tmp_path: Path) -> Path:
    """A collection where query "a1" is also document "a1" (as in ArguAna): the query finds itself first."""
    data = tmp_path / "arguana-like"
    (data / "qrels").mkdir(parents=True)
    documents = [
        ("a1", "nuclear power is a safe source of energy"),
        ("a2", "nuclear power is not safe: the waste stays for centuries"),
        ("b1", "school uniforms should be compulsory"),
        ("b2", "uniforms limit the expression of pupils at school"),
    ]
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in documents))
    queries = [("a1", documents[0][1]), ("b1", documents[2][1])]
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\na1\ta2\t1\nb1\tb2\t1\n")
    return data


def test_ignore_identical_ids(self_retrieving_data: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert invoke("index", "--data", self_retrieving_data, "--index", index, "--model", "bm25").exit_code == 0
    base = ["eval", "--data", self_retrieving_data, "--index", index, "-m", "RR nDCG@10"]
    kept = invoke(*base, "--run", tmp_path / "kept.trec")
    dropped = invoke(
        *base, "--run", tmp_path / "dropped.trec", "--ignore-identical-ids", "--output", tmp_path / "r.json"
    )
    assert kept.exit_code == 0 and dropped.exit_code == 0, kept.output + dropped.output
    assert metric_rows(kept.stdout)["RR"] == pytest.approx(0.5)  # each query's relevant document is second
    assert metric_rows(dropped.stdout)["RR"] == pytest.approx(1.0)  # behind itself, which no longer counts
    assert "identical ids ignored" in dropped.stdout
    assert json.loads((tmp_path / "r.json").read_text())["ignore_identical_ids"] is True
    assert (tmp_path / "kept.trec").read_text().splitlines()[0].split()[:3] == ["a1", "Q0", "a1"]
    assert all(line.split()[0] != line.split()[2] for line in (tmp_path / "dropped.trec").read_text().splitlines())
    # scoring the kept run afterwards applies the same rule
    rescored = invoke("eval", "--run", tmp_path / "kept.trec", "--qrels", self_retrieving_data, "-m", "RR")
    rescored_dropped = invoke(
        "eval", "--run", tmp_path / "kept.trec", "--qrels", self_retrieving_data, "-m", "RR", "--ignore-identical-ids"
    )
    assert metric_rows(rescored.stdout)["RR"] == pytest.approx(0.5)
    assert metric_rows(rescored_dropped.stdout)["RR"] == pytest.approx(1.0)


def test_ignore_identical_ids_help_says_why() -> None:
    help_text = " ".join(invoke("eval", "--help").stdout.replace("│", " ").split())
    assert "--ignore-identical-ids" in help_text
    for words in ("ArguAna and Quora", "unaffected", "BEIR applies it by default", "cranfield"):
        assert words in help_text


# -- search --topics -> TREC run -> eval --run --qrels ---------------------------------------------------
def test_search_topics_writes_a_trec_run_that_scores_like_eval(
    tiny_data: Path, tiny_bm25_index: Path, tmp_path: Path
) -> None:
    run = tmp_path / "runs" / "tiny.trec"
    result = invoke("search", "--index", tiny_bm25_index, "--topics", tiny_data / "queries.jsonl", "--run", run)
    assert result.exit_code == 0, result.output
    assert "5 topics searched" in result.stdout
    lines = [line.split() for line in run.read_text().splitlines()]
    assert {line[0] for line in lines} == {"q1", "q2", "q3", "q4"}  # q5 finds nothing with BM25
    assert "1 of the 5 topics got no hit" in result.stderr
    assert all(line[1] == "Q0" and line[5] == "bm25" for line in lines)  # the default tag: the model's name
    q1 = [line for line in lines if line[0] == "q1"]
    assert [line[3] for line in q1] == [str(rank) for rank in range(1, len(q1) + 1)]
    assert [float(line[4]) for line in q1] == sorted((float(line[4]) for line in q1), reverse=True)
    assert q1[0][2] == "d1"  # as `search "lift of a wing..."` answers

    scored = invoke("eval", "--run", run, "--qrels", tiny_data / "qrels" / "test.tsv")
    searched = invoke("eval", "--data", tiny_data, "--index", tiny_bm25_index)
    assert scored.exit_code == 0 and searched.exit_code == 0, scored.output + searched.output
    from_run, from_index = metric_rows(scored.stdout), metric_rows(searched.stdout)
    assert set(from_run) == {"ndcg@10", "recall@100", "recall@1000", "mrr@10", "map"}
    assert from_run == {name: from_index[name] for name in from_run}


def test_search_topics_tsv_hits_and_tag(tiny_bm25_index: Path, tmp_path: Path) -> None:
    topics = tmp_path / "topics.tsv"
    topics.write_text("101\tlift of a wing in a propeller slipstream\n102\tthe of and\n103\theat transfer\n")
    run = tmp_path / "run.txt"
    result = invoke(
        "search", "--index", tiny_bm25_index, "--topics", topics, "--run", run, "--hits", "2", "--run-tag", "mine"
    )
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in run.read_text().splitlines()]
    assert [line[0] for line in lines] == ["101", "101", "103", "103"]  # 2 hits each; 102 finds nothing
    assert {line[5] for line in lines} == {"mine"}
    assert "1 of the 3 topics got no hit" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--topics", "TOPICS"], "--topics needs --run FILE"),
        (["--topics", "TOPICS", "--run", "RUN", "wing"], "either a query or --topics"),
        (["--run", "RUN", "wing"], "--run and --run-tag go with --topics"),
        (["--topics", "/no/such/topics.tsv", "--run", "RUN"], "topics file not found"),
    ],
)
def test_search_topics_usage_errors(tiny_data: Path, tiny_bm25_index: Path, tmp_path: Path, args, message) -> None:
    args = [
        str(tiny_data / "queries.jsonl") if a == "TOPICS" else str(tmp_path / "run.trec") if a == "RUN" else a
        for a in args
    ]
    result = invoke("search", "--index", tiny_bm25_index, *args)
    assert result.exit_code in (1, 2), result.output
    assert message in result.stderr
    assert not (tmp_path / "run.trec").exists()


def test_eval_scores_a_run_with_trec_qrels(tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("1 Q0 a 1 3.0 x\n1 Q0 b 2 2.0 x\n2 Q0 c 1 1.0 x\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 b 1\n2 0 c 2\n2 0 d 1\n")
    output = tmp_path / "scores.json"
    result = invoke("eval", "--run", run, "--qrels", qrels, "-m", "RR P@1 R@10", "--output", output)
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text())
    assert report["metrics"] == {"RR": pytest.approx(0.75), "P@1": pytest.approx(0.5), "R@10": pytest.approx(0.75)}
    assert report["queries"] == 2 and report["ignore_identical_ids"] is False


# -- errors instead of 0.0000 ------------------------------------------------------------------------------
def test_eval_run_whose_query_ids_do_not_match(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("Q1 Q0 d1 1 3.0 x\nQ2 Q0 d3 1 3.0 x\n")  # upper-case ids: none match
    result = invoke("eval", "--run", run, "--qrels", tiny_data / "qrels" / "test.tsv")
    assert result.exit_code == 1
    assert f"none of the 5 queries in {tiny_data / 'qrels' / 'test.tsv'} appear in the run in {run}" in result.stderr
    assert "0.0000" not in result.stdout


def test_eval_run_whose_doc_ids_do_not_match(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 doc-1 1 3.0 x\nq2 Q0 doc-3 1 3.0 x\n")
    result = invoke("eval", "--run", run, "--qrels", tiny_data)  # a BEIR folder: its qrels/test.tsv
    assert result.exit_code == 1
    assert "share none with the 7 documents judged in" in result.stderr and "is this the right index?" in result.stderr


def test_eval_run_that_misses_some_queries_warns(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 3.0 x\nq9 Q0 d1 1 3.0 x\n")
    result = invoke("eval", "--run", run, "--qrels", tiny_data, "-m", "RR")
    assert result.exit_code == 0, result.output
    assert "4 of the 5 queries in" in result.stderr and "count as 0" in result.stderr
    assert "1 queries of the run" in result.stderr and "are ignored" in result.stderr
    assert metric_rows(result.stdout)["RR"] == pytest.approx(0.2)


def test_eval_index_where_no_query_gets_a_hit(tiny_data: Path, tiny_bm25_index: Path, tmp_path: Path) -> None:
    data = tmp_path / "stop-words"
    shutil.copytree(tiny_data, data)
    (data / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": "the of and"}) + "\n" for i in range(1, 6))
    )
    result = invoke("eval", "--data", data, "--index", tiny_bm25_index)
    assert result.exit_code == 1
    assert f"index {tiny_bm25_index} holds no hits: no query retrieved any document" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--qrels", "QRELS"], 2, "--qrels needs --run FILE"),
        (["--qrels", "QRELS", "--run", "RUN", "--data", "DATA"], 2, "takes no --data"),
        (["--qrels", "QRELS", "--run", "RUN", "--index", "x"], 2, "takes no --data, --index"),
        ([], 2, "give --data DIR"),
        (["--qrels", "/no/qrels.tsv", "--run", "RUN"], 1, "qrels file not found"),
        (["--qrels", "QRELS", "--run", "/no/run.trec"], 1, "run file not found"),
    ],
)
def test_eval_run_usage_errors(tiny_data: Path, tmp_path: Path, args, code: int, message: str) -> None:
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 3.0 x\n")
    names = {"QRELS": str(tiny_data / "qrels" / "test.tsv"), "RUN": str(run), "DATA": str(tiny_data)}
    result = invoke("eval", *[names.get(a, a) for a in args])
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_eval_help_names_the_default_metrics() -> None:
    from sparsearch.cli._eval import DEFAULT_METRICS_TEXT
    from sparsearch.eval.metrics import DEFAULT_METRICS

    assert DEFAULT_METRICS_TEXT == " ".join(DEFAULT_METRICS)


def test_search_topics_on_an_engine_goes_through_batch_search(
    tiny_data: Path, tiny_bm25_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--backend opensearch` opens the alias through open_engine and searches the topics in batches
    (an engine stand-in over the embedded index: the real engine runs in tests/backends/engines)."""
    import sparsearch.backends.factory
    from sparsearch.backends.embedded.index import EmbeddedIndex

    opened: list[tuple[str, str, str | None]] = []
    batches: list[int] = []

    class EngineStandIn:
        def __init__(self, inner: EmbeddedIndex) -> None:
            self.inner = inner

        def __getattr__(self, name: str):  # noqa: ANN204 - delegate to the embedded index
            return getattr(self.inner, name)

        def search_batch(self, queries, top_k):  # noqa: ANN001, ANN202
            batches.append(len(queries))
            return self.inner.search_batch(queries, top_k)

    def open_engine(kind: str, *, alias: str, url: str | None = None) -> EngineStandIn:
        opened.append((kind, alias, url))
        return EngineStandIn(EmbeddedIndex.open(tiny_bm25_index))

    monkeypatch.setattr(sparsearch.backends.factory, "open_engine", open_engine)
    run = tmp_path / "engine.trec"
    result = invoke(
        "search", "--index", "tiny-alias", "--backend", "opensearch", "--url", "http://engine:9200",
        "--topics", tiny_data, "--run", run, "--batch-size", "2", "--hits", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert opened == [("opensearch", "tiny-alias", "http://engine:9200")]
    assert batches == [2, 2, 1]  # 5 topics in batches of 2
    assert {line.split()[0] for line in run.read_text().splitlines()} == {"q1", "q2", "q3", "q4"}
