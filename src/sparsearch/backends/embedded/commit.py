"""The manifest: which segments, tombstones and encoder folder make up an index's current commit.

Format 4 (written by this version; format 3 is the same manifest over segments of uncompressed CSC
arrays, see :mod:`sparsearch.backends.embedded.segment`)::

    {"format_version": 4, "commit": 7, "commit_id": "9f0c...", "next_segment": 5,
     "encoder_dir": "encoder", "encoder": {...fingerprint...},
     "segments": [{"name": "seg-000001", "n_docs": 1400, "nnz": 95310, "n_terms": 4691,
                   "deletes": "del-000007.npy", "n_deleted": 3}, ...],
     "n_docs": 1401, "deleted_documents": 3, "nnz": ..., "n_terms": ..., ...,
     "dense": {"model": "all-MiniLM-L6-v2", "weights_sha256": ..., "dim": 384, ...}}   (--dense only)

A commit is published by replacing ``manifest.json`` atomically (:func:`~sparsearch._files.write_json_atomic`)
after every file it names is on disk, so a reader sees the old commit or the new one. Formats 1 and 2
(one ``gen-NNNNNN`` folder, no tombstones) are read as one segment; the first update writes format 4
(its new segment compressed; the old ones are rewritten by the next merge).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sparsearch import __version__
from sparsearch._files import write_json_atomic
from sparsearch.backends.embedded.postings import offsets_dtype
from sparsearch.backends.embedded.segment import LEGACY_PREFIX, SEGMENT_PREFIX
from sparsearch.errors import IndexFormatError, IndexNotFoundError

FORMAT_VERSION = 4
"""Written by this version: compressed postings (see :mod:`sparsearch.backends.embedded.codec`; 3: CSC
arrays in segments with tombstones; 2: one generation folder; 1: int64 indptr and stored max_weight)."""
READABLE_FORMATS = (1, 2, 3, 4)
MANIFEST_FILE = "manifest.json"
ENCODER_DIR = "encoder"
SEGMENT_TMP = ".segment-tmp"
"""Where a writer holding the lock writes a new segment before renaming it into place."""
MERGE_TMP = ".merge-tmp"
"""Where a merge (holding ``.merge.lock``, not ``.lock``) writes the merged segment."""
DATA_NAME = re.compile(rf"^({SEGMENT_PREFIX}|{LEGACY_PREFIX}|{ENCODER_DIR}-)\d+$|^{ENCODER_DIR}$")
"""Names of the folders a commit may name (segments, legacy generations, encoders)."""
DELETES_NAME = re.compile(r"^del-\d+\.npy$")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def missing_index_message(path: Path) -> str:
    return f"no index at {path} (missing {MANIFEST_FILE}); build one with: sparsearch index --data PATH --index {path}"


@dataclass(frozen=True)
class SegmentEntry:
    """One segment as the manifest lists it."""

    name: str
    n_docs: int
    nnz: int
    n_terms: int
    deletes: str | None = None
    n_deleted: int = 0

    @property
    def n_live(self) -> int:
        return self.n_docs - self.n_deleted


@dataclass(frozen=True)
class Commit:
    """A parsed manifest. ``raw`` (the file's bytes) identifies it: every commit writes new bytes."""

    raw: bytes
    manifest: dict
    segments: tuple[SegmentEntry, ...]

    @property
    def number(self) -> int:
        return int(self.manifest["commit"])

    @property
    def next_segment(self) -> int:
        return int(self.manifest["next_segment"])

    @property
    def encoder_dir(self) -> str:
        return str(self.manifest["encoder_dir"])

    def segment(self, name: str) -> SegmentEntry | None:
        return next((entry for entry in self.segments if entry.name == name), None)


def read_raw(path: Path) -> bytes:
    """The manifest's bytes (raises :class:`IndexNotFoundError` when there is none)."""
    try:
        return (path / MANIFEST_FILE).read_bytes()
    except FileNotFoundError as error:
        raise IndexNotFoundError(missing_index_message(path)) from error
    except NotADirectoryError as error:
        raise IndexNotFoundError(missing_index_message(path)) from error


def read_commit(path: Path) -> Commit:
    """Read and check ``path``'s manifest (any readable format, in format 3/4's shape).

    Raises:
        IndexNotFoundError: no manifest.
        IndexFormatError: unreadable, or a format this version does not read.
    """
    raw = read_raw(path)
    manifest_file = path / MANIFEST_FILE
    try:
        manifest = json.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise IndexFormatError(f"{manifest_file}: unreadable manifest ({error})") from error
    version = manifest.get("format_version")
    if version not in READABLE_FORMATS:
        raise IndexFormatError(
            f"{path} has index format {version!r}; this sparsearch reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))}: rebuild the index with sparsearch index --overwrite"
        )
    try:
        if version < 3:  # one generation folder, no tombstones
            manifest = {
                **manifest,
                "commit": int(manifest["generation"]),
                "next_segment": 1,
                "encoder_dir": ENCODER_DIR,
                "deleted_documents": 0,
                "segments": [
                    {
                        "name": manifest["data_dir"],
                        "n_docs": manifest["n_docs"],
                        "nnz": manifest["nnz"],
                        "n_terms": manifest["n_terms"],
                    }
                ],
            }
        segments = tuple(SegmentEntry(**entry) for entry in manifest["segments"])
        int(manifest["commit"]), int(manifest["next_segment"]), str(manifest["encoder_dir"])
    except (KeyError, TypeError, ValueError) as error:
        raise IndexFormatError(f"{manifest_file}: damaged manifest ({error!r}); rebuild the index") from error
    return Commit(raw, manifest, segments)


def build_manifest(
    *,
    commit: int,
    created_at: str,
    encoder: dict,
    encoder_dir: str,
    next_segment: int,
    segments: Sequence[SegmentEntry],
    n_terms: int,
    avg_terms_per_doc: float,
    empty_documents: int,
    dense: dict | None = None,
) -> dict:
    """The manifest of a new commit (counts over live documents; ``nnz`` counts stored postings).

    ``dense``: the identity of the dense model whose window embeddings every segment stores
    (:func:`~sparsearch.encoders.dense.dense_model_identity`; indexes built with ``--dense``), else ``None``.
    """
    n_live = sum(entry.n_live for entry in segments)
    manifest = {
        "format_version": FORMAT_VERSION,
        "sparsearch_version": __version__,
        "created_at": created_at,
        "updated_at": now(),
        "commit": commit,
        "generation": commit,  # the name formats 1-2 and the API's index info use
        "commit_id": uuid.uuid4().hex,
        "next_segment": next_segment,
        "encoder_dir": encoder_dir,
        "encoder": encoder,
        "segments": [asdict(entry) for entry in segments],
        "n_docs": n_live,
        "deleted_documents": sum(entry.n_deleted for entry in segments),
        "n_terms": n_terms,
        "nnz": sum(entry.nnz for entry in segments),
        "avg_terms_per_doc": avg_terms_per_doc,
        "empty_documents": empty_documents,
        "dtype": {
            "window_offsets": offsets_dtype(max((entry.nnz for entry in segments), default=0)).name,
            "doc_low": "uint16",
            "impacts": "uint8",
            "weights": "float32",
        },
        "quantization": "none",  # of scores: impacts only pick the candidates, rescored from exact weights
    }
    if dense is not None:
        manifest["dense"] = dict(dense)
    return manifest


def publish(path: Path, manifest: dict) -> None:
    """Make ``manifest`` the index's current commit (atomic and durable)."""
    write_json_atomic(path / MANIFEST_FILE, manifest)
