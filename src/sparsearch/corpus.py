"""Read corpora: a BEIR folder (``corpus.jsonl`` inside) or a JSONL file, validated line by line.

Each line is a JSON object ``{"_id": str|int, "title": str (optional), "text": str}``. Problems are
reported as :class:`~sparsearch.errors.CorpusFormatError` naming the file, the line and the field,
never skipped silently. Documents whose title and text are both empty are kept (they are counted
and reported by the indexer; no query can match them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from sparsearch.errors import CorpusFormatError
from sparsearch.types import Document

MAX_DOC_ID_CHARS = 256
"""Longest document id, in characters (the corpus reader and the HTTP API share :func:`doc_id_problem`)."""
MAX_DOC_ID_BYTES = 512
"""Longest document id in UTF-8 bytes: OpenSearch's and Elasticsearch's ``_id`` limit, so any index
built here can be loaded into them."""

ID_CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"
"""Never in an id (a regex class body): C0 controls, DEL and C1 controls, so an id prints on one line."""

ID_SPACE_CHARS = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
"""Whitespace that is not a control character (a regex class body). ECMAScript's ``\\s`` (JSON Schema
patterns) and Python's ``str.isspace`` agree on it, except U+FEFF, which counts as whitespace here."""

DOC_ID_PATTERN = rf"^[{ID_SPACE_CHARS}]*[^{ID_SPACE_CHARS}{ID_CONTROL_CHARS}][^{ID_CONTROL_CHARS}]*$"
""":func:`doc_id_problem`'s rule as a regex, for the API's JSON Schema (length and Unicode checks aside).

The leading run can only hold whitespace and the next character cannot, so a string matches in one
way at most: linear time in any backtracking engine. (The earlier ``^[^C]*[^SC][^C]*$`` tried every
split of a long id before failing: quadratic time, seconds for a 10,000-character id.)"""

_ID_CONTROL = re.compile(f"[{ID_CONTROL_CHARS}]")
_ID_NOT_SPACE = re.compile(f"[^{ID_SPACE_CHARS}]")


def _shorten(doc_id: str, chars: int = 40) -> str:
    """``repr`` of the start of ``doc_id``, for messages (an id can be megabytes long)."""
    return repr(doc_id if len(doc_id) <= chars else doc_id[:chars] + "...")


def doc_id_problem(doc_id: str) -> str | None:
    """Why ``doc_id`` cannot be a document id, or ``None`` when it can: the one rule of the corpus
    reader and the HTTP API.

    An id has 1 to :data:`MAX_DOC_ID_CHARS` characters and at most :data:`MAX_DOC_ID_BYTES` bytes in
    UTF-8 (OpenSearch and Elasticsearch refuse longer ``_id`` values), no control character (U+0000-U+001F,
    U+007F-U+009F), at least one character that is not whitespace, and no unpaired UTF-16 surrogate.
    The length is checked first and every check is one linear pass, so a huge id is refused at once.

    Returns:
        The problem as a phrase that follows the word "id" (``"is empty or only whitespace: ..."``).
    """
    if len(doc_id) > MAX_DOC_ID_CHARS:
        return f"has {len(doc_id):,} characters; an id has at most {MAX_DOC_ID_CHARS}"
    size = len(doc_id.encode("utf-8", "surrogatepass"))
    if size > MAX_DOC_ID_BYTES:
        return f"takes {size:,} bytes in UTF-8; an id takes at most {MAX_DOC_ID_BYTES} (the engines' limit)"
    control = _ID_CONTROL.search(doc_id)
    if control:
        return (
            f"contains control characters (U+{ord(control.group()):04X} at character {control.start()}): "
            "ids must be printable"
        )
    if not _ID_NOT_SPACE.search(doc_id):
        return "is empty or only whitespace: every document needs an id"
    try:
        doc_id.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"contains an unpaired UTF-16 surrogate at character {error.start}; use valid Unicode text"
    return None


def resolve_corpus_file(path: Path) -> Path:
    """The JSONL file behind ``path``: ``path/corpus.jsonl`` for a BEIR folder, else ``path`` itself."""
    if path.is_dir():
        candidate = path / "corpus.jsonl"
        if not candidate.is_file():
            raise CorpusFormatError(
                path, "is a folder without corpus.jsonl; pass a BEIR folder or a corpus .jsonl file"
            )
        return candidate
    if not path.exists():
        raise CorpusFormatError(path, "not found; pass a BEIR folder (with corpus.jsonl) or a corpus .jsonl file")
    return path


def parse_record(raw: bytes | str, path: Path, line_no: int) -> tuple[dict, str]:
    """One JSONL line of a BEIR file (corpus or queries) as ``(record, _id)``; an integer ``_id`` becomes a string.

    Raises:
        CorpusFormatError: invalid UTF-8 or JSON, not an object, or an ``_id`` missing or against
            :func:`doc_id_problem`'s rule (file and line).
    """
    try:
        record = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError as error:
        raise CorpusFormatError(
            path, f"not valid UTF-8 at byte {error.start}; re-encode the file as UTF-8", line_no
        ) from None
    except json.JSONDecodeError as error:
        raise CorpusFormatError(path, f"invalid JSON ({error.msg} at column {error.colno})", line_no) from None
    if not isinstance(record, dict):
        raise CorpusFormatError(path, f"expected a JSON object, got {type(record).__name__}", line_no)
    record_id = record.get("_id")
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    if not isinstance(record_id, str):
        raise CorpusFormatError(path, 'field "_id" is missing or not a non-empty string', line_no)
    problem = doc_id_problem(record_id)
    if problem:
        raise CorpusFormatError(path, f'field "_id" {_shorten(record_id)} {problem}', line_no)
    return record, record_id


def _parse_line(raw: bytes, path: Path, line_no: int) -> Document:
    record, doc_id = parse_record(raw, path, line_no)
    if "text" not in record:
        raise CorpusFormatError(
            path, f'document {doc_id!r} has no "text" field (use "" for a title-only document)', line_no
        )
    text = record["text"]
    title = record.get("title") or ""
    if not isinstance(text, str):
        raise CorpusFormatError(path, f'document {doc_id!r}: field "text" must be a string', line_no)
    if not isinstance(title, str):
        raise CorpusFormatError(path, f'document {doc_id!r}: field "title" must be a string', line_no)
    return Document(doc_id=doc_id, title=title, text=text)


def iter_corpus(path: str | Path) -> Iterator[Document]:
    """Yield the documents of a BEIR folder or JSONL file, in file order.

    Raises:
        CorpusFormatError: missing file, invalid JSON or UTF-8, missing ``_id``/``text`` field, an ``_id``
            against :func:`doc_id_problem`'s rule, or a duplicate ``_id`` (with the line of its first occurrence).
    """
    corpus_file = resolve_corpus_file(Path(path))
    seen: dict[str, int] = {}
    with corpus_file.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            document = _parse_line(raw, corpus_file, line_no)
            first = seen.setdefault(document.doc_id, line_no)
            if first != line_no:
                raise CorpusFormatError(
                    corpus_file,
                    f"duplicate _id {document.doc_id!r} (first on line {first}); ids must be unique",
                    line_no,
                )
            yield document


def count_lines(path: str | Path) -> int:
    """Number of non-blank lines of the corpus file behind ``path`` (for progress bars)."""
    with resolve_corpus_file(Path(path)).open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def is_corpus_path(data: object) -> bool:
    """Whether ``data`` names a file or folder (a BEIR folder, a JSONL file, an encode output)."""
    return isinstance(data, str | Path)


def iter_documents(data: str | Path | Iterable[Document | Mapping[str, object] | str]) -> Iterator[Document]:
    """Yield the documents of a corpus path (:func:`iter_corpus`) or of documents held in memory.

    In memory, each item is a :class:`~sparsearch.types.Document`, a dict
    ``{"_id" or "id": str|int, "title": str (optional), "text": str}`` or a plain string (its id is its
    position: ``"0"``, ``"1"``...).

    Raises:
        CorpusFormatError: as :func:`iter_corpus`; in memory, an item of another type, a dict without
            id or text, an id against :func:`doc_id_problem`'s rule, or a duplicate id (naming the item's
            position).
    """
    if is_corpus_path(data):
        yield from iter_corpus(data)  # type: ignore[arg-type]
        return
    where = Path("<documents>")
    seen: dict[str, int] = {}
    for position, item in enumerate(data):  # type: ignore[union-attr]
        if isinstance(item, Document):
            document = item
        elif isinstance(item, str):
            document = Document(doc_id=str(position), text=item)
        elif isinstance(item, Mapping):
            doc_id = item.get("_id", item.get("id"))
            if isinstance(doc_id, int) and not isinstance(doc_id, bool):
                doc_id = str(doc_id)
            if not isinstance(doc_id, str):
                raise CorpusFormatError(where, f'item {position}: "_id" (or "id") is missing or not a non-empty string')
            text, title = item.get("text"), item.get("title") or ""
            if not isinstance(text, str) or not isinstance(title, str):
                raise CorpusFormatError(where, f'item {position} ({doc_id!r}): "text" and "title" must be strings')
            document = Document(doc_id=doc_id, title=title, text=text)
        else:
            raise CorpusFormatError(
                where, f"item {position} is a {type(item).__name__}; pass Documents, dicts or strings"
            )
        problem = doc_id_problem(document.doc_id)
        if problem:
            raise CorpusFormatError(where, f"item {position}: id {_shorten(document.doc_id)} {problem}")
        first = seen.setdefault(document.doc_id, position)
        if first != position:
            raise CorpusFormatError(where, f"duplicate id {document.doc_id!r} (items {first} and {position})")
        yield document
