"""Adding, replacing and deleting documents online, also while searches run."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.encoders.registry import load_encoder
from tests.api.conftest import LiveServer, app_client, make_settings
from tests.api.test_search import assert_error

NEW = {"id": "n1", "title": "Hypersonic gliders", "text": "Hypersonic glider heating at Mach twenty."}


def search_ids(client, query: str, index: str = "tiny") -> list[str]:
    response = client.post("/v1/search", json={"query": query, "index": index, "top_k": 10})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def test_upsert_encodes_like_the_indexing_job(client, tiny_bm25_index: Path) -> None:
    response = client.post("/v1/indexes/tiny/documents", json={"documents": [NEW]})
    assert response.status_code == 200, response.text
    assert response.json() | {"took_ms": 0} == {"index": "tiny", "upserted": 1, "documents": 9, "took_ms": 0}
    index = EmbeddedIndex.open(tiny_bm25_index)
    encoder = load_encoder(index.encoder_dir)
    expected = encoder.encode_document([f"{NEW['title']} {NEW['text']}"])[0]
    assert index.document_vector("n1") == pytest.approx(expected)
    hit = client.post("/v1/search", json={"query": "hypersonic glider"}).json()["hits"][0]
    assert (hit["id"], hit["title"], hit["snippet"]) == ("n1", NEW["title"], NEW["text"])


def test_upsert_replaces_an_existing_id(client) -> None:
    assert "d5" in search_ids(client, "buckling shells")
    replacement = {"id": "d5", "title": "Propeller noise", "text": "Propeller tip noise at cruise."}
    response = client.post("/v1/indexes/tiny/documents", json={"documents": [replacement]})
    assert response.status_code == 200 and response.json()["documents"] == 8
    assert "d5" not in search_ids(client, "buckling shells")
    assert search_ids(client, "propeller tip noise")[0] == "d5"


def test_a_repeated_id_keeps_the_last_document(client) -> None:
    first, last = dict(NEW, text="Ornithopter."), dict(NEW, text="Glider.")
    response = client.post("/v1/indexes/tiny/documents", json={"documents": [first, last]})
    assert response.status_code == 200 and response.json()["upserted"] == 1 and response.json()["documents"] == 9
    assert search_ids(client, "ornithopter") == [] and search_ids(client, "glider") == ["n1"]


def test_delete(client) -> None:
    assert "d3" in search_ids(client, "laminar boundary layer")
    response = client.delete("/v1/indexes/tiny/documents/d3")
    assert response.status_code == 200, response.text
    assert response.json() == {"index": "tiny", "id": "d3", "deleted": True, "documents": 7}
    assert "d3" not in search_ids(client, "laminar boundary layer")
    assert_error(client.delete("/v1/indexes/tiny/documents/d3"), 404, "unknown_document", "'d3'")


def test_ids_with_slashes_and_unicode(client) -> None:
    document = {"id": "a/b ü", "title": "", "text": "Ornithopter flapping wings."}
    assert client.post("/v1/indexes/tiny/documents", json={"documents": [document]}).status_code == 200
    assert search_ids(client, "ornithopter") == ["a/b ü"]
    assert client.delete("/v1/indexes/tiny/documents/a%2Fb%20%C3%BC").status_code == 200
    assert search_ids(client, "ornithopter") == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"documents": []}, "body.documents"),
        ({"documents": [{"id": "x"}]}, "body.documents.0.text"),
        ({"documents": [{"id": " ", "text": "a"}]}, "empty or only whitespace"),
        ({"documents": [{"id": "a\nb", "text": "a"}]}, "control characters"),
        ({"documents": [{"id": "\x1c", "text": "a"}]}, "control characters"),
        ({"documents": [{"id": "\u3000", "text": "a"}]}, "empty or only whitespace"),
        ({"documents": [{"id": str(i), "text": "a"} for i in range(101)]}, "body.documents"),
        ({"documents": [{"id": "x", "text": "a", "lang": "en"}]}, "body.documents.0.lang"),
    ],
)
def test_invalid_documents(client, body: dict, fragment: str) -> None:
    assert_error(client.post("/v1/indexes/tiny/documents", json=body), 422, "invalid_request", fragment)
    assert client.get("/v1/indexes/tiny").json()["documents"] == 8


def test_unknown_index_for_documents(client) -> None:
    assert_error(client.post("/v1/indexes/nope/documents", json={"documents": [NEW]}), 404, "unknown_index")
    assert_error(client.delete("/v1/indexes/nope/documents/d1"), 404, "unknown_index")


def test_searches_during_updates_never_fail(tiny_bm25_index: Path) -> None:
    """Searches on many threads while documents are added and deleted: every answer is a 200 and
    consistent (hits sorted, every hit with its stored title)."""
    import httpx

    failures: list[str] = []
    stop = threading.Event()

    with LiveServer(make_settings(f"tiny={tiny_bm25_index}")) as server:

        def searcher() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                while not stop.is_set():
                    response = http.post("/v1/search", json={"query": "wing heat shells glider", "explain": True})
                    if response.status_code != 200:
                        failures.append(response.text)
                        continue
                    hits = response.json()["hits"]
                    scores = [hit["score"] for hit in hits]
                    if scores != sorted(scores, reverse=True) or any(hit["title"] is None for hit in hits):
                        failures.append(response.text)

        threads = [threading.Thread(target=searcher) for _ in range(4)]
        for thread in threads:
            thread.start()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i in range(15):
                document = {"id": f"g{i}", "title": f"Glider {i}", "text": "Glider wing heating."}
                assert http.post("/v1/indexes/tiny/documents", json={"documents": [document]}).status_code == 200
                if i % 3 == 2:
                    assert http.delete(f"/v1/indexes/tiny/documents/g{i - 1}").status_code == 200
            final = http.get("/v1/indexes/tiny").json()
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert final["documents"] == 8 + 15 - 5
    assert final["build"]["generation"] >= 1 + 15 + 5  # one commit per update, plus background merges
    assert final["build"]["segments"] < 1 + 15


def test_an_update_does_not_wait_for_running_searches(tiny_bm25_index: Path) -> None:
    """A search reads a pinned snapshot, so an update commits while the search is still reading (held
    inside its document fetch here), and the search still answers from the files it started on."""
    import httpx

    with LiveServer(make_settings(f"tiny={tiny_bm25_index}")) as server:
        handle = server.app.state.registry.get("tiny")
        backend = handle._backend
        inside, proceed = threading.Event(), threading.Event()
        real_get_documents = backend.get_documents

        def held_get_documents(doc_ids):  # noqa: ANN001, ANN202
            inside.set()
            proceed.wait(timeout=60)
            return real_get_documents(doc_ids)

        backend.get_documents = held_get_documents
        results: dict[str, httpx.Response] = {}

        def call(name: str, method: str, path: str, body: dict) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                results[name] = http.request(method, path, json=body)

        search = threading.Thread(target=call, args=("search", "POST", "/v1/search", {"query": "wing"}))
        search.start()
        assert inside.wait(timeout=60)
        backend.get_documents = real_get_documents  # later requests are not held
        call("update", "POST", "/v1/indexes/tiny/documents", {"documents": [NEW]})
        assert results["update"].status_code == 200, results["update"].text
        assert search.is_alive(), "the search finished before the update: nothing was tested"
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert [h["id"] for h in http.post("/v1/search", json={"query": "glider"}).json()["hits"]] == ["n1"]
        proceed.set()
        search.join(timeout=60)
    assert results["search"].status_code == 200
    assert all(hit["title"] for hit in results["search"].json()["hits"])


def test_another_process_updating_the_index_is_followed(client, tiny_bm25_index: Path) -> None:
    """A change committed by someone else (another worker, a script) is seen by the next request."""
    assert search_ids(client, "ornithopter") == []
    other = EmbeddedIndex.open(tiny_bm25_index)
    encoder = load_encoder(other.encoder_dir)
    from sparsearch.types import Document

    document = Document(doc_id="o1", title="Ornithopters", text="Flapping wing ornithopter.")
    other.upsert([document], encoder.encode_document([document.full_text]))
    assert search_ids(client, "ornithopter") == ["o1"]
    assert client.post("/v1/search", json={"query": "ornithopter"}).json()["hits"][0]["title"] == "Ornithopters"


def test_an_index_rebuilt_with_another_model_is_reopened_with_its_encoder(
    client, tiny_bm25_index: Path, tiny_wordpiece_index: Path
) -> None:
    assert client.get("/v1/indexes/tiny").json()["model"] == "bm25"
    replaced = tiny_bm25_index.with_name("replaced")
    tiny_bm25_index.rename(replaced)
    tiny_wordpiece_index.rename(tiny_bm25_index)
    assert client.get("/v1/indexes/tiny").json()["model"] == "bm25-wordpiece"
    assert client.post("/v1/search", json={"query": "aeroelastic", "explain": True}).json()["model"] == "bm25-wordpiece"


def test_two_indexes_are_independent(tiny_bm25_index: Path, tiny_wordpiece_index: Path) -> None:
    with app_client(make_settings(f"a={tiny_bm25_index}", f"b={tiny_wordpiece_index}")) as client:
        assert client.post("/v1/indexes/b/documents", json={"documents": [NEW]}).status_code == 200
        assert search_ids(client, "glider", "b") == ["n1"]
        assert search_ids(client, "glider", "a") == []
        listed = client.get("/v1/indexes").json()["indexes"]
        assert [(i["name"], i["model"], i["documents"], i["default"]) for i in listed] == [
            ("a", "bm25", 8, True),
            ("b", "bm25-wordpiece", 9, False),
        ]
