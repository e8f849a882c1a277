"""Removing what killed writers left behind; nothing a commit names is ever removed.

* In the index folder (:func:`remove_unreferenced`, called by every writer under the writer lock and
  at open when no writer holds it): segments, encoder folders and tombstone files no commit names
  (a killed update's new segment, the previous commit's tombstones), temporary files.
* Beside it (:func:`remove_stale_builds`): the ``.NAME.tmp-PID`` folders of killed builds. A running
  build holds the ``flock`` of its folder's ``.building`` file, so only folders whose lock is free
  (or, while the lock file does not exist, whose process is gone) are removed.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from sparsearch._files import fsync_dir
from sparsearch.backends.embedded.commit import DATA_NAME, DELETES_NAME, MANIFEST_FILE, MERGE_TMP, SEGMENT_TMP, Commit
from sparsearch.backends.embedded.lock import MERGE_LOCK_FILE, is_locked

BUILDING_FILE = ".building"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_builds(path: Path) -> list[str]:
    """Remove the temporary folders of killed builds of the index ``path`` (``.NAME.tmp-PID``,
    ``.NAME.old-PID``) whose builder is gone; returns their names."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(tmp|old)-(\d+)(\.new)?$")
    removed = []
    if not path.parent.is_dir():
        return removed
    for child in path.parent.iterdir():
        match = pattern.match(child.name)
        if match is None or not child.is_dir():
            continue
        lock = child / BUILDING_FILE
        if lock.exists() and not match.group(3):
            running = is_locked(lock)
        else:  # being set up (".new"), or renamed into place: only its process knows
            running = _pid_alive(int(match.group(2)))
        if not running:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child.name)
    return removed


def remove_unreferenced(path: Path, commit: Commit) -> list[str]:
    """Delete what no commit names any more: old segments and encoder folders, old tombstone files,
    temporary files of killed writers. Call only while holding the writer lock (another writer's
    files in progress would look unreferenced). Returns the names removed.

    A temporary merge folder is removed only when no merge holds ``.merge.lock``.
    """
    referenced = {entry.name for entry in commit.segments} | {commit.encoder_dir}
    current_deletes = {entry.name: entry.deletes for entry in commit.segments}
    removed: list[str] = []
    for child in path.iterdir():
        name = child.name
        stale = (
            (DATA_NAME.match(name) and name not in referenced)
            or name == SEGMENT_TMP
            or name.startswith(f".{MANIFEST_FILE}.tmp-")
            or (name == MERGE_TMP and not is_locked(path / MERGE_LOCK_FILE))
        )
        if stale:
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed.append(name)
        elif name in current_deletes and child.is_dir():
            for file in child.iterdir():
                if DELETES_NAME.match(file.name) and file.name != current_deletes[name]:
                    file.unlink(missing_ok=True)
                    removed.append(f"{name}/{file.name}")
    if removed:
        fsync_dir(path)
    return removed
