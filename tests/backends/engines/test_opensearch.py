"""The OpenSearch backend against a real OpenSearch: scores, feature names, documents, CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.backends.engines import bodies
from sparsearch.backends.engines.opensearch import OpenSearchBackend, check_opensearch_server
from sparsearch.cli import app
from sparsearch.errors import EncoderMismatchError, IndexFormatError, IndexNotFoundError, UsageError
from sparsearch.jobs.build_engine import index_vectors
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, dot

from ._engines import RANDOM_FINGERPRINT, connect, dropped_after, random_collection, unique_alias


@pytest.fixture
def backend(opensearch_url: str) -> Iterator[OpenSearchBackend]:
    yield from dropped_after(connect(opensearch_url))


@pytest.fixture(scope="module")
def random_index(opensearch_url: str, tmp_path_factory: pytest.TempPathFactory):
    """The same random vectors in OpenSearch (2 shards) and in the embedded engine, plus queries."""
    documents, vectors, queries = random_collection(seed=7)
    engine = connect(opensearch_url)
    index_vectors(engine, documents, vectors, RANDOM_FINGERPRINT, shards=2, chunk_size=64)
    path = tmp_path_factory.mktemp("random") / "index"
    with IndexWriter(path, RANDOM_FINGERPRINT) as writer:
        writer.add(documents, vectors)
    yield engine, EmbeddedIndex.open(path), documents, vectors, queries
    engine.drop()
    engine.close()


def test_engine_scores_are_the_dot_product_of_stored_weights(random_index) -> None:
    engine, _, documents, vectors, queries = random_index
    for query in queries:
        hits = engine.search(query, top_k=50)
        assert hits, "every random query shares a token with some document"
        stored = {d.doc_id: v for d, v in zip(documents, vectors, strict=True)}
        for hit in hits:
            vector = stored[hit.doc_id]
            exact = dot(query.weights, vector)
            quantized = sum(
                float(np.float32(w)) * float(bodies.quantize_weights([vector[t]])[0])
                for t, w in query.weights.items()
                if t in vector
            )
            assert hit.score == pytest.approx(quantized, rel=1e-5)  # what the engine computes, to float32
            assert exact * (1 - bodies.SCORE_RELATIVE_TOLERANCE) <= hit.score <= exact * (1 + 1e-6)


def test_rankings_match_the_embedded_engine_up_to_stored_precision(random_index) -> None:
    engine, embedded, _, _, queries = random_index
    compared = 0
    for query in queries:
        remote = engine.search(query, top_k=20)
        local = embedded.search(query, top_k=100)
        exact = {hit.doc_id: hit.score for hit in local}
        assert set(exact) >= {hit.doc_id for hit in remote}
        # Any two documents whose exact scores differ by more than the tolerance keep their order.
        for higher, lower in zip(remote, remote[1:], strict=False):
            assert exact[higher.doc_id] >= exact[lower.doc_id] * (1 - 2 * bodies.SCORE_RELATIVE_TOLERANCE)
        # The engine's top-k holds every document whose exact score clearly beats the k-th.
        if len(remote) == 20:
            kth = exact[remote[-1].doc_id]
            clearly_in = {d for d, s in exact.items() if s > kth * (1 + 2 * bodies.SCORE_RELATIVE_TOLERANCE)}
            assert clearly_in <= {hit.doc_id for hit in remote}
        compared += 1
    assert compared == len(queries)


def test_search_batch_equals_one_by_one(random_index) -> None:
    engine, _, _, _, queries = random_index
    empty = EncodedQuery({}, RANDOM_FINGERPRINT)
    batch = engine.search_batch([queries[0], empty, queries[1]], top_k=7)
    assert batch == [engine.search(queries[0], 7), [], engine.search(queries[1], 7)]


def test_queries_from_another_encoder_are_refused(random_index) -> None:
    engine = random_index[0]
    other = EncodedQuery({"t1": 1.0}, EncoderFingerprint("bm25", "other", "other"))
    with pytest.raises(EncoderMismatchError, match="random"):
        engine.search(other)
    with pytest.raises(UsageError, match="weights >= 0"):
        engine.search(EncodedQuery({"t1": -1.0}, RANDOM_FINGERPRINT))


AWKWARD_TOKENS = [
    "##ing",
    "w:run",
    "u.s.a",
    "u%2Es%2Ea",  # must not collide with the escaped "u.s.a"
    "",
    ".",
    "..",
    "%",
    " ",
    "naïve",
    "日本語",
    "🙂",
    "a*b",
    "a?b",
    '"quoted"',
    "back\\slash",
    "_id",
    "features",
    "x" * 300,
]


def test_awkward_feature_names_survive_the_engine(backend: OpenSearchBackend) -> None:
    # One document per token (weight = 1 + index/8, exactly storable), plus one holding them all.
    documents = [Document(doc_id=f"d{i}", text=repr(t)) for i, t in enumerate(AWKWARD_TOKENS)]
    vectors = [{t: 1 + i / 8} for i, t in enumerate(AWKWARD_TOKENS)]
    documents.append(Document(doc_id="all", text="all"))
    vectors.append({t: 0.5 for t in AWKWARD_TOKENS})
    index_vectors(backend, documents, vectors, RANDOM_FINGERPRINT)
    for i, token in enumerate(AWKWARD_TOKENS):
        hits = backend.search(EncodedQuery({token: 2.0}, RANDOM_FINGERPRINT), top_k=5)
        assert hits == [type(hits[0])(f"d{i}", 2 * (1 + i / 8)), type(hits[0])("all", 1.0)], repr(token)
    assert backend.document_vector("all") == {t: 0.5 for t in AWKWARD_TOKENS}


def test_documents_upsert_delete_count_and_health(backend: OpenSearchBackend) -> None:
    documents = [Document("a", "alpha text", "Alpha"), Document("b", "beta text", "Beta")]
    index_vectors(backend, documents, [{"x": 1.0}, {"x": 2.0}], RANDOM_FINGERPRINT)
    query = EncodedQuery({"x": 1.0}, RANDOM_FINGERPRINT)
    assert [h.doc_id for h in backend.search(query)] == ["b", "a"]
    assert backend.get_documents(["a", "missing"]) == [documents[0], None]

    backend.upsert([Document("a", "new alpha", "A2"), Document("c", "gamma")], [{"x": 4.0}, {"y": 1.0}])
    assert backend.count() == 3
    assert [h.doc_id for h in backend.search(query)] == ["a", "b"]
    assert backend.get_documents(["a"])[0] == Document("a", "new alpha", "A2")

    assert backend.delete(["b", "nope"]) == 1
    assert backend.count() == 2
    health = backend.health()
    assert health["engine"] == "opensearch" and health["documents"] == 2
    assert str(health["version"]).split(".")[0] in {"2", "3"}
    with pytest.raises(ValueError, match="weights > 0"):
        backend.upsert([Document("z", "z")], [{"x": 0.0}])


def test_an_open_backend_notices_a_reindex_by_another_encoder(opensearch_url: str, backend: OpenSearchBackend) -> None:
    index_vectors(backend, [Document("a", "x")], [{"t": 1.0}], RANDOM_FINGERPRINT)
    reader = connect(opensearch_url, backend.index)
    query = EncodedQuery({"t": 1.0}, RANDOM_FINGERPRINT)
    assert [h.doc_id for h in reader.search(query)] == ["a"]
    other = EncoderFingerprint("other-model", "other-vocab", "other-idf")
    index_vectors(backend, [Document("b", "y")], [{"t": 1.0}], other)  # the alias moves to v000002
    with pytest.raises(EncoderMismatchError, match="v000002"):
        reader.search(query)
    with pytest.raises(EncoderMismatchError):
        reader.search(query)  # and keeps refusing, now from its refreshed metadata
    reader.close()


def test_queries_over_the_clause_limit_get_a_clear_error(backend: OpenSearchBackend) -> None:
    index_vectors(backend, [Document("a", "x")], [{f"t{i}": 1.0 for i in range(1100)}], RANDOM_FINGERPRINT)
    assert backend.search(EncodedQuery({f"t{i}": 1.0 for i in range(1024)}, RANDOM_FINGERPRINT))[0].score == 1024
    with pytest.raises(UsageError, match="max_clause_count"):
        backend.search(EncodedQuery({f"t{i}": 1.0 for i in range(1100)}, RANDOM_FINGERPRINT))


def test_missing_alias_and_plain_indexes_are_reported(opensearch_url: str) -> None:
    missing = connect(opensearch_url)
    with pytest.raises(IndexNotFoundError, match="sparsearch index --backend opensearch"):
        missing.search(EncodedQuery({"x": 1.0}, RANDOM_FINGERPRINT))
    name = unique_alias("plain")
    missing.client.indices.create(index=name)
    try:
        with pytest.raises(IndexFormatError, match="plain index"):
            connect(opensearch_url, name).live_indexes()
    finally:
        missing.client.indices.delete(index=name)


def test_server_check_recognises_elasticsearch() -> None:
    with pytest.raises(UsageError, match="--backend elasticsearch"):
        check_opensearch_server({"version": {"number": "9.1.0"}})
    with pytest.raises(UsageError, match="2.x or 3.x"):
        check_opensearch_server({"version": {"number": "1.3.0", "distribution": "opensearch"}})
    check_opensearch_server({"version": {"number": "2.19.1", "distribution": "opensearch"}})


def test_cli_index_search_eval_through_opensearch(opensearch_url: str, tiny_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    alias = unique_alias("cli")
    engine = ["--backend", "opensearch", "--url", opensearch_url]
    try:
        result = runner.invoke(
            app, ["index", "--data", str(tiny_data), "--index", alias, *engine, "--failures", str(tmp_path / "f")]
        )
        assert result.exit_code == 0, result.output
        assert f"{alias} -> {alias}-v000001" in result.stdout

        result = runner.invoke(
            app, ["search", "--index", alias, *engine, "--json", "--top-k", "2", "propeller slipstream lift"]
        )
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert [hit["id"] for hit in payload["hits"]] == ["d1", "d8"]  # as the embedded engine answers
        assert payload["hits"][0]["title"] == "Wing in a slipstream"

        report = tmp_path / "report.json"
        result = runner.invoke(
            app, ["eval", "--data", str(tiny_data), "--index", alias, *engine, "--output", str(report)]
        )
        assert result.exit_code == 0, result.output
        data = json.loads(report.read_text())
        assert data["backend"] == "opensearch" and data["docs"] == 8
        assert data["index"]["engine_version"].split(".")[0] in {"2", "3"}
    finally:
        connect(opensearch_url, alias).drop()


def test_search_with_a_local_model_must_match_the_index(opensearch_url: str, tiny_data: Path, tmp_path: Path) -> None:
    from sparsearch.backends.factory import load_backend_encoder
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_engine import index_corpus

    backend = connect(opensearch_url)
    try:
        encoder = load_encoder("bm25")
        index_corpus(tiny_data, backend, encoder, failures_path=tmp_path / "f.jsonl")
        encoder.save(tmp_path / "model")
        assert load_backend_encoder(backend, tmp_path / "model").fingerprint == encoder.fingerprint
        assert load_backend_encoder(backend).fingerprint == encoder.fingerprint  # the stored copy
        other = load_encoder("bm25")
        other.fit(["a completely different corpus"])
        other.save(tmp_path / "other")
        with pytest.raises(EncoderMismatchError):
            load_backend_encoder(backend, tmp_path / "other")
    finally:
        backend.drop()
