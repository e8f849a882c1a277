"""Helpers for the tests that run against a real OpenSearch (see the ``opensearch_url`` fixture)."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sparsearch.backends.engines.opensearch import OpenSearchBackend
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, SparseVector

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "opensearch"
RANDOM_FINGERPRINT = EncoderFingerprint(name="random", vocab_hash="random-vocab", idf_hash="random-idf")


def unique_alias(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def connect(url: str, alias: str | None = None) -> OpenSearchBackend:
    return OpenSearchBackend.connect(url, alias or unique_alias())


def dropped_after(backend: OpenSearchBackend) -> Iterator[OpenSearchBackend]:
    """Yield the backend, then delete its alias and versions (also when the test failed)."""
    try:
        yield backend
    finally:
        backend.drop()
        backend.close()


def random_collection(
    seed: int, n_docs: int = 300, vocab: int = 120, terms: tuple[int, int] = (3, 25), n_queries: int = 40
) -> tuple[list[Document], list[SparseVector], list[EncodedQuery]]:
    """Random sparse documents and queries over awkward tokens (dots, ``##`` pieces, unicode, empty)."""
    rng = np.random.default_rng(seed)
    tokens = [f"t{i}" for i in range(vocab - 6)] + ["u.s.a", "##ing", "w:run", "", "100%", "naïve"]
    documents, vectors = [], []
    for i in range(n_docs):
        chosen = rng.choice(vocab, size=int(rng.integers(*terms)), replace=False)
        weights = rng.lognormal(mean=0.0, sigma=1.0, size=len(chosen))
        vectors.append({tokens[t]: float(w) for t, w in zip(chosen, weights, strict=True)})
        documents.append(Document(doc_id=f"doc-{i:04d}", title=f"title {i}", text=f"text of document {i}"))
    queries = []
    for _ in range(n_queries):
        chosen = rng.choice(vocab, size=int(rng.integers(1, 8)), replace=False)
        weights = rng.uniform(0.1, 3.0, size=len(chosen))
        queries.append(
            EncodedQuery({tokens[t]: float(w) for t, w in zip(chosen, weights, strict=True)}, RANDOM_FINGERPRINT)
        )
    return documents, vectors, queries


def free_port_block(nodes: int, start: int = 9400) -> int:
    """A base HTTP port P with P..P+nodes-1 and P+100..P+100+nodes-1 free (scripts/opensearch's layout)."""
    for base in range(start, 9900, 10):
        if all(_free(base + i) and _free(base + 100 + i) for i in range(nodes)):
            return base
    raise RuntimeError("no free port block for a test OpenSearch")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def opensearch(*args: str, timeout: float = 300) -> str:
    """Run ``scripts/opensearch ARGS``; returns its stdout (raises with the output on failure)."""
    done = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"scripts/opensearch {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}"
        )
    return done.stdout
