"""kill -9 of every kind of writer at random points (updates with background merges, forced merges,
``--overwrite`` builds): the index always opens, holds every acknowledged write and none it
acknowledged deleting, searches exactly, and the killed writer's leftovers are gone after the open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sparsearch.backends.embedded.index import EmbeddedIndex
from tests.backends.embedded.crash_writer import BASE
from tests.backends.embedded.test_bruteforce import build
from tests.backends.embedded.test_segments import check_against, vector_of

ROOT = Path(__file__).resolve().parents[3]
KILLS_PER_MODE = 5


def run_until_killed(mode: str, path: Path, prefix: str, rng: np.random.Generator) -> list[list[str]]:
    """Start a writer, kill -9 it at a random moment after its first acknowledgement; its lines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.backends.embedded.crash_writer", mode, str(path), prefix],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[list[str]] = []
    first = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.endswith("\n"):  # a line cut by the kill was never acknowledged
                lines.append(line.split())
                first.set()

    reader = threading.Thread(target=read)
    reader.start()
    if not first.wait(120):
        process.kill()
        pytest.fail(f"{mode} writer acknowledged nothing: {process.stderr.read() if process.stderr else ''}")
    time.sleep(float(rng.uniform(0.0, 1.5)))
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    reader.join()
    return lines


def leftovers(path: Path, index: EmbeddedIndex) -> list[str]:
    """Files of the index folder (and its parent) that the current commit does not name."""
    commit = index.snapshot().commit
    named = {entry.name for entry in commit.segments} | {commit.encoder_dir, "manifest.json", ".lock", ".merge.lock"}
    found = [p.name for p in path.iterdir() if p.name not in named]
    found += [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    for entry in commit.segments:
        found += [f"{entry.name}/{p.name}" for p in (path / entry.name).glob("del-*") if p.name != entry.deletes]
    return found


@pytest.mark.parametrize("mode", ["updates", "merges"])
def test_killed_updaters_lose_no_acknowledged_write(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "index"
    build(path, {d: vector_of(d) for d in BASE})
    present, deleted = set(BASE), set()
    rng = np.random.default_rng(len(mode))
    for kill in range(KILLS_PER_MODE):
        in_flight: set[str] = set()  # a delete the kill may have cut before or after its commit
        for kind, *ids in run_until_killed(mode, path, f"k{kill}", rng):
            if kind == "ACK":
                present.update(ids)
            elif kind == "DELETING":
                in_flight = set(ids)
            else:
                present.difference_update(ids)
                deleted.update(ids)
                in_flight = set()
        index = EmbeddedIndex.open(path, auto_merge=False)
        assert leftovers(path, index) == []
        live = set(index.doc_ids)
        missing = present - live
        assert missing <= in_flight, f"acknowledged but missing: {sorted(missing)[:5]}"
        present -= missing
        assert not deleted & live, f"acknowledged deleted but present: {sorted(deleted & live)[:5]}"
        # what else is there was in flight when the kill came: a whole upsert batch, never part of one
        unacked = live - present
        assert len({doc_id.rsplit("-", 1)[0] for doc_id in unacked}) <= 1
        present |= unacked  # committed before the kill: from now on it must stay like any acknowledged write
        check_against(index, {d: vector_of(d) for d in live}, rng)
        written = sorted(present - set(BASE))[:3]
        assert [d.text for d in index.get_documents(written)] == [f"text of {d}" for d in written]


def test_killed_overwrite_builds_leave_the_old_or_the_new_index(tmp_path: Path) -> None:
    path = tmp_path / "index"
    build(path, {d: vector_of(d) for d in BASE})
    rng = np.random.default_rng(9)
    for kill in range(KILLS_PER_MODE):
        built = [line[1] for line in run_until_killed("overwrite", path, f"k{kill}", rng) if line[0] == "BUILT"]
        index = EmbeddedIndex.open(path, auto_merge=False)
        assert leftovers(path, index) == []  # the killed build's temporary folder included
        live = set(index.doc_ids)
        extra = live - set(BASE)
        assert set(BASE) <= live and len(extra) == 3, sorted(extra)
        build_number = {doc_id.split("-")[1] for doc_id in extra}
        assert len(build_number) == 1  # one whole build, never a mix
        assert int(build_number.pop()[1:]) >= int(built[-1]) if built else True
        check_against(index, {d: vector_of(d) for d in live}, rng)
