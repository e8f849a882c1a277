"""The batch encoding job: encode -> index equals a direct index; resuming after a crash; shards;
settings checks; the encode and index commands end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.corpus import iter_corpus
from sparsearch.encoders.neural import EncodingOptions
from sparsearch.encoders.registry import load_encoder
from sparsearch.encoders.splade import SpladeEncoder
from sparsearch.errors import EncoderMismatchError, IndexFormatError, UsageError
from sparsearch.jobs.build_embedded import build_embedded_index
from sparsearch.jobs.encode import EncodedOutput, parse_shard, run_encode_job
from tests.tiny_models import build_tiny_bert

OPTIONS = EncodingOptions(max_length=32, passage_overlap=8, batch_tokens=256)
runner = CliRunner()


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("encode-job") / "tiny-bert")


@pytest.fixture
def encoder(mlm_dir: Path) -> SpladeEncoder:
    return SpladeEncoder.from_mlm(mlm_dir, options=OPTIONS)


def index_vectors(index) -> dict[str, dict[str, float]]:  # noqa: ANN001
    """``doc_id -> {token: weight}`` read back from an embedded index's postings."""
    p = index.postings
    terms, docs, weights = p.to_coo()
    vectors: dict[str, dict[str, float]] = {doc_id: {} for doc_id in index.doc_ids}
    for term, doc, weight in zip(terms.tolist(), docs.tolist(), weights.tolist(), strict=True):
        vectors[index.doc_ids[doc]][p.vocab[term]] = weight
    return vectors


def assert_same_index(actual, expected) -> None:  # noqa: ANN001
    assert actual.doc_ids == expected.doc_ids
    assert actual.fingerprint == expected.fingerprint
    a, b = index_vectors(actual), index_vectors(expected)
    for doc_id in b:
        assert set(a[doc_id]) == set(b[doc_id])
        assert all(abs(a[doc_id][t] - w) < 1e-5 for t, w in b[doc_id].items())
    assert [d.title for d in actual.get_documents(actual.doc_ids)] == [
        d.title for d in expected.get_documents(expected.doc_ids)
    ]


@pytest.fixture
def direct_index(encoder: SpladeEncoder, tiny_data: Path, tmp_path: Path):  # noqa: ANN201
    index, _ = build_embedded_index(tiny_data, tmp_path / "direct", encoder)
    return index


def test_encode_then_index_equals_direct_index(encoder, tiny_data: Path, tmp_path: Path, direct_index) -> None:
    done: list[int] = []
    summary = run_encode_job(
        tiny_data, tmp_path / "out", encoder, model_spec="tiny", batch_size=2, chunk_size=3, on_progress=done.append
    )
    assert summary.complete and summary.documents == 8 and summary.encoded_now == 8 and done == [3, 3, 2]
    assert summary.empty_documents == ["d6"]
    manifest = json.loads((tmp_path / "out" / "encode_manifest.json").read_text())
    assert manifest["encoding"] == {
        "max_length": 32,
        "passage_overlap": 8,
        "max_active_dims": None,
        "min_weight": 0.0,
        "precision": "float32",
        "max_passages": None,
    }
    chunk = tmp_path / "out" / "shard-00000-of-00001" / "chunk-000000"
    assert np.load(chunk / "indptr.npy").dtype == np.int64 and np.load(chunk / "term_ids.npy").dtype == np.int32
    index, built = build_embedded_index(
        tmp_path / "out", tmp_path / "index", load_encoder(tmp_path / "out" / "encoder")
    )
    assert built.empty_documents == ["d6"]
    assert_same_index(index, direct_index)


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_never_duplicates_or_drops(encoder, tiny_data, tmp_path: Path, direct_index) -> None:
    out = tmp_path / "out"
    real = encoder.encode_document_batch
    calls = {"n": 0}

    def crashing(texts):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 3:  # inside the second chunk
            raise Crash("power cut")
        return real(texts)

    encoder.encode_document_batch = crashing  # type: ignore[method-assign]
    with pytest.raises(Crash):
        run_encode_job(tiny_data, out, encoder, model_spec="tiny", batch_size=2, chunk_size=3)
    shard = out / "shard-00000-of-00001"
    progress = json.loads((shard / "progress.json").read_text())
    assert progress["docs"] == 3 and not progress["complete"]
    assert sorted(p.name for p in shard.iterdir()) == ["chunk-000000", "progress.json"]
    (shard / "chunk-000001").mkdir()  # as if a crash hit between the rename and progress.json
    (shard / "chunk-000001" / "indptr.npy").write_bytes(b"garbage")

    encoder.encode_document_batch = real  # type: ignore[method-assign]
    done: list[int] = []
    summary = run_encode_job(
        tiny_data, out, encoder, model_spec="tiny", batch_size=2, chunk_size=3, on_progress=done.append
    )
    assert summary.resumed_from == 3 and summary.encoded_now == 5 and summary.documents == 8 and done == [3, 3, 2]
    index, _ = build_embedded_index(out, tmp_path / "index", load_encoder(out / "encoder"))
    assert_same_index(index, direct_index)
    again = run_encode_job(tiny_data, out, encoder, model_spec="tiny", batch_size=2, chunk_size=3)
    assert again.encoded_now == 0 and again.documents == 8


def test_shards_split_the_corpus_and_merge_in_order(encoder, tiny_data, tmp_path: Path, direct_index) -> None:
    shared = tmp_path / "shared"
    sizes = [
        run_encode_job(tiny_data, shared, encoder, model_spec="tiny", shard=(i, 3), chunk_size=2).documents
        for i in range(3)
    ]
    assert sizes == [3, 3, 2]
    index, _ = build_embedded_index(shared, tmp_path / "index", load_encoder(shared / "encoder"))
    assert_same_index(index, direct_index)
    # separate machines: each writes its own directory; copying the shard folders together merges them
    machines = [tmp_path / f"machine{i}" for i in range(3)]
    for i, out in enumerate(machines):
        run_encode_job(tiny_data, out, encoder, model_spec="tiny", shard=(i, 3), chunk_size=2)
    for out in machines[1:]:
        for shard in out.glob("shard-*"):
            shutil.copytree(shard, machines[0] / shard.name)
    index, _ = build_embedded_index(machines[0], tmp_path / "index2", load_encoder(machines[0] / "encoder"))
    assert_same_index(index, direct_index)


def test_missing_and_incomplete_shards_are_named(encoder, tiny_data, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_encode_job(tiny_data, out, encoder, model_spec="tiny", shard=(0, 2))
    with pytest.raises(IndexFormatError, match=r"shard 1/2 is missing; run sparsearch encode --shard 1/2"):
        EncodedOutput(out)
    run_encode_job(tiny_data, out, encoder, model_spec="tiny", shard=(1, 2))
    progress_file = out / "shard-00001-of-00002" / "progress.json"
    progress = json.loads(progress_file.read_text())
    progress["complete"] = False
    progress_file.write_text(json.dumps(progress))
    with pytest.raises(IndexFormatError, match=r"shard 1/2 is incomplete .* re-run sparsearch encode --shard 1/2"):
        build_embedded_index(out, tmp_path / "index", load_encoder(out / "encoder"))


def test_rerun_with_other_settings_is_refused(encoder, mlm_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_encode_job(tiny_data, out, encoder, model_spec="tiny")
    pruned = SpladeEncoder.from_mlm(mlm_dir, options=OPTIONS.replace(max_active_dims=5))
    with pytest.raises(UsageError, match="encoding"):
        run_encode_job(tiny_data, out, pruned, model_spec="tiny")
    with pytest.raises(UsageError, match="chunk_size"):
        run_encode_job(tiny_data, out, encoder, model_spec="tiny", chunk_size=7)
    with pytest.raises(UsageError, match="num_shards"):
        run_encode_job(tiny_data, out, encoder, model_spec="tiny", shard=(0, 2))
    other = SpladeEncoder.from_mlm(build_tiny_bert(tmp_path / "other" / "tiny-bert", seed=1), options=OPTIONS)
    other.fit(d.full_text for d in iter_corpus(tiny_data))
    assert other.fingerprint == encoder.fingerprint  # same tokenizer and IDF: only the weights differ
    with pytest.raises(EncoderMismatchError, match="was encoded by model 'tiny'"):
        run_encode_job(tiny_data, out, other, model_spec="other")
    changed = tmp_path / "corpus.jsonl"
    changed.write_text((tiny_data / "corpus.jsonl").read_text() + '{"_id": "d9", "text": "new"}\n')
    with pytest.raises(UsageError, match="corpus"):
        run_encode_job(changed, out, encoder, model_spec="tiny")
    summary = run_encode_job(changed, out, encoder, model_spec="tiny", overwrite=True)
    assert summary.documents == 9


def test_index_with_the_same_or_another_model(encoder, mlm_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_encode_job(tiny_data, out, encoder, model_spec="tiny")
    with pytest.raises(EncoderMismatchError, match="index it without --model"):
        build_embedded_index(out, tmp_path / "index", load_encoder("bm25"))
    twin = SpladeEncoder.from_mlm(build_tiny_bert(tmp_path / "twin" / "tiny-bert", seed=1), options=OPTIONS)
    with pytest.raises(EncoderMismatchError, match="not by this --model"):  # same tokenizer, other weights
        build_embedded_index(out, tmp_path / "index", twin)
    same = SpladeEncoder.from_mlm(mlm_dir, options=OPTIONS)  # the --model of the encode run, not fitted
    index, summary = build_embedded_index(out, tmp_path / "index", same)
    assert summary.documents == 8 and index.fingerprint == encoder.fingerprint


def test_rerun_reuses_the_fitted_idf_table(encoder, mlm_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_encode_job(tiny_data, out, encoder, model_spec="tiny", shard=(0, 2))
    again = SpladeEncoder.from_mlm(mlm_dir, options=OPTIONS)

    def no_fit(texts):  # noqa: ANN001, ANN202
        raise AssertionError("the IDF table of the first run should be reused")

    again.fit = no_fit  # type: ignore[method-assign]
    summary = run_encode_job(tiny_data, out, again, model_spec="tiny", shard=(1, 2))
    assert summary.documents == 4 and again.fingerprint == encoder.fingerprint


def test_bm25_cannot_be_batch_encoded(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs a learned model"):
        run_encode_job(tiny_data, tmp_path / "out", load_encoder("bm25"), model_spec="bm25")


@pytest.mark.parametrize("spec", ["2", "a/b", "3/3", "-1/2", "1/0"])
def test_bad_shard_specs(spec: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(spec)


# -- the commands ----------------------------------------------------------------------------------------
def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_encode_index_search_commands(mlm_dir: Path, tiny_data: Path, tmp_path: Path) -> None:
    out, index = tmp_path / "out", tmp_path / "index"
    args = ["encode", "--data", str(tiny_data), "--model", str(mlm_dir), "--output", str(out)]
    args += ["--max-length", "32", "--passage-overlap", "8", "--max-active-dims", "20", "--batch-size", "3"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "documents" in result.stdout and "d6" in result.stderr
    assert json.loads((out / "encode_manifest.json").read_text())["encoding"]["max_active_dims"] == 20
    result = invoke(*args)  # a rerun of a finished job does nothing
    assert result.exit_code == 0 and "resumed after" in result.stdout

    result = invoke("index", "--data", str(out), "--index", str(index))
    assert result.exit_code == 0, result.output
    assert "tiny-bert" in result.stdout
    built = load_encoder(index / "encoder")
    assert built.options.max_active_dims == 20
    vectors = [v for v in built.encode_document([d.full_text for d in iter_corpus(tiny_data)]) if v]
    assert all(len(v) == 20 for v in vectors)
    result = invoke("search", "--index", str(index), "--json", "--top-k", "3", "propeller slipstream")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["hits"]) == 3


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--model", "bm25"], 2, "needs a learned model"),
        (["--model", "/no/such/model"], 1, "unknown model"),
        (["--shard", "5/2"], 2, "--shard"),
    ],
)
def test_encode_command_bad_input(
    args, code: int, message: str, mlm_dir: Path, tiny_data: Path, tmp_path: Path
) -> None:
    base = ["encode", "--data", str(tiny_data), "--model", str(mlm_dir), "--output", str(tmp_path / "out")]
    result = invoke(*base, *args)
    assert result.exit_code == code and message in result.stderr


def test_encode_command_reports_non_utf8_lines(mlm_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b'{"_id": "a", "text": "wing"}\n{"_id": "b", "text": "caf\xe9"}\n')
    args = ["encode", "--data", str(corpus), "--model", str(mlm_dir), "--output", str(tmp_path / "out")]
    result = invoke(*args, "--max-length", "32", "--passage-overlap", "8")
    assert result.exit_code == 1 and "corpus.jsonl:2: not valid UTF-8" in result.stderr


def test_open_source_resolves_each_kind_of_input_once(encoder, tiny_data: Path, tmp_path: Path) -> None:
    from sparsearch.errors import CorpusFormatError
    from sparsearch.jobs.source import open_source

    folder = open_source(tiny_data)
    assert folder.corpus_file == tiny_data / "corpus.jsonl" and folder.encoded is None
    assert folder.count() == len(list(iter_corpus(tiny_data))) == len(list(folder.iter_documents()))
    assert folder.saved_encoder_dir is None
    in_memory = open_source(["first text", {"id": 7, "text": "second"}])
    assert [d.doc_id for d in in_memory.iter_documents()] == ["0", "7"] and in_memory.count() == 2
    assert open_source(in_memory) is in_memory
    run_encode_job(tiny_data, tmp_path / "vectors", encoder, model_spec="tiny", chunk_size=3)
    encoded = open_source(tmp_path / "vectors")
    assert encoded.encoded is not None and encoded.count() == folder.count()
    assert encoded.saved_encoder_dir == tmp_path / "vectors" / "encoder"
    with pytest.raises(CorpusFormatError, match="not found"):
        open_source(tmp_path / "missing")


def test_an_empty_encode_output_is_refused_unless_allowed(encoder, tmp_path: Path) -> None:
    from sparsearch.errors import CorpusFormatError

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("", encoding="utf-8")
    out = tmp_path / "vectors"
    run_encode_job(corpus, out, encoder, model_spec="tiny")
    with pytest.raises(CorpusFormatError, match=r"vectors: this encode output holds no documents.*--allow-empty"):
        build_embedded_index(out, tmp_path / "index", load_encoder(out / "encoder"))
    assert not (tmp_path / "index").exists()
    result = runner.invoke(app, ["index", "--data", str(out), "--index", str(tmp_path / "index")])
    assert result.exit_code == 1 and "this encode output holds no documents" in result.stderr
    index, summary = build_embedded_index(out, tmp_path / "index", load_encoder(out / "encoder"), allow_empty=True)
    assert summary.documents == 0 and index.doc_ids == []
