"""The BEIR queries/qrels reader: beir's results on well-formed folders, file:line errors otherwise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sparsearch.errors import CorpusFormatError
from sparsearch.eval.beir_data import BeirTopics, load_beir_topics
from tests.conftest import bundled_collection


def write_folder(root: Path, queries: list[object] | str, qrels: str, split: str = "test") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n', encoding="utf-8")
    if isinstance(queries, str):
        (root / "queries.jsonl").write_text(queries, encoding="utf-8")
    else:
        (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / f"{split}.tsv").write_text(qrels, encoding="utf-8")
    return root


HEADER = "query-id\tcorpus-id\tscore\n"


def test_tiny_fixture(tiny_data: Path) -> None:
    topics = load_beir_topics(tiny_data)
    assert isinstance(topics, BeirTopics)
    assert list(topics.queries) == ["q1", "q2", "q3", "q4", "q5"]
    assert topics.queries["q3"] == "buckling of cylindrical shells"
    assert topics.qrels["q1"] == {"d1": 2, "d8": 1}


def test_bundled_collection_counts() -> None:
    """Counts beir's GenericDataLoader gave on the same files (judged queries only)."""
    topics = load_beir_topics(bundled_collection("cranfield"))
    assert len(topics.queries) == 225 and set(topics.queries) == set(topics.qrels)
    assert sum(len(judged) for judged in topics.qrels.values()) == 1612


def test_only_judged_queries_in_qrels_order_with_int_ids(tmp_path: Path) -> None:
    data = write_folder(
        tmp_path,
        [{"_id": 1, "text": "one"}, {"_id": "2", "text": "two"}, {"_id": "3", "text": "unjudged"}],
        HEADER + "2\td1\t1\n1\td1\t0\n2\td2\t2\n2\td1\t3\n\n",
    )
    topics = load_beir_topics(data)
    assert topics == BeirTopics(queries={"2": "two", "1": "one"}, qrels={"2": {"d1": 3, "d2": 2}, "1": {"d1": 0}})


def test_a_file_without_header_keeps_its_first_judgement(tmp_path: Path) -> None:
    data = write_folder(tmp_path, [{"_id": "q", "text": "t"}], "q\td1\t1\nq\td2\t1\n")
    assert load_beir_topics(data).qrels == {"q": {"d1": 1, "d2": 1}}


def test_other_split(tmp_path: Path) -> None:
    data = write_folder(tmp_path, [{"_id": "q", "text": "t"}], HEADER + "q\td1\t1\n", split="dev")
    assert load_beir_topics(data, "dev").qrels == {"q": {"d1": 1}}
    with pytest.raises(CorpusFormatError, match=r"qrels/test\.tsv: not found"):
        load_beir_topics(data)


@pytest.mark.parametrize("missing", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    data = write_folder(tmp_path, [{"_id": "q", "text": "t"}], HEADER)
    (data / missing).unlink()
    with pytest.raises(CorpusFormatError, match=f"{missing}: not found; a BEIR folder needs"):
        load_beir_topics(data)


@pytest.mark.parametrize(
    ("queries", "qrels", "where", "message"),
    [
        ([{"_id": "q", "text": "t"}], HEADER + "q\td1\t1\nx\td1\t1\n", "qrels/test.tsv:3", "judges query 'x' which"),
        ([{"_id": "q", "text": "t"}], HEADER + "q\td1\n", "qrels/test.tsv:2", "expected 3 tab-separated fields"),
        ([{"_id": "q", "text": "t"}], HEADER + "q\td1\t1\nq\td2\thigh\n", "qrels/test.tsv:3", "score 'high' is not"),
        ([{"_id": "q", "text": "t"}], HEADER + "q\t\t1\n", "qrels/test.tsv:2", "empty query-id or corpus-id"),
        ('{"_id": "q", "text": "t"}\n{"_id": "r", \n', HEADER, "queries.jsonl:2", "invalid JSON"),
        ('["q", "t"]\n', HEADER, "queries.jsonl:1", "expected a JSON object, got list"),
        ([{"text": "t"}], HEADER, "queries.jsonl:1", 'field "_id" is missing'),
        ([{"_id": "q"}], HEADER, "queries.jsonl:1", "query 'q': field \"text\" is missing"),
        ([{"_id": "q", "text": "a"}, {"_id": "q", "text": "b"}], HEADER, "queries.jsonl:2", "duplicate _id 'q'"),
    ],
)
def test_malformed_files_name_file_and_line(
    tmp_path: Path, queries: list[object] | str, qrels: str, where: str, message: str
) -> None:
    data = write_folder(tmp_path, queries, qrels)
    with pytest.raises(CorpusFormatError) as caught:
        load_beir_topics(data)
    assert str(caught.value).startswith(f"{data / where}: ")
    assert message in str(caught.value)


def test_invalid_utf8_names_the_line(tmp_path: Path, tiny_data: Path) -> None:
    data = tmp_path / "tiny"
    shutil.copytree(tiny_data, data)
    with (data / "queries.jsonl").open("ab") as handle:
        handle.write(b'{"_id": "q9", "text": "caf\xe9"}\n')
    with pytest.raises(CorpusFormatError, match=r"queries\.jsonl:6: not valid UTF-8 at byte"):
        load_beir_topics(data)
