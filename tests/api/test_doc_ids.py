"""One document id rule for the corpus reader and the HTTP API (sparsearch.corpus.doc_id_problem)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsearch.corpus import DOC_ID_PATTERN, MAX_DOC_ID_CHARS, doc_id_problem, iter_corpus, iter_documents
from sparsearch.errors import CorpusFormatError
from tests.api.test_search import assert_error

HUGE = 100_000
PATTERN = re.compile(DOC_ID_PATTERN)

VALID = ["d1", "a/b ü", " padded ", "x" * MAX_DOC_ID_CHARS, "\u00a0a", "日本語", "😀", "a\u3000b"]
INVALID = [
    ("", "empty or only whitespace"),
    (" ", "empty or only whitespace"),
    ("\u3000\u00a0", "empty or only whitespace"),
    ("\ufeff", "empty or only whitespace"),
    ("a\nb", "control characters (U+000A at character 1)"),
    ("\x1c", "control characters"),
    ("\x7f", "control characters"),
    ("a\x85", "control characters (U+0085"),  # Python's str.strip() calls U+0085 whitespace: one rule for both
    ("x" * (MAX_DOC_ID_CHARS + 1), "has 257 characters; an id has at most 256"),
    ("\U0001f680" * 129, "takes 516 bytes in UTF-8; an id takes at most 512"),
    ("\ud800", "unpaired UTF-16 surrogate"),
]


@pytest.mark.parametrize("doc_id", VALID)
def test_valid_ids(doc_id: str) -> None:
    assert doc_id_problem(doc_id) is None
    assert PATTERN.fullmatch(doc_id)


@pytest.mark.parametrize(("doc_id", "problem"), INVALID)
def test_invalid_ids_say_why(doc_id: str, problem: str) -> None:
    assert problem in doc_id_problem(doc_id)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=MAX_DOC_ID_CHARS))
def test_the_schema_pattern_is_the_rule(doc_id: str) -> None:
    """What the OpenAPI schema's pattern accepts is what the server accepts (length aside: maxLength;
    the UTF-8 byte limit cannot be a pattern)."""
    problem = doc_id_problem(doc_id)
    assert bool(PATTERN.fullmatch(doc_id)) == (problem is None or "bytes in UTF-8" in problem)


@pytest.mark.timeout(60)  # the old pattern took minutes on these: a regression hangs here, then fails
@pytest.mark.parametrize(
    ("doc_id", "matches"),
    [("a" * HUGE, True), ("a" * HUGE + "\x01", False), (" " * HUGE + "\x01", False), ("a " * HUGE + "\x85", False)],
)
def test_the_pattern_stays_linear_on_huge_ids(doc_id: str, matches: bool) -> None:
    assert bool(PATTERN.fullmatch(doc_id)) is matches
    assert doc_id_problem(doc_id) == f"has {len(doc_id):,} characters; an id has at most {MAX_DOC_ID_CHARS}"


def test_the_api_schema_shows_the_rule(client) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["DocumentIn"]["properties"]["id"]
    assert schema["pattern"] == DOC_ID_PATTERN and schema["maxLength"] == MAX_DOC_ID_CHARS


@pytest.mark.parametrize(("doc_id", "problem"), INVALID)
def test_corpus_reader_and_api_refuse_the_same_ids(client, tmp_path: Path, doc_id: str, problem: str) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"_id": "ok", "text": "fine"}) + "\n" + json.dumps({"_id": doc_id, "text": "x"}) + "\n"
    )
    with pytest.raises(CorpusFormatError) as caught:
        list(iter_corpus(corpus))
    assert str(caught.value).startswith(f"{corpus}:2: ")
    shown = problem if len(doc_id) <= MAX_DOC_ID_CHARS else "String should have at most 256 characters"
    body = json.dumps({"documents": [{"id": doc_id, "text": "x"}]})  # ASCII escapes: a lone surrogate too
    response = client.post("/v1/indexes/tiny/documents", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 422, "invalid_request", "body.documents.0.id", shown)
    with pytest.raises(CorpusFormatError, match=re.escape(problem.split(" (")[0])):
        list(iter_documents([{"_id": doc_id, "text": "x"}]))


@pytest.mark.parametrize("doc_id", VALID)
def test_corpus_reader_and_api_accept_the_same_ids(client, tmp_path: Path, doc_id: str) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": doc_id, "text": "x"}) + "\n")
    assert [document.doc_id for document in iter_corpus(corpus)] == [doc_id]
    response = client.post("/v1/indexes/tiny/documents", json={"documents": [{"id": doc_id, "text": "ornithopter"}]})
    assert response.status_code == 200, response.text


def test_a_huge_id_is_refused_at_once_with_a_short_message(client, tmp_path: Path) -> None:
    """A 100,000-character id used to reach the indexer's warning, which took minutes to print it."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": "a" * HUGE, "text": ""}) + "\n")
    with pytest.raises(CorpusFormatError) as caught:
        list(iter_corpus(corpus))
    message = str(caught.value)
    assert "has 100,000 characters; an id has at most 256" in message and len(message) < 400
    with pytest.raises(CorpusFormatError, match="has 100,000 characters") as caught:
        list(iter_documents([{"id": "a" * HUGE, "text": ""}]))
    assert len(str(caught.value)) < 400
    response = client.post("/v1/indexes/tiny/documents", json={"documents": [{"id": "a" * HUGE, "text": "x"}]})
    assert_error(response, 422, "invalid_request", "at most 256 characters")
