"""TREC run files: ``qid Q0 docid rank score tag``, one line per retrieved document."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

from sparsearch.errors import CorpusFormatError, SparsearchError
from sparsearch.eval.metrics import Run


def _check_token(kind: str, value: str) -> None:
    if not value or any(ch.isspace() for ch in value):
        raise SparsearchError(f"{kind} {value!r} is empty or holds whitespace, which a TREC run cannot store")


def trec_lines(query_id: str, docs: Mapping[str, float], tag: str = "sparsearch") -> Iterator[str]:
    """The lines of one query, ranked by score descending, then doc_id ascending; rank starts at 1.

    Raises:
        SparsearchError: a query id, doc id or tag that is empty or holds whitespace (the format's
            field separator).
    """
    _check_token("query id", query_id)
    _check_token("run tag", tag)
    ranked = sorted(docs.items(), key=lambda item: (-item[1], item[0]))
    for rank, (doc_id, score) in enumerate(ranked, start=1):
        _check_token("doc id", doc_id)
        yield f"{query_id} Q0 {doc_id} {rank} {score:.6f} {tag}\n"


def write_trec_run(run: Run, path: str | Path, tag: str = "sparsearch") -> None:
    """Write ``run`` (see :func:`trec_lines`) through a temporary file renamed into place."""
    with TrecRunWriter(path, tag) as writer:
        for query_id, docs in run.items():
            writer.write(query_id, docs)


class TrecRunWriter:
    """Writes a run query by query into ``path.tmp``, renamed to ``path`` when the block ends without
    an error (an interrupted search leaves no partial run under the final name).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.trec"
        >>> with TrecRunWriter(path, tag="bm25") as writer:
        ...     writer.write("q1", {"d2": 1.5, "d1": 3.0})
        >>> print(path.read_text(), end="")
        q1 Q0 d1 1 3.000000 bm25
        q1 Q0 d2 2 1.500000 bm25
    """

    def __init__(self, path: str | Path, tag: str = "sparsearch") -> None:
        self.path = Path(path)
        self.tag = tag
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._handle: TextIO | None = None

    def __enter__(self) -> TrecRunWriter:
        _check_token("run tag", self.tag)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self._tmp.open("w", encoding="utf-8")
        return self

    def write(self, query_id: str, docs: Mapping[str, float]) -> None:
        """Append one query's ranked lines."""
        if self._handle is None:
            raise RuntimeError("TrecRunWriter.write outside its with block")
        self._handle.writelines(trec_lines(query_id, docs, self.tag))

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def read_trec_run(path: str | Path) -> Run:
    """Read a TREC run file (``qid Q0 docid rank score tag``, whitespace-separated) into
    ``query_id -> {doc_id: score}``. Ranks are not used: metrics rank by score, as trec_eval does.

    Raises:
        CorpusFormatError: the file is missing, not UTF-8, a line without 6 fields, a score that is
            not a number, or a document listed twice for one query (the message names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusFormatError(path, "run file not found")
    run: Run = {}
    first_line: dict[tuple[str, str], int] = {}
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                parts = raw.decode("utf-8").split()
            except UnicodeDecodeError as error:
                raise CorpusFormatError(path, f"not valid UTF-8 at byte {error.start}", line_no) from None
            if not parts:
                continue
            if len(parts) != 6:
                raise CorpusFormatError(
                    path, f"expected 6 fields (qid Q0 docid rank score tag), got {len(parts)}", line_no
                )
            query_id, _, doc_id, _, score, _ = parts
            try:
                value = float(score)
            except ValueError:
                raise CorpusFormatError(path, f"score {score!r} is not a number", line_no) from None
            first = first_line.setdefault((query_id, doc_id), line_no)
            if first != line_no:
                raise CorpusFormatError(
                    path, f"document {doc_id!r} listed twice for query {query_id!r} (first on line {first})", line_no
                )
            run.setdefault(query_id, {})[doc_id] = value
    return run
