"""Where sparsearch keeps what it can rebuild: ``$SPARSEARCH_CACHE``, by default ``~/.cache/sparsearch``.

The compiled search kernels live in its ``numba/`` folder (see :func:`configure_numba_cache`), never
next to the installed package, which may be read-only (a system install, a container image).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "SPARSEARCH_CACHE"
NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def cache_root() -> Path:
    """``$SPARSEARCH_CACHE`` (``~`` expanded), or ``~/.cache/sparsearch`` when it is unset or empty.

    An empty value counts as unset: ``Path("")`` would be the current directory.
    """
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "sparsearch"


def configure_numba_cache() -> str:
    """Point numba's cache at ``cache_root() / "numba"`` unless ``NUMBA_CACHE_DIR`` is already set.

    numba reads ``NUMBA_CACHE_DIR`` once, when its configuration module is first imported, and
    otherwise writes ``__pycache__`` next to the package's source, so this runs before
    :mod:`sparsearch.backends.embedded.kernels` imports numba. A user's own non-empty ``NUMBA_CACHE_DIR`` wins.
    If numba was imported earlier (by another library) without a cache directory, its configuration
    is updated directly; functions decorated after this call use it. The variable is also left in
    the environment, so worker processes (``sparsearch serve --workers``) share the cache.

    Returns:
        The cache directory numba uses.
    """
    directory = os.environ.get(NUMBA_CACHE_ENV, "")
    if not directory:
        directory = str(cache_root() / "numba")
        os.environ[NUMBA_CACHE_ENV] = directory
    config = sys.modules.get("numba.core.config")
    if config is not None and not getattr(config, "CACHE_DIR", ""):
        config.CACHE_DIR = directory
    return directory
