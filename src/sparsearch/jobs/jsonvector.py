"""Anserini's ``JsonVectorCollection``: sparse vectors as JSON lines, with integer weights (impacts).

This is the format pyserini's prebuilt "encoded corpora" use and the one its Lucene impact indexer
reads (``python -m pyserini.index.lucene --collection JsonVectorCollection --impact --pretokenized``).
One document per line::

    {"id": "184", "title": "...", "contents": "the text", "vector": {"flow": 412, "wing": 97}}

``title`` is ours (Anserini keeps unknown fields without indexing them); ``vector`` maps a token to a
positive integer. Lucene stores an impact as a term frequency, hence integers: a float weight ``w``
becomes ``round(w x scale)`` and tokens that round to 0 are dropped, so each weight is off by at most
``0.5 / scale`` (:mod:`sparsearch.backends.lucene.impacts`).

``sparsearch export`` writes this layout (read back by ``sparsearch index --data EXPORT``)::

    EXPORT/
      sparsearch-export.json   the sidecar (:class:`ExportInfo`): scale, encoder fingerprint, counts,
                               the pyserini command that indexes docs/
      encoder/                 the encoder that made the vectors (queries of an imported index use it)
      docs/part-00000.jsonl    the collection, at most ``docs_per_file`` documents per file

The collection sits in its own folder because Anserini reads every ``.json``/``.jsonl`` file under
``--input`` as documents: the sidecar and the encoder's JSON files must stay out of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sparsearch.errors import CorpusFormatError, IndexFormatError, UsageError
from sparsearch.types import Document, EncoderFingerprint, SparseVector

SIDECAR_FILE = "sparsearch-export.json"
DOCS_DIR = "docs"
ENCODER_DIR = "encoder"
FORMAT = "sparsearch-jsonvector"
FORMAT_VERSION = 1
_SUFFIXES = (".jsonl", ".json")


@dataclass(frozen=True)
class ExportInfo:
    """The sidecar ``sparsearch-export.json`` of an export.

    Attributes:
        scale: document weights were multiplied by this and rounded (divide an impact by it to get the weight).
        max_impact: the integer the largest weight mapped to (when the scale was chosen by that rule).
        encoder: the fingerprint of the encoder that made the vectors (saved in ``encoder/``).
        documents: documents written; ``postings``: ``(token, impact)`` pairs written.
        dropped: weights that rounded to 0 and were left out.
        files: the collection's files, relative to ``docs/``.
        source_index: the index exported.
        pyserini_command: the command that builds a Lucene impact index from ``docs/``.
    """

    scale: float
    max_impact: int | None
    encoder: EncoderFingerprint
    documents: int
    postings: int
    dropped: int
    files: list[str]
    source_index: str
    pyserini_command: str
    created_at: str
    sparsearch_version: str
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "encoder": self.encoder.to_dict()}

    @classmethod
    def read(cls, folder: Path) -> ExportInfo:
        """Read ``folder/sparsearch-export.json``.

        Raises:
            IndexFormatError: unreadable, or another format or version.
        """
        path = folder / SIDECAR_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format {data.get('format')!r} version {data.get('format_version')!r}")
            data["encoder"] = EncoderFingerprint.from_dict(data["encoder"])
            return cls(**data)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise IndexFormatError(
                f"{path}: not a sparsearch export sidecar ({error}); re-export with sparsearch export, or remove the "
                "file and pass --model and --scale to read the vectors as a foreign collection"
            ) from error


def pyserini_index_command(docs: Path, index: Path, threads: int = 4) -> list[str]:
    """pyserini's command that builds a Lucene impact index from a JsonVectorCollection folder.

    ``--pretokenized`` keeps our tokens as they are (no Lucene analyzer); ``--impact`` scores a match by
    its integer weight (Anserini's ``ImpactSimilarity``: query impact x document impact, no length norm).
    """
    return [
        "python", "-m", "pyserini.index.lucene", "--collection", "JsonVectorCollection",
        "--input", str(docs), "--index", str(index), "--generator", "DefaultLuceneDocumentGenerator",
        "--threads", str(threads), "--impact", "--pretokenized", "--optimize",
    ]  # fmt: skip


def collection_files(folder: Path) -> list[Path]:
    """The ``.jsonl``/``.json`` files of a JsonVectorCollection folder, sorted by name (``docs/`` of an export)."""
    root = folder / DOCS_DIR if (folder / SIDECAR_FILE).is_file() else folder
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES))


def is_jsonvector_folder(path: Path) -> bool:
    """Whether ``path`` is an export (has the sidecar) or a folder whose first collection file's first
    record has a ``vector`` field (a BEIR folder's corpus.jsonl has none)."""
    if not path.is_dir():
        return False
    if (path / SIDECAR_FILE).is_file():
        return True
    for file in collection_files(path):
        with file.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        return False
                    return isinstance(record, dict) and "vector" in record
    return False


class JsonVectorCollection:
    """Reads a JsonVectorCollection folder back into documents and float weights (``impact / scale``).

    Args:
        folder: an export (with its sidecar: its scale and encoder are used) or a folder of ``.jsonl``
            files written by another tool (``scale`` must be given).
        scale: divide impacts by this; for an export it must be left out or equal the sidecar's.

    Raises:
        UsageError: no scale for a foreign collection, a non-positive scale, or one that contradicts the sidecar.
        CorpusFormatError: a folder without collection files.
        IndexFormatError: a damaged sidecar.
    """

    def __init__(self, folder: Path, scale: float | None = None) -> None:
        self.folder = folder
        self.info = ExportInfo.read(folder) if (folder / SIDECAR_FILE).is_file() else None
        if scale is not None and (not math.isfinite(scale) or scale <= 0):
            raise UsageError(f"--scale must be a positive number (got {scale})")
        if self.info is not None:
            if scale is not None and not math.isclose(scale, self.info.scale, rel_tol=1e-9):
                raise UsageError(
                    f"--scale {scale} contradicts {folder / SIDECAR_FILE} (scale {self.info.scale}); leave --scale out"
                )
            scale = self.info.scale
        elif scale is None:
            raise UsageError(
                f"{folder} holds integer vectors without a {SIDECAR_FILE} sidecar: pass --scale (the factor the "
                "weights were multiplied by, e.g. 100 for pyserini's encoded corpora; 1 keeps the integers) and "
                "--model (the encoder that encodes the queries)"
            )
        self.scale = scale
        self.files = collection_files(folder)
        if not self.files:
            raise CorpusFormatError(folder, "no .jsonl or .json files: not a JsonVectorCollection folder")

    @property
    def encoder_dir(self) -> Path | None:
        """The encoder saved with an export (``None`` for a foreign collection)."""
        return self.folder / ENCODER_DIR if self.info is not None else None

    def count(self) -> int:
        """Number of documents (non-blank lines)."""
        if self.info is not None:
            return self.info.documents
        total = 0
        for file in self.files:
            with file.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        return total

    def is_empty(self) -> bool:
        return self.count() == 0

    def iter_documents(self) -> Iterator[Document]:
        """The documents alone (for fitting an encoder's statistics on their text)."""
        for document, _ in self:
            yield document

    def __iter__(self) -> Iterator[tuple[Document, SparseVector]]:
        """``(document, token -> impact / scale)`` in file and line order.

        Raises:
            CorpusFormatError: a malformed line, naming file, line and field; a repeated id (both lines).
        """
        seen: dict[str, tuple[str, int]] = {}
        for file in self.files:
            with file.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    document, vector = _parse_line(line, file, number, self.scale)
                    if document.doc_id in seen:
                        first_file, first_line = seen[document.doc_id]
                        raise CorpusFormatError(
                            file,
                            f'duplicate "id" {document.doc_id!r} (first at {first_file}:{first_line}); ids must be '
                            "unique: remove or rename one of them",
                            line=number,
                        )
                    seen[document.doc_id] = (file.name, number)
                    yield document, vector


def _parse_line(line: str, file: Path, number: int, scale: float) -> tuple[Document, SparseVector]:
    """One record -> ``(Document, weights)``; every problem names the file, the line and the field."""

    def fail(message: str) -> CorpusFormatError:
        return CorpusFormatError(file, message, line=number)

    try:
        record = json.loads(line)
    except ValueError as error:
        raise fail(f"not valid JSON ({error}); each line must be one object with id, contents and vector") from None
    if not isinstance(record, dict):
        raise fail(f"expected a JSON object with id, contents and vector, got {type(record).__name__}")
    doc_id = record.get("id", record.get("_id"))
    if doc_id is None:
        raise fail('missing field "id" (the document id)')
    if not isinstance(doc_id, str | int) or isinstance(doc_id, bool) or str(doc_id).strip() == "":
        raise fail(f'field "id" must be a non-empty string, got {doc_id!r}')
    contents = record.get("contents", "")
    title = record.get("title", "")
    for name, value in (("contents", contents), ("title", title)):
        if not isinstance(value, str):
            raise fail(f'field "{name}" must be a string, got {type(value).__name__}')
    vector = record.get("vector")
    if not isinstance(vector, dict):
        raise fail('missing field "vector" (an object mapping each token to a positive integer weight)')
    weights: SparseVector = {}
    for token, impact in vector.items():
        if (
            isinstance(impact, bool)
            or not isinstance(impact, int | float)
            or not math.isfinite(impact)
            or impact != int(impact)
        ):
            raise fail(
                f'field "vector" token {token!r}: weight {impact!r} is not an integer (Lucene impacts are integer '
                "term frequencies: multiply weights by a scale and round them)"
            )
        if impact < 0:
            raise fail(f'field "vector" token {token!r}: weight {impact} is negative; impacts must be >= 0')
        if impact > 0:  # a 0 is a token that was quantised away: it cannot match
            weights[token] = int(impact) / scale
    return Document(doc_id=str(doc_id), title=title, text=contents), weights
