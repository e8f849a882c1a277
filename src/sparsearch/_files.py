"""Small file helpers shared by the index writer, the encode job and the encoders."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, payload: object) -> None:
    """Write ``payload`` as indented UTF-8 JSON to ``path``, all or nothing.

    The JSON goes to a temporary file next to ``path`` (named with the process id, so concurrent
    writers never share it), is flushed to disk, then renamed over ``path``: a reader sees the old
    file or the new one, never a partial one, even after a crash.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def directory_bytes(path: Path) -> int:
    """Total size in bytes of the files under ``path`` (recursively)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
