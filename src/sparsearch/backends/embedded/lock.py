"""Cross-process locks of an index directory (``flock``: released by the kernel when the holder dies,
so a killed writer never leaves an index locked).

* ``.lock``: one writer at a time, whatever the process (``sparsearch index --overwrite``, every API
  worker, a script's ``upsert``): held while a commit writes its manifest, never while searching.
* ``.merge.lock``: one background merge at a time; a merge takes ``.lock`` too, only to commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"
MERGE_LOCK_FILE = ".merge.lock"


@contextlib.contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    Yields:
        True when the lock is held; False when ``blocking`` is false and another holder has it (the
        block then runs without it and must do nothing that needs it).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether some live process holds ``path``'s lock (a missing file is not locked)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor drops a lock taken through it
    return False
