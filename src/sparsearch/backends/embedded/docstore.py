"""Stored document text (title and text by row), so results can show titles and snippets.

Layout: ``docs.jsonl`` (one ``{"title", "text"}`` object per row, in ``doc_idx`` order) and
``docs_offsets.npy`` (int64, n_docs + 1 byte offsets). Reads seek to one row; nothing is loaded
up front.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

DOCS_FILE = "docs.jsonl"
OFFSETS_FILE = "docs_offsets.npy"


class DocStoreWriter:
    """Appends ``(title, text)`` rows; :meth:`close` writes the offsets."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._handle = (directory / DOCS_FILE).open("wb")
        self._offsets = [0]

    def add(self, title: str, text: str) -> None:
        line = (json.dumps({"title": title, "text": text}, ensure_ascii=False) + "\n").encode("utf-8")
        self._handle.write(line)
        self._offsets.append(self._offsets[-1] + len(line))

    def close(self) -> None:
        self._handle.close()
        np.save(self.directory / OFFSETS_FILE, np.asarray(self._offsets, dtype=np.int64))


class DocStore:
    """Random access to stored ``(title, text)`` by ``doc_idx``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / DOCS_FILE
        self.offsets = np.load(directory / OFFSETS_FILE, mmap_mode="r")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, doc_idx: int) -> tuple[str, str]:
        start, end = int(self.offsets[doc_idx]), int(self.offsets[doc_idx + 1])
        with self.path.open("rb") as handle:
            handle.seek(start)
            record = json.loads(handle.read(end - start))
        return record["title"], record["text"]

    def iter_rows(self) -> Iterator[tuple[str, str]]:
        with self.path.open("rb") as handle:
            for raw in handle:
                record = json.loads(raw)
                yield record["title"], record["text"]
