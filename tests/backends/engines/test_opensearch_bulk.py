"""Bulk loading and the indexing job against a real OpenSearch: rejections, retries, resume, reindex."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sparsearch.backends.engines import bodies
from sparsearch.backends.engines.bulk import BulkFailure, RetryPolicy, bulk_load, describe_error
from sparsearch.backends.engines.opensearch import OpenSearchBackend
from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import CorpusFormatError
from sparsearch.jobs.build_engine import (
    index_corpus,
    read_failures_file,
    write_failures_file,
)
from sparsearch.types import Document, EncodedQuery, SparseVector

from ._engines import RANDOM_FINGERPRINT, connect, dropped_after, random_collection


@pytest.fixture
def backend(opensearch_url: str) -> Iterator[OpenSearchBackend]:
    yield from dropped_after(connect(opensearch_url))


def _corpus(path: Path, documents: Sequence[Document]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for d in documents:
            handle.write(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}) + "\n")
    return path


# -- pure parts ---------------------------------------------------------------------------------------
def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=9, initial_backoff_s=0.5, max_backoff_s=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_engine_errors_become_one_line() -> None:
    error = {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse",
        "caused_by": {"type": "illegal_argument_exception", "reason": "featureValue must be a positive normal float"},
    }
    assert describe_error(error) == (
        "mapper_parsing_exception: failed to parse (caused by illegal_argument_exception: "
        "featureValue must be a positive normal float)"
    )
    assert describe_error("Connection\n refused") == "Connection refused"


def test_failures_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    write_failures_file(path, [BulkFailure("a", 400, "bad", "T", "x"), BulkFailure("b", "invalid", "w <= 0")])
    assert read_failures_file(path) == ["a", "b"]
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {"_id": "a", "title": "T", "text": "x", "status": 400, "error": "bad"}  # readable as a corpus
    write_failures_file(path, [])
    assert not path.exists() and read_failures_file(path) == []


# -- rejections ---------------------------------------------------------------------------------------
def test_rejected_documents_are_reported_by_id_and_do_not_stop_the_others(backend: OpenSearchBackend) -> None:
    documents, vectors, _ = random_collection(seed=3, n_docs=120)
    version = backend.next_version_name()
    backend.create_version(version, RANDOM_FINGERPRINT)
    actions = list(bodies.iter_bulk_actions(version, documents, vectors))
    # Raw actions that bypass the builders' checks, as a buggy producer would send them.
    bad = {
        "neg": {"doc_id": "neg", "title": "", "text": "", "features": {"a": -1.0}},
        "nan-string": {"doc_id": "nan-string", "title": "", "text": "", "features": {"a": "heavy"}},
        "extra-field": {"doc_id": "extra-field", "title": "", "text": "", "features": {}, "surprise": 1},
    }
    for position, (doc_id, source) in zip((5, 60, 119), bad.items(), strict=True):
        actions.insert(position, {"_op_type": "index", "_index": version, "_id": doc_id, "_source": source})
    done: list[int] = []
    result = bulk_load(backend, actions, threads=2, chunk_size=16, on_done=done.append)
    assert result.succeeded == 120 and sum(done) == 123
    reasons = {f.doc_id: (f.status, f.error) for f in result.failures}
    assert set(reasons) == set(bad)
    assert reasons["neg"][0] == 400 and "positive normal float" in reasons["neg"][1]
    assert reasons["extra-field"][0] == 400 and "strict" in reasons["extra-field"][1]
    backend.refresh(version)
    assert backend.count(version) == 120


def test_an_id_too_long_for_the_engines_is_refused_before_anything_is_sent(
    backend: OpenSearchBackend, tmp_path: Path
) -> None:
    """The engines refuse an ``_id`` over 512 bytes; the corpus reader refuses it first, with its line,
    so no version is created and nothing is half loaded."""
    long_id = "\U0001f680" * 200  # 200 characters, 800 bytes in UTF-8
    documents = [Document(f"d{i}", f"wing flow number {i}") for i in range(30)] + [Document(long_id, "wing")]
    corpus = _corpus(tmp_path / "corpus.jsonl", documents)
    with pytest.raises(CorpusFormatError, match=r"corpus\.jsonl:31: .*800 bytes.*at most 512"):
        index_corpus(corpus, backend, load_encoder("bm25"), failures_path=tmp_path / "failures.jsonl")
    assert backend.live_indexes() == []


class _BrokenOnce:
    """BM25 whose vector for one document is not storable (weight 0), as a faulty encoder would produce."""

    def __init__(self, inner, doc_text: str) -> None:
        self.inner, self.doc_text = inner, doc_text

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def encode_document(self, texts: Sequence[str]) -> list[SparseVector]:
        vectors = self.inner.encode_document(texts)
        return [{**v, "zero": 0.0} if t == self.doc_text else v for t, v in zip(texts, vectors, strict=True)]


def test_a_rerun_retries_the_failures_file_and_finishes(backend: OpenSearchBackend, tmp_path: Path) -> None:
    documents = [Document(f"d{i}", f"supersonic wing {i} flow") for i in range(40)]
    corpus = _corpus(tmp_path / "corpus.jsonl", documents)
    failures = tmp_path / "failures.jsonl"
    encoder = load_encoder("bm25")

    first = index_corpus(corpus, backend, _BrokenOnce(encoder, "supersonic wing 17 flow"), failures_path=failures)
    assert [(f.doc_id, f.status) for f in first.failures] == [("d17", "invalid")]
    assert "weights > 0" in first.failures[0].error
    assert read_failures_file(failures) == ["d17"] and not first.swapped and first.documents == 39

    second = index_corpus(corpus, backend, load_encoder("bm25"), failures_path=failures)
    assert second.resumed and second.index == first.index
    assert (second.skipped, second.sent, second.retried_from_file) == (39, 1, 1)
    assert second.swapped and second.documents == 40 and backend.count() == 40
    assert not failures.exists()


# -- retries on a real 429 ----------------------------------------------------------------------------
def test_429_is_retried_with_backoff_until_the_engine_accepts(backend: OpenSearchBackend) -> None:
    documents, vectors, _ = random_collection(seed=5, n_docs=50)
    version = backend.next_version_name()
    backend.create_version(version, RANDOM_FINGERPRINT)
    # The flood-stage block makes OpenSearch answer every write with 429 TOO_MANY_REQUESTS.
    block = {"index": {"blocks": {"read_only_allow_delete": True}}}
    backend.client.indices.put_settings(index=version, body=block)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the backoff wait; the engine recovers during the second one
        waits.append(seconds)
        if len(waits) == 2:
            backend.client.indices.put_settings(
                index=version, body={"index": {"blocks": {"read_only_allow_delete": None}}}
            )

    policy = RetryPolicy(max_retries=4, initial_backoff_s=0.25, max_backoff_s=10)
    result = bulk_load(backend, bodies.iter_bulk_actions(version, documents, vectors), retry=policy, sleep=sleep)
    assert waits == [0.25, 0.5] and result.retries == 2
    assert result.succeeded == 50 and result.failures == []
    backend.refresh(version)
    assert backend.count(version) == 50


def test_429_past_every_retry_stops_the_load_with_a_clear_error(backend: OpenSearchBackend) -> None:
    documents, vectors, _ = random_collection(seed=5, n_docs=10)
    version = backend.next_version_name()
    backend.create_version(version, RANDOM_FINGERPRINT)
    backend.client.indices.put_settings(index=version, body={"index": {"blocks": {"read_only_allow_delete": True}}})
    from sparsearch.errors import EngineUnavailableError

    with pytest.raises(EngineUnavailableError, match="after 2 retries .*status 429") as info:
        bulk_load(
            backend,
            bodies.iter_bulk_actions(version, documents, vectors),
            retry=RetryPolicy(max_retries=2),
            sleep=lambda s: None,
        )
    assert sorted(f.doc_id for f in info.value.unsent) == sorted(d.doc_id for d in documents)


# -- versions behind the alias ------------------------------------------------------------------------
def test_reindex_swaps_the_alias_and_prunes_old_versions(
    backend: OpenSearchBackend, tiny_data: Path, tmp_path: Path
) -> None:
    failures = tmp_path / "f.jsonl"
    runs = [index_corpus(tiny_data, backend, load_encoder("bm25"), failures_path=failures) for _ in range(3)]
    alias = backend.index
    assert [r.index for r in runs] == [f"{alias}-v00000{i}" for i in (1, 2, 3)]
    assert [r.previous for r in runs] == [[], [f"{alias}-v000001"], [f"{alias}-v000002"]]
    assert runs[2].pruned == [f"{alias}-v000001"]  # keep_old=1 keeps the previous version only
    assert list(backend.versions()) == [f"{alias}-v000002", f"{alias}-v000003"]
    assert backend.live_indexes() == [f"{alias}-v000003"]
    assert backend.meta()["state"] == bodies.STATE_COMPLETE

    last = index_corpus(tiny_data, backend, load_encoder("bm25"), failures_path=failures, keep_old=0)
    assert list(backend.versions()) == [last.index] and backend.count() == 8


def test_searching_during_alias_swaps_never_errors_or_comes_back_empty(
    opensearch_url: str, backend: OpenSearchBackend, tiny_data: Path, tmp_path: Path
) -> None:
    failures = tmp_path / "f.jsonl"
    encoder = load_encoder("bm25")
    index_corpus(tiny_data, backend, encoder, failures_path=failures)
    query = encoder.encode_query("propeller slipstream lift")
    reader = connect(opensearch_url, backend.index)
    expected = [h.doc_id for h in reader.search(query, 3)]
    pages: list[list[str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_forever() -> None:
        while not stop.is_set():
            try:
                pages.append([h.doc_id for h in reader.search(query, 3)])
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

    thread = threading.Thread(target=search_forever)
    thread.start()
    try:
        for _ in range(4):  # four builds, four atomic swaps, pruning one version each time from the third on
            index_corpus(tiny_data, backend, load_encoder("bm25"), failures_path=failures)
    finally:
        stop.set()
        thread.join()
        reader.close()
    assert errors == []
    assert len(pages) > 10
    assert all(page == expected for page in pages)


def test_empty_query_and_vectors_helper(backend: OpenSearchBackend) -> None:
    from sparsearch.jobs.build_engine import index_vectors

    index_vectors(backend, [Document("a", "x")], [{"t": 1.0}], RANDOM_FINGERPRINT)
    assert backend.search(EncodedQuery({}, RANDOM_FINGERPRINT)) == []
    assert backend.search(EncodedQuery({"t": 0.0}, RANDOM_FINGERPRINT)) == []
