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


def read_trec_qrels(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Judgements of a TREC qrels file (``qid iteration docid grade``, whitespace-separated), as
    :func:`read_qrels` returns them. A repeated ``(query, document)`` pair keeps its last grade.

    Raises:
        CorpusFormatError: a line without 4 fields or a grade that is not an integer.
    """
    qrels: dict[str, dict[str, int]] = {}
    first_line: dict[str, int] = {}
    for line_no, text in _lines(path):
        fields = text.split()
        if len(fields) != 4:
            raise CorpusFormatError(
                path, f"expected 4 fields (query-id iteration doc-id grade) in TREC qrels, got {len(fields)}", line_no
            )
        query_id, _, doc_id, grade = fields
        try:
            qrels.setdefault(query_id, {})[doc_id] = int(grade)
        except ValueError:
            raise CorpusFormatError(path, f"grade {grade!r} is not an integer", line_no) from None
        first_line.setdefault(query_id, line_no)
    return qrels, first_line


def resolve_qrels_path(path: str | Path, split: str = "test") -> Path:
    """``path`` itself, or ``path/qrels/<split>.tsv`` when ``path`` is a BEIR folder.

    Raises:
        CorpusFormatError: nothing readable there.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "qrels" / f"{split}.tsv"
    if not path.is_file():
        raise CorpusFormatError(path, "qrels file not found")
    return path


def load_qrels(path: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """Judgements of a qrels file in either format, detected from its first line: BEIR's
    ``query-id<TAB>corpus-id<TAB>score`` (header optional) or TREC's ``qid iteration docid grade``.

    Args:
        path: the qrels file, or a BEIR folder (its ``qrels/<split>.tsv``).
        split: the split read from a BEIR folder.

    Returns:
        ``query_id -> {doc_id: grade}``, queries in file order.

    Raises:
        CorpusFormatError: missing file, no judgement, or a malformed line (file and line named).
    """
    path = resolve_qrels_path(path, split)
    lines = _lines(path)
    if not lines:
        raise CorpusFormatError(path, "holds no judgements")
    first = lines[0][1]
    if len(first.split("\t")) == 3:
        qrels, _ = read_qrels(path)
    elif len(first.split()) == 4:
        qrels, _ = read_trec_qrels(path)
    else:
        raise CorpusFormatError(
            path,
            "neither BEIR qrels (query-id<TAB>corpus-id<TAB>score) nor TREC qrels (qid iteration docid grade)",
            lines[0][0],
        )
    if not qrels:
        raise CorpusFormatError(path, "holds no judgements")
    return qrels


def read_topics(path: str | Path) -> dict[str, str]:
    """``query_id -> text`` of a topics file: BEIR's ``queries.jsonl`` (a ``.jsonl`` file, or a BEIR
    folder holding one) or pyserini's TSV topics (``qid<TAB>text`` a line).

    Raises:
        CorpusFormatError: missing file, no topic, malformed line or duplicate id (file and line named).
    """
    path = Path(path)
    if path.is_dir():
        path = path / QUERIES_FILE
    if not path.is_file():
        raise CorpusFormatError(path, "topics file not found")
    lines = _lines(path)
    if path.suffix == ".jsonl" or (lines and lines[0][1].lstrip().startswith("{")):
        topics = read_queries(path)
    else:
        topics = {}
        first_line: dict[str, int] = {}
        for line_no, text in lines:
            query_id, tab, query = text.partition("\t")
            query_id = query_id.strip()
            if not tab or not query_id:
                raise CorpusFormatError(path, "expected qid<TAB>text (pyserini's TSV topics)", line_no)
            first = first_line.setdefault(query_id, line_no)
            if first != line_no:
                raise CorpusFormatError(path, f"duplicate query id {query_id!r} (first on line {first})", line_no)
            topics[query_id] = query
    if not topics:
        raise CorpusFormatError(path, "holds no topics")
    return topics
