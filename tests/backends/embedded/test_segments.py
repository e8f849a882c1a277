"""Online updates: segments, tombstones, merges and snapshots against a model of the documents, and
writers in several threads and objects (as several API workers are) at once."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.merge import MERGE_FACTOR, pick_merge
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.types import Document, EncodedQuery
from tests.backends.embedded.test_bruteforce import FINGERPRINT, assert_same_ranking, brute_force, build


def vector_of(doc_id: str, version: int = 0, vocab: int = 30) -> dict[str, float]:
    """A deterministic vector per (id, version), so any process can tell what a document holds."""
    rng = np.random.default_rng(zlib.crc32(f"{doc_id}|{version}".encode()))  # hash() differs per process
    tokens = rng.choice(vocab, size=int(rng.integers(1, 8)), replace=False)
    return {f"t{t}": float(w) for t, w in zip(tokens, rng.integers(1, 5, len(tokens)) / 2, strict=True)}


def check_against(index: EmbeddedIndex, expected: dict[str, dict[str, float]], rng: np.random.Generator) -> None:
    assert index.count() == len(expected)
    assert sorted(index.doc_ids) == sorted(expected)
    for _ in range(4):
        query = {f"t{int(t)}": float(rng.integers(1, 4)) for t in rng.integers(0, 32, 4)}
        k = int(rng.integers(1, 12))
        assert_same_ranking(index.search(EncodedQuery(query, FINGERPRINT), k), brute_force(query, expected, k))


operations = st.lists(
    st.tuples(st.sampled_from(["upsert", "upsert", "delete", "merge", "maybe_merge"]), st.integers(0, 2**31)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, seed=st.integers(0, 2**31))
def test_any_sequence_of_updates_and_merges_equals_the_model(tmp_path_factory, ops, seed) -> None:
    """Exact ranking (ties by doc_id) and stored documents after each step, whatever the segments and
    tombstones look like; equal ids across segments never show twice."""
    rng = np.random.default_rng(seed)
    path = tmp_path_factory.mktemp("ops") / "index"
    expected = {f"d{i}": vector_of(f"d{i}") for i in range(int(rng.integers(0, 20)))}
    index = build(path, expected)
    index.auto_merge = False
    version = 0
    for op, value in ops:
        op_rng = np.random.default_rng(value)
        version += 1
        if op == "upsert":  # new ids and replacements of existing ones, in one batch
            ids = list(dict.fromkeys(f"d{int(i)}" for i in op_rng.integers(0, 30, int(op_rng.integers(1, 6)))))
            vectors = [vector_of(d, version) for d in ids]
            index.upsert([Document(doc_id=d, text=f"v{version}") for d in ids], vectors)
            expected.update(zip(ids, vectors, strict=True))
        elif op == "delete":
            ids = [f"d{int(i)}" for i in op_rng.integers(0, 30, int(op_rng.integers(1, 5)))]
            assert index.delete(ids) == len(set(ids) & set(expected))
            for doc_id in ids:
                expected.pop(doc_id, None)
        elif op == "merge":
            index.merge()
            assert len(index.manifest["segments"]) <= 1 and index.manifest["deleted_documents"] == 0
        else:
            index.maybe_merge()
        check_against(index, expected, rng)
    reopened = EmbeddedIndex.open(path)
    check_against(reopened, expected, rng)
    for doc_id in list(expected)[:5]:
        assert reopened.document_vector(doc_id) == pytest.approx(expected[doc_id])


def test_a_snapshot_keeps_answering_after_its_segments_are_merged_away(tmp_path: Path) -> None:
    corpus = {f"d{i}": vector_of(f"d{i}") for i in range(40)}
    index = build(tmp_path / "index", corpus)
    index.auto_merge = False
    index.upsert([Document("d100", "new")], [vector_of("d100")])
    pinned = index.pinned()
    query = EncodedQuery({"t1": 1.0, "t2": 2.0, "t3": 0.5}, FINGERPRINT)
    before = pinned.search(query, 50)
    assert index.delete([f"d{i}" for i in range(20)]) == 20
    assert index.merge()  # removes seg-000001 and seg-000002 from disk
    assert sorted(p.name for p in (tmp_path / "index").glob("seg-*")) == ["seg-000003"]
    assert pinned.search(query, 50) == before
    assert pinned.get_documents(["d0", "d100"])[1].text == "new"  # the removed file is still readable
    assert pinned.count() == 41 and index.count() == 21


def test_other_objects_see_a_commit_at_their_next_refresh(tmp_path: Path) -> None:
    writer = build(tmp_path / "index", {"a": {"x": 1.0}})
    reader = EmbeddedIndex.open(tmp_path / "index")
    writer.upsert([Document("b", "")], [{"x": 2.0}])
    assert reader.count() == 1 and reader.has_changed()
    assert reader.refresh() and not reader.refresh()
    assert [h.doc_id for h in reader.search(EncodedQuery({"x": 1.0}, FINGERPRINT), 5)] == ["b", "a"]


def test_background_merges_keep_the_segment_count_small(tmp_path: Path) -> None:
    index = build(tmp_path / "index", {f"d{i}": vector_of(f"d{i}") for i in range(50)})
    expected = {}
    for i in range(3 * MERGE_FACTOR * MERGE_FACTOR // 2):
        doc_id = f"n{i}"
        expected[doc_id] = vector_of(doc_id)
        index.upsert([Document(doc_id, "")], [expected[doc_id]])
        assert len(index.manifest["segments"]) <= 3 * MERGE_FACTOR  # a merge per level keeps it bounded
    index.wait_for_merges()
    index.refresh()
    assert not pick_merge(index.snapshot().commit.segments)
    check_against(index, {**{f"d{i}": vector_of(f"d{i}") for i in range(50)}, **expected}, np.random.default_rng(0))


def test_churn_then_merge_gives_back_the_terms_and_bytes_of_a_fresh_build(tmp_path: Path) -> None:
    """Upserting then deleting documents of made-up words, three times: the vocabulary and the disk
    grow with the tombstoned documents only until a merge."""
    corpus = {f"d{i}": vector_of(f"d{i}") for i in range(200)}
    index = build(tmp_path / "index", corpus)
    index.auto_merge = False
    fresh = build(tmp_path / "fresh", corpus)
    rng = np.random.default_rng(3)
    for round_ in range(3):
        ids = [f"junk{round_}-{i}" for i in range(38)]
        vectors = [{f"word{rng.integers(10**9)}": 1.0 for _ in range(20)} for _ in ids]
        index.upsert([Document(d, "x" * 500) for d in ids], vectors)
        index.delete(ids)
    assert index.manifest["n_terms"] > fresh.manifest["n_terms"] + 2000
    assert index.merge()
    assert index.manifest["n_terms"] == fresh.manifest["n_terms"]
    assert index.stats()["bytes"] <= fresh.stats()["bytes"] * 1.05 + 4096
    assert EmbeddedIndex.open(tmp_path / "index").search(EncodedQuery({"t1": 1.0}, FINGERPRINT), 5) == fresh.search(
        EncodedQuery({"t1": 1.0}, FINGERPRINT), 5
    )


def test_writers_in_threads_objects_and_an_overwrite_lose_nothing(tmp_path: Path) -> None:
    """Two objects updating (two API workers), one searching and refreshing, one rebuilding with
    overwrite: no error, and every update committed after the last rebuild is there at the end."""
    path = tmp_path / "index"
    base = {f"b{i}": vector_of(f"b{i}") for i in range(30)}
    build(path, base)
    acked: list[tuple[int, str, dict[str, float]]] = []
    rebuilds: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded(work):
        def run() -> None:
            try:
                work()
            except BaseException as error:  # noqa: BLE001 - reported by the test
                import traceback

                traceback.print_exc()
                errors.append(error)
                stop.set()

        return threading.Thread(target=run)

    def updater(name: str) -> None:
        index = EmbeddedIndex.open(path, auto_merge=name == "w0")
        for i in range(40):
            doc_id = f"{name}-{i}"
            vector = vector_of(doc_id)
            index.upsert([Document(doc_id, "")], [vector])
            acked.append((index.manifest["commit"], doc_id, vector))
            if i % 7 == 3:
                index.delete([f"{name}-{i - 1}"])
                acked.append((index.manifest["commit"], f"{name}-{i - 1}", {}))

    def searcher() -> None:
        index = EmbeddedIndex.open(path)
        query = EncodedQuery({"t1": 1.0, "t5": 2.0}, FINGERPRINT)
        while not stop.is_set():
            index.refresh()
            hits = index.search(query, 10)
            index.get_documents([h.doc_id for h in hits])

    def rebuilder() -> None:
        for _ in range(3):
            with IndexWriter(path, FINGERPRINT, overwrite=True) as writer:
                writer.add([Document(d, "") for d in base], list(base.values()))
            assert writer.commit is not None
            rebuilds.append(writer.commit)

    threads = [guarded(lambda n=n: updater(n)) for n in ("w0", "w1")] + [guarded(rebuilder)]
    search_thread = guarded(searcher)
    for thread in [*threads, search_thread]:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    search_thread.join()
    assert not errors
    final = EmbeddedIndex.open(path)
    final.wait_for_merges()
    last_rebuild = max(rebuilds)
    expected = dict(base)
    for commit, doc_id, vector in sorted(acked, key=lambda item: item[0]):
        if commit > last_rebuild:
            if vector:
                expected[doc_id] = vector
            else:
                expected.pop(doc_id, None)
    live = set(final.doc_ids)
    assert set(expected) <= live  # updates committed before the last rebuild are replaced by it
    check_against(final, {d: final.document_vector(d) for d in live}, np.random.default_rng(1))
    for doc_id in expected:
        assert final.document_vector(doc_id) == pytest.approx(expected[doc_id])
