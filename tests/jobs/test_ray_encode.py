"""Encoding on a real Ray cluster (a head and two worker nodes, one CPU each): the output equals a
single-process job's bit for bit, a killed worker or driver loses and duplicates nothing, the
commands' --ray flag, and an OpenSearch build loaded by the actors."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparsearch.cli import app
from sparsearch.encoders.registry import load_encoder
from sparsearch.encoders.splade import SpladeEncoder
from sparsearch.jobs.encode import EncodedOutput, run_encode_job
from tests.tiny_models import _tiny_texts, build_tiny_bert, build_two_channel

ray = pytest.importorskip("ray")

runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201
    """A head and two worker nodes (one CPU each), this process connected as the driver."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="WARNING")
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("ray-encode") / "tiny-bert")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 documents made of the tiny collection's words (a few empty ones included)."""
    words = " ".join(_tiny_texts()).split()
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("ray-corpus") / "corpus.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(600):
            text = "" if i % 97 == 5 else " ".join(rng.choices(words, k=rng.randint(3, 60)))
            handle.write(json.dumps({"_id": f"doc{i}", "title": f"t{i % 7}", "text": text}) + "\n")
    return path


def encoder(mlm_dir: Path) -> SpladeEncoder:
    """The model as ``--model DIR --max-length 32 --passage-overlap 8`` loads it (same micro-batching)."""
    loaded = load_encoder(str(mlm_dir))
    assert isinstance(loaded, SpladeEncoder)
    loaded.options = loaded.options.replace(max_length=32, passage_overlap=8)
    return loaded


@pytest.fixture(scope="module")
def reference(mlm_dir: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process job: the same two shards encoded one after the other in this process."""
    out = tmp_path_factory.mktemp("reference") / "out"
    for i in range(2):
        run_encode_job(corpus, out, encoder(mlm_dir), model_spec="tiny", shard=(i, 2), chunk_size=20, batch_size=4)
    return out


def rows(path: Path) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Doc ids, term ids and weights per document, in corpus order."""
    ids, terms, weights = [], [], []
    for documents, batch in EncodedOutput(path).iter_batches(1000):
        for row, document in enumerate(documents):
            start, end = batch.indptr[row], batch.indptr[row + 1]
            ids.append(document.doc_id)
            terms.append(np.array(batch.term_ids[start:end]))
            weights.append(np.array(batch.weights[start:end]))
    return ids, terms, weights


def assert_bit_identical(actual: Path, expected: Path) -> None:
    a, b = rows(actual), rows(expected)
    assert a[0] == b[0] and len(set(a[0])) == len(a[0])
    for x, y in zip(a[1] + a[2], b[1] + b[2], strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert (actual / "vocab.json").read_bytes() == (expected / "vocab.json").read_bytes()
    saved = sorted(p.relative_to(expected) for p in (expected / "encoder").rglob("*") if p.is_file())
    assert saved == sorted(p.relative_to(actual) for p in (actual / "encoder").rglob("*") if p.is_file())
    for path in saved:  # the fitted encoder (IDF tables, BM25 statistics) is the same
        assert (actual / path).read_bytes() == (expected / path).read_bytes(), path


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_a_bad_address_is_a_clean_usage_error(mlm_dir: Path, tmp_path: Path) -> None:
    from sparsearch.errors import UsageError
    from sparsearch.jobs.ray_encode import connect

    assert not ray.is_initialized()  # runs before the cluster fixture connects this process
    with pytest.raises(UsageError, match="expected auto, local, HOST:PORT"):
        connect("nonsense")
    data = Path(__file__).parents[1] / "data" / "tiny"
    args = ["encode", "--data", str(data), "--model", str(mlm_dir), "--output", str(tmp_path / "out")]
    result = invoke(*args, "--ray", "127.0.0.1:1")
    assert result.exit_code == 2, result.output
    assert "no Ray cluster answers there" in result.stderr and "ray start --head" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encode", "--model", "m", "--output", "o", "--shard", "0/2", "--ray", "local"], "--shard and --ray"),
        (["encode", "--model", "m", "--output", "o", "--workers", "3"], "--workers and --num-gpus are for --ray"),
        (["index", "--index", "i", "--num-gpus", "1"], "--workers and --num-gpus are for --ray"),
        (["index", "--index", "i", "--backend", "lucene", "--ray", "local"], "--ray encodes a corpus"),
    ],
)
def test_ray_flags_are_checked_before_anything_runs(args: list[str], message: str, tmp_path: Path) -> None:
    data = Path(__file__).parents[1] / "data" / "tiny"
    result = invoke(args[0], "--data", str(data), *args[1:])
    assert result.exit_code == 2 and message in result.stderr
    assert not ray.is_initialized()


@pytest.mark.slow
def test_ray_encode_and_index_equal_a_single_process_run(
    cluster, mlm_dir: Path, corpus: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["encode", "--data", str(corpus), "--model", str(mlm_dir), "--output", str(out), "--chunk-size", "20"]
    args += [
        "--batch-size",
        "4",
        "--max-length",
        "32",
        "--passage-overlap",
        "8",
        "--ray",
        cluster.address,
        "--workers",
        "2",
    ]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "600" in result.stdout and "2 workers" in result.stdout
    progress = [json.loads((out / f"shard-0000{i}-of-00002" / "progress.json").read_text()) for i in range(2)]
    assert [p["docs"] for p in progress] == [300, 300] and all(p["complete"] for p in progress)
    assert_bit_identical(out, reference)

    # index --ray: encodes into INDEX.encoding next to the index, builds the index from it, deletes it
    index, direct = tmp_path / "index", tmp_path / "direct"
    args = ["index", "--data", str(corpus), "--model", str(mlm_dir), "--batch-size", "4"]
    result = invoke(*args, "--index", str(index), "--ray", cluster.address, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "600" in result.stdout and not (tmp_path / "index.encoding").exists()
    assert invoke(*args, "--index", str(direct)).exit_code == 0
    for query in ("propeller slipstream", "wing", "the"):
        hits = [invoke("search", "--index", str(i), "--json", "--top-k", "10", query).stdout for i in (index, direct)]
        actual, expected = (json.loads(h)["hits"] for h in hits)
        assert [h["id"] for h in actual] == [h["id"] for h in expected] and expected
        assert [h["score"] for h in actual] == pytest.approx([h["score"] for h in expected], rel=1e-5)


def _busy_actor_pids() -> list[int]:
    """Processes of ShardWorker actors encoding a shard (Ray titles them ``ray::ShardWorker.encode_shard``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::ShardWorker.encode_shard"):
                pids.append(int(entry.name))
    return pids


def _wait_for_chunks(out: Path, chunks: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for progress_file in out.glob("shard-*/progress.json"):
            progress = json.loads(progress_file.read_text())
            if len(progress["chunks"]) >= chunks:
                return progress
        time.sleep(0.02)
    pytest.fail(f"no shard of {out} committed {chunks} chunks in {timeout} s")


def test_a_killed_worker_is_restarted_and_the_job_completes_exactly_once(
    cluster, mlm_dir: Path, corpus: Path, reference: Path, tmp_path: Path
) -> None:
    from sparsearch.jobs.ray_encode import run_ray_encode_job

    out = tmp_path / "out"
    outcome: dict = {}

    def job() -> None:
        try:
            outcome["summary"] = run_ray_encode_job(
                corpus, out, encoder(mlm_dir), model_spec="tiny", workers=2, chunk_size=20, batch_size=4
            )
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=job)
    thread.start()
    progress = _wait_for_chunks(out, 1)
    pids = _busy_actor_pids()
    assert pids, "no ShardWorker process is encoding"
    os.kill(pids[0], signal.SIGKILL)
    assert not progress["complete"]  # killed mid-job
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert summary.documents == 600
    assert_bit_identical(out, reference)


def test_the_two_channel_model_encodes_on_ray_as_in_one_process(cluster, corpus: Path, tmp_path: Path) -> None:
    """The shipped default's kind (BM25 words + a learned channel) has an open vocabulary: the driver
    fits it and writes its corpus's term list, and the actors encode over that list."""
    from sparsearch.jobs.ray_encode import run_ray_encode_job

    model = build_two_channel(tmp_path / "model")
    data = tmp_path / "corpus.jsonl"  # the first 150 documents: the MiniLM channel is slower than a tiny BERT
    data.write_text("".join(corpus.read_text().splitlines(keepends=True)[:150]))
    reference, out = tmp_path / "reference", tmp_path / "out"
    for i in range(2):
        run_encode_job(data, reference, load_encoder(str(model)), model_spec="tc", shard=(i, 2), chunk_size=20)
    summary = run_ray_encode_job(data, out, load_encoder(str(model)), model_spec="tc", workers=2, chunk_size=20)
    assert summary.documents == 150 and summary.num_shards == 2
    assert_bit_identical(out, reference)
    vocabulary = json.loads((out / "vocab.json").read_text())
    assert any(t.startswith("w:") for t in vocabulary) and "propeller" in vocabulary


@pytest.mark.slow
def test_a_killed_driver_is_resumed_by_the_same_command(
    cluster, mlm_dir: Path, corpus: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [
        str(Path(sys.executable).parent / "sparsearch"),
        "encode",
        "--data",
        str(corpus),
        "--model",
        str(mlm_dir),
    ]
    command += ["--output", str(out), "--chunk-size", "20", "--batch-size", "4", "--max-length", "32"]
    command += ["--passage-overlap", "8", "--ray", cluster.address, "--workers", "2"]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
    try:
        progress = _wait_for_chunks(out, 1)
    finally:
        driver.kill()
        driver.wait()
    assert not progress["complete"]
    time.sleep(2)  # the dead driver's actors stop with it
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    assert result.returncode == 0, result.stderr
    assert "resumed after" in result.stdout
    assert_bit_identical(out, reference)


@pytest.mark.slow
def test_index_on_ray_into_opensearch(
    cluster, opensearch_url: str, mlm_dir: Path, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.backends.engines._engines import connect, unique_alias

    alias = unique_alias("ray")
    monkeypatch.chdir(tmp_path)  # ALIAS.encoding, the actors' input, goes to the working directory
    args = ["index", "--data", str(corpus), "--model", str(mlm_dir), "--index", alias, "--batch-size", "4"]
    args += ["--backend", "opensearch", "--url", opensearch_url, "--ray", cluster.address, "--chunk-size", "50"]
    try:
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert f"{alias} -> {alias}-v000001" in result.stdout and "2 workers, 2 shards" in result.stdout
        assert not (tmp_path / f"{alias}.encoding").exists()
        backend = connect(opensearch_url, alias)
        assert backend.live_indexes() == [f"{alias}-v000001"] and backend.count() == 600
        direct = tmp_path / "direct"
        assert invoke("index", "--data", str(corpus), "--model", str(mlm_dir), "--index", str(direct)).exit_code == 0
        for query in ("propeller slipstream", "wing"):
            hits = [
                invoke("search", "--index", index, *extra, "--json", "--top-k", k, query).stdout
                for index, extra, k in (
                    (alias, ["--backend", "opensearch", "--url", opensearch_url], "5"),
                    (str(direct), [], "30"),
                )
            ]
            engine, embedded = (json.loads(h)["hits"] for h in hits)
            # the engine's rank_features keep ~9 significant bits of each weight: near-ties may swap
            assert len(engine) == 5 and {h["id"] for h in engine} <= {h["id"] for h in embedded}
    finally:
        connect(opensearch_url, alias).drop()
