"""Stored document text (title and text by row), so results can show titles and snippets.

Layout: ``docs.jsonl`` (one ``{"title", "text"}`` object per row, in ``doc_idx`` order) and
``docs_offsets.npy`` (int64, n_docs + 1 byte offsets). Reads fetch one row with ``pread``; nothing is
loaded up front.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sparsearch._files import save_npy

DOCS_FILE = "docs.jsonl"
OFFSETS_FILE = "docs_offsets.npy"
_READ_BLOCK_BYTES = 1 << 22
""":meth:`DocStore.iter_rows` reads about this many bytes per system call."""


class DocStoreWriter:
    """Appends ``(title, text)`` rows; :meth:`close` writes the offsets and flushes both files to disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._handle = (directory / DOCS_FILE).open("wb")
        self._offsets = [0]

    def add(self, title: str, text: str) -> None:
        line = (json.dumps({"title": title, "text": text}, ensure_ascii=False) + "\n").encode("utf-8")
        self._handle.write(line)
        self._offsets.append(self._offsets[-1] + len(line))

    def close(self) -> None:
        if self._handle.closed:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        save_npy(self.directory / OFFSETS_FILE, np.asarray(self._offsets, dtype=np.int64))


class DocStore:
    """Random access to stored ``(title, text)`` by ``doc_idx``.

    The file stays open for the life of this object, so rows remain readable after a writer in this
    or another process removes the segment (POSIX keeps an unlinked file's data until its last
    descriptor closes): a search that started on an older snapshot still fetches its documents.
    """

    def __init__(self, directory: Path) -> None:
        self.offsets = np.load(directory / OFFSETS_FILE, mmap_mode="r")
        self._file = (directory / DOCS_FILE).open("rb", buffering=0)  # closed when this object is collected

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _read(self, start: int, end: int) -> bytes:
        return os.pread(self._file.fileno(), end - start, start)  # no shared file position: thread-safe

    def get(self, doc_idx: int) -> tuple[str, str]:
        record = json.loads(self._read(int(self.offsets[doc_idx]), int(self.offsets[doc_idx + 1])))
        return record["title"], record["text"]

    def iter_rows(self) -> Iterator[tuple[str, str]]:
        """Every row in ``doc_idx`` order, read in blocks of about :data:`_READ_BLOCK_BYTES`."""
        offsets = np.asarray(self.offsets)
        row = 0
        while row < len(self):
            last = max(row + 1, int(np.searchsorted(offsets, offsets[row] + _READ_BLOCK_BYTES, side="right")) - 1)
            last = min(last, len(self))
            block = self._read(int(offsets[row]), int(offsets[last]))
            base = int(offsets[row])
            for i in range(row, last):
                record = json.loads(block[int(offsets[i]) - base : int(offsets[i + 1]) - base])
                yield record["title"], record["text"]
            row = last
