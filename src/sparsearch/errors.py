"""Exceptions with messages written for the person who has to fix the problem.

Every error a user can cause derives from :class:`SparsearchError`; the CLI prints its message (no
traceback) and exits with ``exit_code``; the HTTP API maps it to a 4xx/5xx JSON body.
"""

from __future__ import annotations


class SparsearchError(Exception):
    """Base class: a problem the user can fix; ``str(error)`` says how."""

    exit_code = 1


class UsageError(SparsearchError):
    """Invalid arguments (a bad ``--top-k``, an empty query): exit status 2."""

    exit_code = 2


class CorpusFormatError(SparsearchError):
    """A corpus or queries file is missing or malformed; the message names file, line and field."""

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class IndexExistsError(SparsearchError):
    """The target index directory exists and overwriting was not requested."""


class IndexNotFoundError(SparsearchError):
    """No index (or no valid manifest) at the given location."""


class IndexFormatError(SparsearchError):
    """An index directory is damaged or written by an incompatible version."""


class EncoderMismatchError(SparsearchError):
    """A query was encoded by a different encoder (vocabulary or IDF table) than the index's."""


class ModelNotFoundError(SparsearchError):
    """``--model`` names neither a built-in model nor a readable model directory."""


class EngineError(SparsearchError):
    """A search engine answered with an error or an incomplete result (failed shards)."""


class EngineUnavailableError(SparsearchError):
    """The engine cannot be reached (connection refused, timeouts, overloaded past every retry).

    ``unsent`` holds what a bulk load could not deliver (``BulkFailure`` records), when known.
    """

    def __init__(self, message: str, unsent: list | None = None) -> None:
        super().__init__(message)
        self.unsent = list(unsent or [])


class MissingExtraError(SparsearchError, ImportError):
    """An optional dependency group is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the '{module}' package: install it with pip install 'sparsearch[{extra}]'"
        )


def require(module: str, extra: str):  # noqa: ANN201 - returns a module
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(module, extra) from error
