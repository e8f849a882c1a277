"""The ``sparsearch`` command line: one Typer app, one module per subcommand.

Results go to stdout, progress and logs to stderr. Exit status: 0 success, 1 failure, 2 usage error.
Errors print one line (no traceback unless ``--verbose``).
"""

from __future__ import annotations

# Importing a command module registers its subcommand on ``app`` (cheap: heavy imports are inside
# the commands).
from sparsearch.cli import _encode, _eval, _export, _index, _merge, _search, _serve, _train  # noqa: F401
from sparsearch.cli._common import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
