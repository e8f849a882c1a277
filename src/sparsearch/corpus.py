"""Read corpora: a BEIR folder (``corpus.jsonl`` inside) or a JSONL file, validated line by line.

Each line is a JSON object ``{"_id": str|int, "title": str (optional), "text": str}``. Problems are
reported as :class:`~sparsearch.errors.CorpusFormatError` naming the file, the line and the field,
never skipped silently. Documents whose title and text are both empty are kept (they are counted
and reported by the indexer; no query can match them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from sparsearch.errors import CorpusFormatError
from sparsearch.types import Document


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
        CorpusFormatError: invalid UTF-8 or JSON, not an object, or a missing / empty ``_id`` (file and line).
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
    if not isinstance(record_id, str) or not record_id.strip():
        raise CorpusFormatError(path, 'field "_id" is missing or not a non-empty string', line_no)
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
        CorpusFormatError: missing file, invalid JSON or UTF-8, missing ``_id``/``text`` field, or a
            duplicate ``_id`` (with the line of its first occurrence).
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
            id or text, or a duplicate id (naming the item's position).
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
            if not isinstance(doc_id, str) or not doc_id.strip():
                raise CorpusFormatError(where, f'item {position}: "_id" (or "id") is missing or not a non-empty string')
            text, title = item.get("text"), item.get("title") or ""
            if not isinstance(text, str) or not isinstance(title, str):
                raise CorpusFormatError(where, f'item {position} ({doc_id!r}): "text" and "title" must be strings')
            document = Document(doc_id=doc_id, title=title, text=text)
        else:
            raise CorpusFormatError(
                where, f"item {position} is a {type(item).__name__}; pass Documents, dicts or strings"
            )
        first = seen.setdefault(document.doc_id, position)
        if first != position:
            raise CorpusFormatError(where, f"duplicate id {document.doc_id!r} (items {first} and {position})")
        yield document
