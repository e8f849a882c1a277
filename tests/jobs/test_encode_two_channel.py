"""The two-channel model (the shipped default's kind) through the batch encoding job: ``sparsearch
encode`` shards it over the term list of its fitted corpus, ``sparsearch index --data OUT`` serves
the same results as indexing the corpus directly, and what the term list cannot hold is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.encoders.closed_vocabulary import ClosedVocabularyEncoder
from sparsearch.encoders.neural import EncodingOptions
from sparsearch.errors import UsageError
from sparsearch.jobs.encode import EncodedOutput, check_neural
from tests.tiny_models import build_two_channel, two_channel_model

runner = CliRunner()
TINY = Path(__file__).parents[1] / "data" / "tiny"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_two_channel(tmp_path_factory.mktemp("two-channel") / "model")


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_sharded_encode_serves_what_a_direct_index_serves(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the exact runtime: the int8 ONNX one quantises activations per batch, and the two builds batch differently
    monkeypatch.setenv("SPARSEARCH_ENCODER_RUNTIME", "torch")
    out = tmp_path / "out"
    for shard in ("0/2", "1/2"):
        args = ["encode", "--data", str(TINY), "--model", str(model_dir), "--output", str(out), "--shard", shard]
        result = invoke(*args, "--chunk-size", "2", "--batch-size", "2")
        assert result.exit_code == 0, result.output
    encoded = EncodedOutput(out)
    assert encoded.count() == 8
    assert any(t.startswith("w:") for t in encoded.vocabulary) and "propeller" in encoded.vocabulary
    assert encoded.vocabulary == sorted(encoded.vocabulary)

    index, direct = tmp_path / "index", tmp_path / "direct"
    assert invoke("index", "--data", str(out), "--index", str(index)).exit_code == 0
    assert invoke("index", "--data", str(TINY), "--model", str(model_dir), "--index", str(direct)).exit_code == 0
    for query in ("propeller slipstream", "wing lift", "heat"):
        hits = [invoke("search", "--index", str(i), "--json", "--top-k", "8", query).stdout for i in (index, direct)]
        actual, expected = (json.loads(h)["hits"] for h in hits)
        assert expected and [h["id"] for h in actual] == [h["id"] for h in expected]
        assert [h["score"] for h in actual] == pytest.approx([h["score"] for h in expected], rel=1e-5)


def test_the_term_list_is_the_fitted_corpus_and_nothing_is_dropped() -> None:
    encoder = check_neural(two_channel_model())
    assert isinstance(encoder, ClosedVocabularyEncoder)
    with pytest.raises(UsageError, match="fit the model on the corpus"):
        _ = encoder.vocabulary
    encoder.fit(["Wing lift of a propeller.", "Heat flow in a shell."])
    batch = encoder.encode_document_batch(["a propeller wing", ""])
    assert len(batch) == 2 and batch.lengths().tolist()[1] == 0
    row = batch.term_ids[batch.indptr[0] : batch.indptr[1]]
    assert row.tolist() == sorted(row.tolist())  # term ids ascending within a document, as the job stores them
    tokens = {encoder.vocabulary.vocabulary[t] for t in row}
    assert tokens == set(encoder.encode_document(["a propeller wing"])[0])
    with pytest.raises(UsageError, match=r"\['w:zeppelin'\] are not in the vocabulary"):
        encoder.encode_document_batch(["a zeppelin"])


def test_splade_only_options_are_refused() -> None:
    encoder = check_neural(two_channel_model())
    encoder.options = encoder.options.replace(max_length=None)  # what the CLI does without the flags
    with pytest.raises(UsageError, match="apply to SPLADE models"):
        encoder.options = EncodingOptions(max_length=128)


def test_bm25_is_still_refused() -> None:
    from sparsearch.encoders.registry import load_encoder

    with pytest.raises(UsageError, match="indexed directly with sparsearch index"):
        check_neural(load_encoder("bm25"))
