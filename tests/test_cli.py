"""The CLI end to end: index -> search -> eval, and one clear message (no traceback) for bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_index_search_eval_end_to_end(tiny_data: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    result = invoke("index", "--data", str(tiny_data), "--index", str(index))
    assert result.exit_code == 0, result.output
    assert "documents" in result.stdout and "postings" in result.stdout and "bytes on disk" in result.stdout
    assert "1 documents have no indexable text" in result.stderr and "d6" in result.stderr

    result = invoke("search", "--index", str(index), "--json", "--top-k", "2", "propeller slipstream lift")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [hit["id"] for hit in payload["hits"]] == ["d1", "d8"]
    assert payload["hits"][0]["title"] == "Wing in a slipstream"

    output, run = tmp_path / "report.json", tmp_path / "run.trec"
    result = invoke("eval", "--data", str(tiny_data), "--index", str(index), "--output", str(output), "--run", str(run))
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text())
    assert set(report["metrics"]) == {"ndcg@10", "recall@100", "recall@1000", "mrr@10", "map"}
    assert set(report["latency_ms"]) >= {"query_encode_p50", "search_p50", "search_p95"}
    assert set(report["index"]) == {"postings", "avg_terms_per_doc", "bytes"}
    assert report["docs"] == 8 and report["queries"] == 5
    assert report["postings_touched_per_query"] > 0
    first = run.read_text().splitlines()[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "default"  # the shipped trained model


def test_eval_without_index_builds_one(tiny_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "r.json"
    result = invoke("eval", "--data", str(tiny_data), "--model", "bm25-wordpiece", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert json.loads(output.read_text())["model"] == "bm25-wordpiece"


def test_eval_with_a_model_that_did_not_build_the_index(tiny_data: Path, tiny_bm25_index: Path) -> None:
    result = invoke("eval", "--data", str(tiny_data), "--index", str(tiny_bm25_index), "--model", "bm25-wordpiece")
    assert result.exit_code == 1
    assert "built with encoder 'bm25'" in result.stderr


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    ("corpus", "message"),
    [
        ('{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n', "corpus.jsonl:2: invalid JSON"),
        (
            '{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n',
            "corpus.jsonl:2: duplicate _id 'a' (first on line 1)",
        ),
        ('{"_id": "a", "title": "no text field"}\n', "corpus.jsonl:1: document 'a' has no \"text\" field"),
        ('{"text": "no id"}\n', 'corpus.jsonl:1: field "_id" is missing'),
        ('["not", "an", "object"]\n', "corpus.jsonl:1: expected a JSON object"),
        ('{"_id": "a", "text": 5}\n', 'field "text" must be a string'),
    ],
)
def test_malformed_corpus_names_file_line_and_field(tmp_path: Path, corpus: str, message: str) -> None:
    data = write(tmp_path / "corpus.jsonl", corpus)
    result = invoke("index", "--data", str(data), "--index", str(tmp_path / "index"))
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "index").exists()


def test_non_utf8_corpus(tmp_path: Path) -> None:
    data = tmp_path / "corpus.jsonl"
    data.write_bytes(b'{"_id": "a", "text": "caf\xe9"}\n')
    result = invoke("index", "--data", str(data), "--index", str(tmp_path / "index"))
    assert result.exit_code == 1 and "corpus.jsonl:1: not valid UTF-8" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["index", "--data", "/no/such/path", "--index", "IDX"], 1, "not found"),
        (["search", "--index", "IDX", ""], 2, "the query is empty"),
        (["search", "--index", "IDX", "   "], 2, "the query is empty"),
        (["search", "--index", "IDX", "--top-k", "0", "wing"], 2, "--top-k"),
        (["search", "--index", "IDX", "--top-k", "-3", "wing"], 2, "--top-k"),
        (["search", "--index", "/no/such/index", "wing"], 1, "no index at /no/such/index"),
        (
            ["index", "--data", "DATA", "--index", "IDX", "--model", "no-such-model"],
            1,
            "unknown model 'no-such-model'",
        ),
        (["eval", "--data", "/no/such/beir"], 1, "not found"),
        (["eval", "--data", "DATA", "--backend", "solr"], 2, "unknown --backend 'solr'"),
    ],
)
def test_bad_arguments_get_one_clear_message(tiny_data: Path, tiny_bm25_index: Path, args, code, message) -> None:
    args = [str(tiny_bm25_index) if a == "IDX" else str(tiny_data) if a == "DATA" else a for a in args]
    if args[0] == "index" and args[4] == str(tiny_bm25_index):
        args[4] = str(tiny_bm25_index.parent / "fresh")
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_existing_index_is_not_overwritten(tiny_data: Path, tiny_bm25_index: Path) -> None:
    result = invoke("index", "--data", str(tiny_data), "--index", str(tiny_bm25_index))
    assert result.exit_code == 1 and "already exists; pass --overwrite" in result.stderr
    result = invoke("index", "--data", str(tiny_data), "--index", str(tiny_bm25_index), "--overwrite")
    assert result.exit_code == 0, result.output


def test_stop_word_query_returns_no_hits(tiny_bm25_index: Path) -> None:
    result = invoke("search", "--index", str(tiny_bm25_index), "--json", "the of and")
    assert result.exit_code == 0 and json.loads(result.stdout)["hits"] == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('data = "x"\noutput = "y"\nbatch_queris = 3\n', "batch_queris: Extra inputs are not permitted"),
        ('data = "x"\noutput = "y"\nbatch_queries = 0\n', "batch_queries: Input should be greater than or equal to 1"),
        ('output = "y"\n', "data: Field required"),
        ("data = \n", "not valid TOML"),
    ],
)
def test_train_config_errors_name_the_field(tmp_path: Path, config: str, message: str) -> None:
    path = write(tmp_path / "run.toml", config)
    result = invoke("train", "--config", str(path))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_train_config_file_must_exist(tmp_path: Path) -> None:
    result = invoke("train", "--config", str(tmp_path / "missing.toml"))
    assert result.exit_code == 2 and "no such config file" in result.stderr


def test_train_reports_the_kept_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    from tests.encoders.test_semantic_two_channel import TOKENS

    config = write(
        tmp_path / "run.toml",
        f'data = "{tiny_data}"\noutput = "{tmp_path / "model"}"\ncandidate_tokens = {json.dumps(TOKENS)}\n'
        "top_k = 8\nmax_steps = 2\neval_every = 1\nbatch_queries = 2\nheldout_fraction = 0.3\n"
        "candidates_per_teacher = 3\n",
    )
    result = invoke("train", "--config", str(config))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "model.run" / "report.json").read_text())
    assert report["checkpoint_step"] in (0, 1, 2)
    assert f"step {report['checkpoint_step']} (lowest held-out KL)" in result.stdout
    evaluations = [json.loads(line) for line in (tmp_path / "model.run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["eval_step"] for r in evaluations if "eval_step" in r] == [0, 1, 2]


# -- a new user's first minutes: help, --json, serve on a busy port, eval on mismatched qrels ------------
COMMANDS = ["index", "search", "eval", "encode", "train", "adapt", "serve"]
WIDE = {"COLUMNS": "250"}  # no wrapping, so each option and model sits on one line


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_flags_as_flags(command: str | None) -> None:
    result = runner.invoke(app, [*([command] if command else []), "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    for type_name in ("<bool>", "BOOLEAN"):
        assert type_name not in result.stdout


@pytest.mark.parametrize(
    ("command", "flag", "text"),
    [("index", "--overwrite", "Replace"), ("encode", "--overwrite", "Delete"), ("search", "--json", "Print")],
)
def test_boolean_options_show_as_flags(command: str, flag: str, text: str) -> None:
    """The help text follows the flag directly: no type or value placeholder in between."""
    help_text = runner.invoke(app, [command, "--help"], env=WIDE).stdout
    assert re.search(rf"{flag}\s+{text} ", help_text), help_text


def test_index_help_lists_every_builtin_model() -> None:
    from sparsearch.encoders.registry import BUILTIN_MODELS

    result = runner.invoke(app, ["index", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.strip("│ ").split()) for line in result.stdout.splitlines()]
    assert len(BUILTIN_MODELS) >= 7
    for name, model in BUILTIN_MODELS.items():
        assert model.description and "\n" not in model.description
        assert any(line.startswith(f"{name} {model.description}") for line in lines), name


def test_search_json_has_the_rest_api_hit_fields(tiny_bm25_index: Path) -> None:
    """Same field names and values as POST /v1/search on the same index (plus the query)."""
    from tests.api.conftest import app_client, make_settings

    query = "propeller slipstream lift"
    result = invoke("search", "--index", str(tiny_bm25_index), "--json", "--top-k", "3", query)
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    with app_client(make_settings(f"tiny={tiny_bm25_index}")) as client:
        rest = client.post("/v1/search", json={"query": query, "top_k": 3}).json()
    assert set(cli) == set(rest) | {"query"} and cli["query"] == query and cli["model"] == rest["model"] == "bm25"
    assert (
        [set(hit) for hit in cli["hits"]]
        == [set(hit) for hit in rest["hits"]]
        == [{"id", "score", "title", "snippet"}] * 2
    )
    assert [hit["id"] for hit in cli["hits"]] == [hit["id"] for hit in rest["hits"]] == ["d1", "d8"]
    for mine, theirs in zip(cli["hits"], rest["hits"], strict=True):
        assert mine["title"] == theirs["title"] and mine["snippet"] == theirs["snippet"]
        assert mine["score"] == pytest.approx(theirs["score"])


def test_serve_on_a_busy_port_says_so(tiny_bm25_index: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke("serve", "--index", str(tiny_bm25_index), "--host", "127.0.0.1", "--port", str(port))
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"error: port {port} on 127.0.0.1 is in use; pick another with --port"
    assert "serving" not in result.output


def _beir_copy(tiny_data: Path, tmp_path: Path, qrels: str) -> Path:
    """tests/data/tiny with other qrels."""
    data = tmp_path / "beir"
    shutil.copytree(tiny_data, data)
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels, encoding="utf-8")
    return data


def test_eval_stops_when_no_judged_document_is_in_the_index(
    tiny_data: Path, tiny_bm25_index: Path, tmp_path: Path
) -> None:
    qrels = "".join(f"q{q}\tother-{q}-{d}\t1\n" for q in (1, 2, 3) for d in (1, 2, 3))
    data = _beir_copy(tiny_data, tmp_path, qrels)
    result = invoke("eval", "--data", str(data), "--index", str(tiny_bm25_index), "--output", str(tmp_path / "r.json"))
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert message.startswith("error: none of the 9 documents judged in") and "\n" not in message
    assert "other-1-1, other-1-2, other-1-3, other-2-1, other-2-2, ..." in message
    assert "0.0000" not in result.stdout and not (tmp_path / "r.json").exists()


def test_eval_warns_when_some_judged_documents_are_missing(
    tiny_data: Path, tiny_bm25_index: Path, tmp_path: Path
) -> None:
    data = _beir_copy(tiny_data, tmp_path, "q1\td1\t2\nq1\tgone-1\t1\nq3\td5\t1\nq3\tgone-2\t1\n")
    result = invoke("eval", "--data", str(data), "--index", str(tiny_bm25_index), "--output", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "2 of the 4 documents judged in" in warning[0]
    assert warning[0].endswith("are not in the index and count as misses: gone-1, gone-2")
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["ndcg@10"] > 0


# -- an empty corpus -------------------------------------------------------------------------------------
def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout", ["empty file", "blank lines", "empty BEIR folder"])
def test_empty_corpus_is_refused_and_the_existing_index_kept(
    tmp_path: Path, tiny_bm25_index: Path, layout: str
) -> None:
    if layout == "empty BEIR folder":
        (tmp_path / "beir").mkdir()
        data, corpus = tmp_path / "beir", write(tmp_path / "beir" / "corpus.jsonl", "")
    else:
        data = corpus = write(tmp_path / "corpus.jsonl", "" if layout == "empty file" else "\n \n")
    before = _files(tiny_bm25_index)
    result = invoke("index", "--data", str(data), "--index", str(tiny_bm25_index), "--model", "bm25", "--overwrite")
    assert result.exit_code == 1, result.output
    assert f"error: {corpus}: no documents" in result.stderr
    assert "check the path" in result.stderr and "--allow-empty" in result.stderr
    assert "Traceback" not in result.output
    assert _files(tiny_bm25_index) == before
    result = invoke("search", "--index", str(tiny_bm25_index), "--json", "propeller slipstream lift")
    assert result.exit_code == 0 and json.loads(result.stdout)["hits"]


def test_empty_corpus_with_allow_empty_builds_an_empty_index(tmp_path: Path) -> None:
    data, index = write(tmp_path / "corpus.jsonl", ""), tmp_path / "index"
    result = invoke("index", "--data", str(data), "--index", str(index), "--model", "bm25", "--allow-empty")
    assert result.exit_code == 0, result.output
    assert json.loads((index / "manifest.json").read_text())["n_docs"] == 0


@pytest.mark.parametrize("backend", ["opensearch", "elasticsearch"])
def test_empty_corpus_is_refused_before_an_engine_is_contacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    import sparsearch.backends.factory

    def no_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("an engine was opened for an empty corpus")

    monkeypatch.setattr(sparsearch.backends.factory, "open_engine", no_engine)
    data = write(tmp_path / "corpus.jsonl", "")
    result = invoke("index", "--data", str(data), "--index", "alias", "--backend", backend, "--model", "bm25")
    assert result.exit_code == 1, result.output
    assert f"error: {data}: no documents" in result.stderr and "--allow-empty" in result.stderr
    # --allow-empty goes on to the engine (which the patch refuses)
    result = invoke("index", "--data", str(data), "--index", "alias", "--backend", backend, "--allow-empty")
    assert result.exit_code == 1 and "an engine was opened for an empty corpus" in result.stderr
