"""Export to Anserini's JsonVectorCollection and import back (no JVM): the files, the sidecar, the
quantisation bound, and the errors for malformed collections."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch.backends.embedded.index import EmbeddedIndex
from sparsearch.backends.lucene.impacts import impact_scale, quantise, query_impacts
from sparsearch.cli import app
from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import CorpusFormatError, EncoderMismatchError, IndexExistsError, UsageError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.jobs.export import export_jsonvector, iter_index_vectors
from sparsearch.jobs.jsonvector import SIDECAR_FILE, ExportInfo, JsonVectorCollection, is_jsonvector_folder
from sparsearch.jobs.source import open_source


def test_quantise_rounds_and_drops_zeros() -> None:
    assert quantise({"a": 1.0004, "b": 0.0004, "c": 0.0006}, 1000.0) == {"a": 1000, "c": 1}
    assert impact_scale(0.0) == 1.0
    assert query_impacts({"a": -1.0, "b": 0.0}) == ({}, 1.0)
    impacts, scale = query_impacts({"a": 4.0, "b": 1.0}, 100)
    assert (impacts, scale) == ({"a": 100, "b": 25}, 25.0)


def test_export_files_sidecar_and_bound(tiny_bm25_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    summary = export_jsonvector(tiny_bm25_index, out, docs_per_file=3)
    info = ExportInfo.read(out)
    index = EmbeddedIndex.open(tiny_bm25_index)
    vectors = {d.doc_id: dict(zip(tokens, w.tolist(), strict=True)) for d, tokens, w in iter_index_vectors(index)}
    largest = max(w for v in vectors.values() for w in v.values())
    assert info.scale == pytest.approx(1000 / largest)  # the stated rule
    assert info.documents == index.count() == len(vectors)
    assert info.encoder == index.fingerprint
    assert len(info.files) == -(-info.documents // 3)  # ceil: at most 3 documents per file
    assert (out / "encoder").is_dir() and summary.info == info
    assert "pyserini.index.lucene --collection JsonVectorCollection" in info.pyserini_command
    records = [json.loads(line) for f in info.files for line in (out / "docs" / f).read_text().splitlines()]
    assert [r["id"] for r in records] == list(vectors)
    for record in records:
        assert all(isinstance(i, int) and i > 0 for i in record["vector"].values())
        for token, weight in vectors[record["id"]].items():  # each weight within 0.5 / scale, zeros dropped
            assert abs(record["vector"].get(token, 0) / info.scale - weight) <= 0.5 / info.scale + 1e-9
    assert max(i for r in records for i in r["vector"].values()) == 1000
    with pytest.raises(IndexExistsError, match="--overwrite"):
        export_jsonvector(tiny_bm25_index, out)


def test_import_gives_the_quantised_vectors_and_same_encoder(tiny_bm25_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    info = export_jsonvector(tiny_bm25_index, out, scale=50.0).info
    assert info.max_impact is None and info.scale == 50.0
    assert is_jsonvector_folder(out)
    source = open_source(out)
    imported, _ = build_embedded_index(source, tmp_path / "imported", load_encoder(source.saved_encoder_dir))
    original = EmbeddedIndex.open(tiny_bm25_index)
    assert imported.fingerprint == original.fingerprint
    assert imported.doc_ids == original.doc_ids
    assert imported.get_documents(original.doc_ids) == original.get_documents(original.doc_ids)
    for doc_id in original.doc_ids:
        expected = {t: i / 50.0 for t, i in quantise(original.document_vector(doc_id), 50.0).items()}
        assert imported.document_vector(doc_id) == pytest.approx(expected, rel=1e-6)
    # searching: the imported index ranks by the quantised document weights, exactly
    encoder = load_encoder(original.encoder_dir)
    query = encoder.encode_query("hypersonic flow over a wing")
    brute = {
        d: sum(w * imported.document_vector(d).get(t, 0.0) for t, w in query.weights.items()) for d in original.doc_ids
    }
    expected_hits = sorted(((-s, d) for d, s in brute.items() if s > 0))[:5]
    hits = imported.search(query, 5)
    assert [h.doc_id for h in hits] == [d for _, d in expected_hits]
    assert [h.score for h in hits] == pytest.approx([-s for s, _ in expected_hits], rel=1e-5)


def test_import_refuses_another_encoder(tiny_bm25_index: Path, tmp_path: Path) -> None:
    export_jsonvector(tiny_bm25_index, tmp_path / "export")
    with pytest.raises(EncoderMismatchError, match="export"):
        build_embedded_index(tmp_path / "export", tmp_path / "imported", load_encoder("bm25-wordpiece"))


def _foreign(tmp_path: Path, lines: list[str]) -> Path:
    folder = tmp_path / "foreign"
    folder.mkdir(exist_ok=True)
    (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


GOOD = '{"id": "a", "contents": "wing flow", "vector": {"wing": 200, "flow": 100}}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"id": "b", "contents": "x", "vector": {"wing": 1.5}}',
            r'part-0.jsonl:2: field "vector" token .wing.: .*not an integer',
        ),
        (
            '{"id": "b", "contents": "x", "vector": {"wing": -3}}',
            r'part-0.jsonl:2: field "vector" token .wing.: .*negative',
        ),
        ('{"id": "b", "contents": "x", "vector": {"wing": "7"}}', r"part-0.jsonl:2: .*not an integer"),
        ('{"contents": "x", "vector": {"wing": 3}}', r'part-0.jsonl:2: missing field "id"'),
        ('{"id": "b", "contents": "x"}', r'part-0.jsonl:2: missing field "vector"'),
        ('{"id": "b", "contents": 5, "vector": {}}', r'part-0.jsonl:2: field "contents" must be a string'),
        (
            '{"id": "a", "contents": "x", "vector": {"wing": 3}}',
            r'part-0.jsonl:2: duplicate "id" .a. \(first at part-0.jsonl:1\)',
        ),
        ('{"id": "b", "vector": {"wing": 3}', r"part-0.jsonl:2: not valid JSON"),
    ],
)
def test_malformed_lines_name_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    collection = JsonVectorCollection(_foreign(tmp_path, [GOOD, line]), scale=100.0)
    with pytest.raises(CorpusFormatError, match=message):
        list(collection)


def test_foreign_collection_needs_a_scale_and_divides_by_it(tmp_path: Path) -> None:
    folder = _foreign(tmp_path, [GOOD])
    assert is_jsonvector_folder(folder)
    with pytest.raises(UsageError, match="--scale"):
        open_source(folder)
    [(document, vector)] = list(open_source(folder, scale=100.0).jsonvector)
    assert document.doc_id == "a" and document.text == "wing flow"
    assert vector == {"wing": 2.0, "flow": 1.0}
    with pytest.raises(UsageError, match="--scale is for a JsonVectorCollection"):
        open_source(Path(__file__).parents[1] / "data" / "tiny", scale=100.0)


def test_sidecar_scale_cannot_be_contradicted(tiny_bm25_index: Path, tmp_path: Path) -> None:
    export_jsonvector(tiny_bm25_index, tmp_path / "export", scale=10.0)
    with pytest.raises(UsageError, match="contradicts"):
        open_source(tmp_path / "export", scale=20.0)


def test_cli_export_then_index_foreign_collection(tiny_bm25_index: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["export", "--index", str(tiny_bm25_index), "--output", str(tmp_path / "exp")])
    assert done.exit_code == 0, done.output
    assert "python -m pyserini.index.lucene" in done.output
    # the same vectors as another tool's: without the sidecar, --model and --scale are needed
    foreign = tmp_path / "foreign"
    shutil.copytree(tmp_path / "exp" / "docs", foreign)
    scale = json.loads((tmp_path / "exp" / SIDECAR_FILE).read_text())["scale"]
    done = runner.invoke(app, ["index", "--data", str(foreign), "--index", str(tmp_path / "a"), "--scale", str(scale)])
    assert done.exit_code == 2 and "pass --model" in done.output, done.output
    done = runner.invoke(
        app, ["index", "--data", str(foreign), "--index", str(tmp_path / "b"), "--model", "bm25", "--scale", str(scale)]
    )
    assert done.exit_code == 0, done.output
    from sparsearch.search import Searcher

    # refitted BM25 on the same texts: the same encoder, so the same ranking as the original index
    with Searcher.open(tmp_path / "b") as imported, Searcher.open(tiny_bm25_index) as original:
        assert imported.backend.fingerprint == original.backend.fingerprint
        for query in ("boundary layer flow", "hypersonic wing"):
            assert [h.doc_id for h in imported.search(query, 5)] == [h.doc_id for h in original.search(query, 5)]
