"""Lazy package exports (PEP 562): a package lists its public names without importing their modules,
so ``import sparsearch.backends`` loads neither numba nor an engine client until a name is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__`` (for error messages).
        exports: public name -> the module that defines it.

    Example:
        >>> __all__, __getattr__, __dir__ = lazy_exports("pkg", {"sqrt": "math"})
        >>> __getattr__("sqrt")(4.0)
        2.0
    """

    def __getattr__(name: str) -> object:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
