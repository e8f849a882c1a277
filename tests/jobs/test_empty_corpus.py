"""An input without documents is refused before anything is written or replaced (an existing index is
left as it was, an engine is not contacted), unless ``allow_empty`` asks for an empty index on purpose."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import sparsearch
from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import CorpusFormatError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.jobs.build_engine import index_corpus
from sparsearch.jobs.source import Source, check_not_empty, open_source

EMPTY_FILES = {"empty": "", "blank lines": "\n  \n\t\n"}


def snapshot(directory: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``directory`` (to prove it was not touched)."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(params=["empty file", "blank-line file", "empty BEIR folder"])
def empty_corpus(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """``(what to pass as data, the corpus file the message must name)``."""
    if request.param == "empty BEIR folder":
        folder = tmp_path / "beir"
        folder.mkdir()
        (folder / "corpus.jsonl").write_text("", encoding="utf-8")
        return folder, folder / "corpus.jsonl"
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(EMPTY_FILES["empty" if request.param == "empty file" else "blank lines"], encoding="utf-8")
    return corpus, corpus


class _Untouchable:
    """A search engine backend that fails the test on any use: the check must come before connecting."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the engine was contacted (backend.{name}) before the empty corpus was refused")


# -- detecting emptiness ---------------------------------------------------------------------------------
def test_is_empty_peeks_without_parsing(tmp_path: Path, empty_corpus: tuple[Path, Path]) -> None:
    data, _ = empty_corpus
    assert open_source(data).is_empty()
    # only the first non-blank line is looked at: a malformed line further down is the indexer's to report
    corpus = tmp_path / "one.jsonl"
    corpus.write_text('\n{"_id": "a", "text": "x"}\n{not json\n', encoding="utf-8")
    assert not open_source(corpus).is_empty()
    assert open_source([]).is_empty() and open_source(iter(())).is_empty()
    assert not open_source(["one document"]).is_empty()


def test_check_not_empty_names_the_file_and_the_fix(empty_corpus: tuple[Path, Path]) -> None:
    data, corpus_file = empty_corpus
    with pytest.raises(CorpusFormatError) as caught:
        check_not_empty(open_source(data))
    message = str(caught.value)
    assert message.startswith(f"{corpus_file}: no documents")
    assert "check the path" in message and "--allow-empty" in message and "allow_empty=True" in message
    check_not_empty(open_source(data), allow_empty=True)  # no error
    with pytest.raises(CorpusFormatError, match=r"^<documents>: no documents were given.*allow_empty=True"):
        check_not_empty(Source(documents=[]))


# -- the embedded build ----------------------------------------------------------------------------------
def test_embedded_build_refuses_an_empty_corpus_and_keeps_the_existing_index(
    empty_corpus: tuple[Path, Path], tiny_bm25_index: Path
) -> None:
    data, corpus_file = empty_corpus
    before = snapshot(tiny_bm25_index)
    with pytest.raises(CorpusFormatError, match="--allow-empty") as caught:
        build_embedded_index(data, tiny_bm25_index, load_encoder("bm25"), overwrite=True)
    assert str(corpus_file) in str(caught.value)
    assert snapshot(tiny_bm25_index) == before
    assert not [p for p in tiny_bm25_index.parent.iterdir() if ".tmp" in p.name]  # no temporary directory left


def test_embedded_build_of_an_empty_corpus_on_purpose(empty_corpus: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = empty_corpus
    index, summary = build_embedded_index(data, tmp_path / "empty-index", load_encoder("bm25"), allow_empty=True)
    assert summary.documents == 0 and index.doc_ids == []


# -- the Python front door -----------------------------------------------------------------------------
@pytest.mark.parametrize("documents", [[], (d for d in [])], ids=["list", "generator"])
def test_build_index_refuses_empty_documents(documents: object, tiny_bm25_index: Path) -> None:
    before = snapshot(tiny_bm25_index)
    with pytest.raises(CorpusFormatError, match=r"<documents>: no documents were given.*allow_empty=True"):
        sparsearch.build_index(documents, tiny_bm25_index, model="bm25", overwrite=True)
    assert snapshot(tiny_bm25_index) == before


def test_build_index_of_an_empty_corpus_on_purpose(empty_corpus: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = empty_corpus
    with pytest.raises(CorpusFormatError, match="allow_empty=True"):
        sparsearch.build_index(data, tmp_path / "index", model="bm25")
    assert not (tmp_path / "index").exists()
    searcher = sparsearch.build_index([], tmp_path / "index", model="bm25", allow_empty=True)
    assert searcher.search("anything", top_k=3) == []


# -- the engine build (no server: the check comes before the first request) ------------------------------
def test_engine_build_refuses_an_empty_corpus_before_contacting_the_engine(
    empty_corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    data, corpus_file = empty_corpus
    with pytest.raises(CorpusFormatError, match="--allow-empty") as caught:
        index_corpus(data, _Untouchable(), load_encoder("bm25"), failures_path=tmp_path / "f.jsonl")  # type: ignore[arg-type]
    assert str(corpus_file) in str(caught.value)
    assert not (tmp_path / "f.jsonl").exists()
    # with allow_empty the job goes on to the engine (which this fake refuses)
    with pytest.raises(AssertionError, match="the engine was contacted"):
        index_corpus(data, _Untouchable(), load_encoder("bm25"), allow_empty=True)  # type: ignore[arg-type]
