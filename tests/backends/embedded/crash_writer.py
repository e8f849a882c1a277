"""A writer that runs until it is killed, printing what it acknowledged (run by test_crashes.py).

Usage: python -m tests.backends.embedded.crash_writer MODE INDEX PREFIX

Every line printed is flushed only after the call it reports returned, so a printed line is an
acknowledged write: ``ACK id...`` (upserted), ``DEL id`` (deleted), ``BUILT n`` (an overwrite build
with the extra documents ``PREFIX-x{n}-*``); ``DELETING id`` announces a delete in flight.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.types import Document
from tests.backends.embedded.test_bruteforce import FINGERPRINT
from tests.backends.embedded.test_segments import vector_of

BASE = [f"base{i}" for i in range(60)]


def say(*words: str) -> None:
    sys.stdout.write(" ".join(words) + "\n")
    sys.stdout.flush()


def main(mode: str, path: Path, prefix: str) -> None:
    if mode == "overwrite":
        for n in range(10**6):
            extra = [f"{prefix}-x{n}-{j}" for j in range(3)]
            with IndexWriter(path, FINGERPRINT, overwrite=True) as writer:
                ids = BASE + extra
                writer.add([Document(d, f"text of {d}") for d in ids], [vector_of(d) for d in ids])
            say("BUILT", str(n))
    index = EmbeddedIndex.open(path, auto_merge=mode == "updates")
    acked: list[str] = []
    for n in range(10**6):
        ids = [f"{prefix}-{n}-{j}" for j in range(1 + n % 3)]
        index.upsert([Document(d, f"text of {d}") for d in ids], [vector_of(d) for d in ids])
        say("ACK", *ids)
        acked.extend(ids)
        if n % 3 == 2:
            victim = acked.pop(len(acked) // 2)
            say("DELETING", victim)  # a kill before "DEL" may or may not have deleted it
            index.delete([victim])
            say("DEL", victim)
        if mode == "merges" and n % 4 == 3:
            index.merge()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
