"""The front door: ``import sparsearch`` (lazy), ``build_index``, ``Searcher`` and the README's Python example."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sparsearch
from sparsearch.errors import CorpusFormatError, IndexExistsError
from sparsearch.search import Searcher
from sparsearch.types import Hit

ROOT = Path(__file__).resolve().parents[1]


def readme_python_example() -> str:
    """The first ```python block of README.md, verbatim."""
    match = re.search(r"^```python\n(.*?)^```$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S)
    assert match is not None, "README.md has no ```python block"
    return match.group(1)


def test_the_readme_example_runs_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The snippet reads data/cranfield and writes indexes/ relative to the working directory: run it in
    # a fresh directory that sees the bundled data through a symlink, so the clone stays untouched.
    (tmp_path / "data").symlink_to(ROOT / "data", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_python_example(), "README.md", "exec"), {"__name__": "__readme__"})  # noqa: S102
    lines = printed.getvalue().splitlines()
    assert lines == [
        "295 10.47 a note on transitional heat transfer under hypersonic conditions .",
        "1394 10.22 stagnation point heat transfer measurements in hypersonic low density flow .",
        "1395 10.11 low density stagnation point heat transfer measurements in the hypersonic shock tunnel .",
    ]
    assert (tmp_path / "indexes" / "cranfield-py" / "manifest.json").is_file()


def test_import_sparsearch_loads_nothing_heavy() -> None:
    code = (
        "import sys, sparsearch\n"
        "assert sparsearch.__version__\n"
        "heavy = sorted(m for m in ('numba', 'torch', 'numpy', 'fastapi', 'opensearchpy') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_front_door_lists_its_names() -> None:
    assert set(sparsearch.__all__) >= {
        "load_encoder",
        "build_index",
        "Searcher",
        "Document",
        "SparseVector",
        "EncodedQuery",
        "Hit",
        "Encoder",
    }
    assert sparsearch.Searcher is Searcher
    assert sparsearch.Hit is Hit
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sparsearch.nothing  # noqa: B018


def test_build_index_from_strings_numbers_them(tmp_path: Path) -> None:
    texts = ["hypersonic flow over a wedge", "heat transfer in laminar flow", "boundary layer transition"]
    with sparsearch.build_index(texts, tmp_path / "index", model="bm25") as searcher:
        hits = searcher.search("heat transfer", top_k=5)
    assert [hit.id for hit in hits] == ["1"]
    assert hits[0].text == "heat transfer in laminar flow"
    assert hits[0].title == ""


def test_build_index_from_dicts_keeps_ids_titles_and_texts(tmp_path: Path) -> None:
    documents = [
        {"_id": "a", "title": "Wedges", "text": "hypersonic flow over a wedge"},
        {"id": 7, "title": "Heat", "text": "heat transfer in hypersonic flow"},
        sparsearch.Document(doc_id="c", text="boundary layer transition"),
    ]
    searcher = sparsearch.build_index(documents, tmp_path / "index", model="bm25")
    hits = searcher.search("hypersonic heat", top_k=10)
    assert [(hit.id, hit.title) for hit in hits] == [("7", "Heat"), ("a", "Wedges")]
    assert hits[0].text == "heat transfer in hypersonic flow"
    assert hits[0].score > hits[1].score > 0


def test_build_index_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    sparsearch.build_index(["one document"], tmp_path / "index", model="bm25")
    with pytest.raises(IndexExistsError):
        sparsearch.build_index(["another"], tmp_path / "index", model="bm25")
    with sparsearch.build_index(["another"], tmp_path / "index", model="bm25", overwrite=True) as searcher:
        assert searcher.backend.count() == 1
        assert searcher.search("another")[0].text == "another"


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ([{"_id": "a", "text": "x"}, {"_id": "a", "text": "y"}], "duplicate id 'a'"),
        ([{"title": "no id", "text": "x"}], "item 0"),
        ([3.5], "item 0 is a float"),
    ],
)
def test_build_index_names_the_bad_item(tmp_path: Path, documents: list, message: str) -> None:
    with pytest.raises(CorpusFormatError, match=message):
        sparsearch.build_index(documents, tmp_path / "index", model="bm25")


def test_searcher_open_reads_an_existing_index_with_its_own_encoder(tiny_bm25_index: Path) -> None:
    with Searcher.open(tiny_bm25_index) as searcher:
        assert searcher.encoder.fingerprint == searcher.backend.fingerprint
        first = searcher.backend.get_documents(searcher.backend.doc_ids[:1])[0]  # type: ignore[attr-defined]
        query = " ".join(first.full_text.split()[:6])
        hits = searcher.search(query, top_k=3)
        batch = searcher.search_batch([query, "the"], top_k=3)
    assert hits and all(isinstance(hit, Hit) for hit in hits)
    assert batch[0] == hits
    assert all(hit.title is not None and hit.text is not None for hit in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    bare = Searcher.open(tiny_bm25_index).search(query, top_k=3, with_documents=False)
    assert [(h.doc_id, h.score) for h in bare] == [(h.doc_id, h.score) for h in hits]
    assert all(h.title is None and h.text is None for h in bare)
