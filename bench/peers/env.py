"""The peers' own virtualenv: PISA, Seismic, Lucene (pyserini) and splade-index never go into the
project's dependency environment.

The venv lives outside the clone at ``${SPARSEARCH_CACHE:-~/.cache/sparsearch}/bench-peers-<hash>``
(hash of the peer requirements and the Python version). A ``.pth`` file chains it to the project's
site-packages (as ``scripts/bootstrap`` does), so numpy, torch, etc. are reused and only the peers
themselves are installed. Each peer is installed on its own, so one failing install is recorded
(its exact pip error) without stopping the others.
"""

from __future__ import annotations

import hashlib
import json
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

# peer name -> pip requirement (one install each)
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "pisa": ["pyterrier-pisa==0.4.9"],
    "seismic": ["pyseismic-lsr==0.5.4"],
    "lucene": ["pyserini==1.6.0"],
    "splade-index": ["splade-index==0.2.0"],
}


def cache_root() -> Path:
    """The project's cache root (:func:`sparsearch._cache.cache_root`)."""
    from sparsearch import _cache

    return _cache.cache_root()


def env_path() -> Path:
    spec = {"peers": PEER_REQUIREMENTS, "python": sys.version_info[:2]}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / f"bench-peers-{key}"


def _project_site_dirs() -> list[str]:
    """The project interpreter's site-packages (the light .venv and, through its .pth, the cache)."""
    dirs = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    dirs += [p for p in sys.path if p.endswith("site-packages")]
    return list(dict.fromkeys(d for d in dirs if Path(d).is_dir()))


def ensure_env(log=None) -> tuple[Path, dict[str, str]]:
    """Create (once) the peers' venv and install each peer into it.

    Returns:
        ``(python, status)``: the venv's interpreter and, per peer, ``"ok"`` or the pip error text
        (last lines of its output).
    """
    root = env_path()
    python = root / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        lines = [f"import site; site.addsitedir({d!r})" for d in _project_site_dirs()]
        (Path(purelib) / "_sparsearch_project.pth").write_text("\n".join(lines) + "\n")
    status_file = root / "peer-status.json"
    status: dict[str, str] = json.loads(status_file.read_text()) if status_file.exists() else {}
    for peer, requirements in PEER_REQUIREMENTS.items():
        if peer in status:
            continue
        if log:
            log(f"installing {peer} ({' '.join(requirements)}) into {root}")
        # pip comes from the chained project environment; --prefix-less install goes to the venv
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode == 0:
            status[peer] = "ok"
        else:
            tail = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()][-6:]
            status[peer] = "pip install failed: " + " | ".join(tail)
        status_file.write_text(json.dumps(status, indent=2))
    return python, status


if __name__ == "__main__":
    python, status = ensure_env(log=lambda m: print(m, file=sys.stderr))
    print(json.dumps({"python": str(python), "status": status}, indent=2))
