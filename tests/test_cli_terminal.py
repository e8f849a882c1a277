"""The long commands as a user runs them: a real process on a terminal (a pseudo-terminal), and with
stderr redirected to a file.

On a terminal each command draws its rich progress bar (a crash in a progress column only shows
there: CliRunner's streams are not terminals, so the bars are off in every other test). Off a
terminal, no progress bar at all: neither ours nor the tqdm bars of Hugging Face libraries.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.encoders.test_semantic_two_channel import TOKENS
from tests.tiny_models import build_tiny_bert

REPO = Path(__file__).resolve().parents[1]
SPARSEARCH = Path(sys.executable).with_name("sparsearch")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# Variables that switch progress bars or terminal detection off (or on) whatever the stream is; the
# commands must decide from the stream itself.
TERMINAL_OVERRIDES = (
    "COLUMNS",
    "LINES",
    "FORCE_COLOR",
    "NO_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "TQDM_DISABLE",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_DATASETS_DISABLE_PROGRESS_BARS",
)


def clean_environment() -> dict[str, str]:
    environment = {
        k: v for k, v in os.environ.items() if k not in TERMINAL_OVERRIDES and not k.startswith("SPARSEARCH_")
    }
    return environment | {"TERM": "xterm-256color"}


def run_on_terminal(command: list[str], cwd: Path = REPO) -> tuple[int, str]:
    """Run ``command`` with stdin, stdout and stderr on a 120x40 pseudo-terminal.

    Returns:
        The exit status and everything the terminal received, ANSI codes removed, ``\\r`` as new lines
        (so each redraw of a progress bar is a line of its own).
    """
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        command, cwd=cwd, env=clean_environment(), stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True
    )
    os.close(terminal)
    received = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            break
        if not chunk:
            break
        received += chunk
    os.close(controller)
    status = process.wait()
    text = ANSI.sub("", received.decode("utf-8", errors="replace")).replace("\r\n", "\n").replace("\r", "\n")
    return status, text


def assert_clean_run(status: int, output: str) -> None:
    assert status == 0, output
    assert "Traceback" not in output, output
    assert "error:" not in output, output


def progress_lines(output: str, task: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith(task)]


def assert_progress_drawn(output: str, task: str, total: int, unit: str) -> None:
    """The bar of ``task`` was drawn, and its last frame shows every item done and a rate."""
    lines = progress_lines(output, task)
    assert lines, output
    assert re.search(rf"━.* {total}/{total} [\d,.]+ {unit}/s (.* )?\d+:\d\d:\d\d eta \d+:\d\d:\d\d$", lines[-1]), lines


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("terminal") / "tiny-bert")


def test_index_on_a_terminal(tiny_data: Path, tmp_path: Path) -> None:
    status, output = run_on_terminal(
        [str(SPARSEARCH), "index", "--data", str(tiny_data), "--index", str(tmp_path / "index"), "--model", "bm25"]
    )
    assert_clean_run(status, output)
    assert_progress_drawn(output, "indexing", 8, "docs")
    assert "bytes on disk" in output


def test_eval_on_a_terminal(tiny_data: Path) -> None:
    status, output = run_on_terminal([str(SPARSEARCH), "eval", "--data", str(tiny_data), "--model", "bm25"])
    assert_clean_run(status, output)
    assert_progress_drawn(output, "indexing", 8, "docs")
    assert_progress_drawn(output, "querying", 5, "queries")
    assert "ndcg@10" in output


def test_encode_on_a_terminal(tiny_data: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    command = [str(SPARSEARCH), "encode", "--data", str(tiny_data), "--model", str(tiny_mlm)]
    command += ["--output", str(tmp_path / "encoded"), "--max-length", "32", "--passage-overlap", "8"]
    status, output = run_on_terminal(command)
    assert_clean_run(status, output)
    assert_progress_drawn(output, "encoding", 8, "docs")


def test_train_on_a_terminal(tiny_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        f'data = "{tiny_data}"\noutput = "{tmp_path / "model"}"\ncandidate_tokens = {json.dumps(TOKENS)}\n'
        "top_k = 8\nmax_steps = 2\neval_every = 1\nbatch_queries = 2\nheldout_fraction = 0.3\n"
        "candidates_per_teacher = 3\n",
        encoding="utf-8",
    )
    status, output = run_on_terminal([str(SPARSEARCH), "train", "--config", str(config)])
    assert_clean_run(status, output)
    assert_progress_drawn(output, "training", 2, "steps")
    assert re.search(r"loss \d+\.\d{3} · \d+ terms", progress_lines(output, "training")[-1])
    assert "chosen learned weight" in output


def test_adapt_on_a_terminal(tiny_data: Path, tmp_path: Path) -> None:
    command = [str(SPARSEARCH), "adapt", "--data", str(tiny_data), "--output", str(tmp_path / "adapted")]
    status, output = run_on_terminal([*command, "--steps", "2"])
    assert_clean_run(status, output)
    assert progress_lines(output, "preparing")  # pseudo-queries and teachers, before the first step
    assert_progress_drawn(output, "training", 2, "steps")


def test_demo_on_a_terminal() -> None:
    """scripts/demo, as the README tells a new user to run it: Cranfield indexed with the default model."""
    status, output = run_on_terminal(["bash", "scripts/demo"])
    assert_clean_run(status, output)
    assert_progress_drawn(output, "indexing", 1400, "docs")
    assert "5 hits for 'heat transfer in hypersonic boundary layers'" in output
    rows = [re.match(r"│\s*(\d+)\s*│\s*(\S+)\s*│\s*(\d+\.\d{4})\s*│", line) for line in output.splitlines()]
    hits = [(int(row[1]), row[2], float(row[3])) for row in rows if row]
    assert [rank for rank, _, _ in hits] == [1, 2, 3, 4, 5], output
    scores = [score for _, _, score in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


def test_no_progress_bars_off_a_terminal(tiny_data: Path, tiny_mlm: Path, tmp_path: Path) -> None:
    """stderr in a file: no rich bar and no tqdm bar from transformers (it draws "Loading weights" and
    "Writing model shards" bars when loading and saving the model, whatever the stream)."""
    command = [str(SPARSEARCH), "encode", "--data", str(tiny_data), "--model", str(tiny_mlm)]
    command += ["--output", str(tmp_path / "encoded"), "--max-length", "32", "--passage-overlap", "8"]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        result = subprocess.run(command, env=clean_environment(), stdout=subprocess.PIPE, stderr=stderr, text=True)
    errors = log.read_text()
    assert result.returncode == 0, errors
    assert "documents" in result.stdout
    assert errors.strip() == "warning: 1 documents have no text and get no terms: d6"
