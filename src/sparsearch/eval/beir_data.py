"""Load the queries and relevance judgements of a BEIR-format collection.

A BEIR folder holds ``corpus.jsonl``, ``queries.jsonl`` (one ``{"_id": str|int, "text": str}``
object a line) and ``qrels/<split>.tsv`` (a ``query-id corpus-id score`` header, then one
tab-separated judgement a line, integer grades). The format is the one of ``beir``'s
``GenericDataLoader`` (https://github.com/beir-cellar/beir, Apache-2.0); this small reader replaces
it so that evaluation needs neither beir nor the torch it pulls in, and so that every problem names
its file and line, like :mod:`sparsearch.corpus`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparsearch.corpus import parse_record
from sparsearch.errors import CorpusFormatError

QUERIES_FILE = "queries.jsonl"


@dataclass
class BeirTopics:
    """Queries and relevance judgements of one split.

    Attributes:
        queries: ``query_id -> text``, only queries that have judgements (in the qrels' order).
        qrels: ``query_id -> {doc_id: grade}``.
    """

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of every non-blank line of a UTF-8 file."""
    lines: list[tuple[int, str]] = []
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise CorpusFormatError(
                    path, f"not valid UTF-8 at byte {error.start}; re-encode the file as UTF-8", line_no
                ) from None
            if text.strip():
                lines.append((line_no, text.rstrip("\r\n")))
    return lines


def read_queries(path: Path) -> dict[str, str]:
    """``query_id -> text`` of a ``queries.jsonl`` file, in file order.

    Raises:
        CorpusFormatError: invalid JSON, a missing or non-string ``_id``/``text``, or a duplicate ``_id``.
    """
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line_no, text in _lines(path):
        record, query_id = parse_record(text, path, line_no)
        if not isinstance(record.get("text"), str):
            raise CorpusFormatError(path, f'query {query_id!r}: field "text" is missing or not a string', line_no)
        first = first_line.setdefault(query_id, line_no)
        if first != line_no:
            raise CorpusFormatError(path, f"duplicate _id {query_id!r} (first on line {first})", line_no)
        queries[query_id] = record["text"]
    return queries


def read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Judgements of a ``qrels/<split>.tsv`` file and the line where each query is first judged.

    The first line is skipped when it is the header (its score is not an integer), as beir does. A
    repeated ``(query, document)`` pair keeps its last grade.

    Raises:
        CorpusFormatError: a line without exactly three tab-separated fields, or a score that is not an integer.
    """
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[str, int] = {}
    for position, (line_no, text) in enumerate(_lines(path)):
        fields = text.split("\t")
        if len(fields) != 3:
            raise CorpusFormatError(
                path, f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}", line_no
            )
        query_id, doc_id, score = (field.strip() for field in fields)
        try:
            grade = int(score)
        except ValueError:
            if position == 0:
                continue  # the "query-id corpus-id score" header
            raise CorpusFormatError(path, f"score {score!r} is not an integer", line_no) from None
        if not query_id or not doc_id:
            raise CorpusFormatError(path, "empty query-id or corpus-id", line_no)
        qrels.setdefault(query_id, {})[doc_id] = grade
        first_line.setdefault(query_id, line_no)
    return qrels, first_line


def load_beir_topics(data_dir: str | Path, split: str = "test") -> BeirTopics:
    """Queries and qrels of ``data_dir`` (``queries.jsonl``, ``qrels/<split>.tsv``).

    Raises:
        CorpusFormatError: a file is missing or malformed (the message names file and line), or qrels
            name a query that does not exist.
    """
    data_dir = Path(data_dir)
    for required in ("corpus.jsonl", QUERIES_FILE, f"qrels/{split}.tsv"):
        if not (data_dir / required).is_file():
            raise CorpusFormatError(
                data_dir / required,
                f"not found; a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/{split}.tsv",
            )
    texts = read_queries(data_dir / QUERIES_FILE)
    qrels_file = data_dir / "qrels" / f"{split}.tsv"
    qrels, first_line = read_qrels(qrels_file)
    for query_id, line_no in first_line.items():
        if query_id not in texts:
            raise CorpusFormatError(qrels_file, f"judges query {query_id!r} which {QUERIES_FILE} lacks", line_no)
    return BeirTopics(queries={query_id: texts[query_id] for query_id in qrels}, qrels=qrels)
