"""Small file helpers shared by the index writer, the encode job and the encoders.

Durability: a file is flushed to disk (``fsync``) before it is renamed into place or named in a
manifest, and the folder that holds a rename is flushed after it, so an acknowledged write survives a
power loss, not only a killed process (POSIX leaves the order of unsynced writes to the file system).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np


def fsync_dir(path: Path) -> None:
    """Flush ``path``'s folder entries (new, renamed and removed names) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` that flushes the file to disk before returning."""
    with path.open("wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_synced(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` and flush it to disk (for files inside a folder that is renamed
    or committed afterwards; :func:`write_json_atomic` for a file replaced in place)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_json_atomic(path: Path, payload: object) -> None:
    """Write ``payload`` as indented UTF-8 JSON to ``path``, all or nothing, durably.

    The JSON goes to a temporary file next to ``path`` (named with the process id, so concurrent
    writers never share it), is flushed to disk, renamed over ``path``, and the folder is flushed: a
    reader sees the old file or the new one, never a partial one, even after a crash or a power loss.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write_text_synced(tmp, json.dumps(payload, indent=2, ensure_ascii=False))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def directory_bytes(path: Path) -> int:
    """Total size in bytes of the regular files under ``path`` (recursively, links followed as
    ``Path.is_file`` does). A file or folder that a concurrent writer removes during the walk (a merge
    of a live index) counts as gone: ``os.walk`` skips vanished folders, and a vanished file is skipped
    here, where ``rglob`` then ``stat`` raised FileNotFoundError into the index-stats route."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                info = os.stat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total
