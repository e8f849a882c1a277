"""Integer impacts: how float weights become the integer term frequencies Lucene stores and scores.

A weight ``w`` becomes ``round(w x scale)``; impacts of 0 are dropped (the token cannot match), so once
divided back by ``scale`` every weight is off by at most ``0.5 / scale``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sparsearch.errors import UsageError
from sparsearch.types import SparseVector

MAX_IMPACT = 1000
"""Default integer the largest weight maps to: three significant digits per weight, and a query x document
product of at most 10^6, so sums of a dozen such products stay below 2^24, where Lucene's float32 scores
are still exact integers (past it they round by a relative 6e-8, far below the quantisation)."""


def impact_scale(max_weight: float, max_impact: int = MAX_IMPACT) -> float:
    """The scale that maps ``max_weight`` to ``max_impact``: ``max_impact / max_weight`` (1.0 when there
    is no positive weight, e.g. an empty index).

    >>> impact_scale(2.5, 1000)
    400.0
    """
    if max_impact < 1:
        raise UsageError(f"the largest impact must be a positive integer (got {max_impact})")
    return max_impact / max_weight if max_weight > 0 else 1.0


def quantise(weights: Mapping[str, float], scale: float) -> dict[str, int]:
    """``token -> round(weight x scale)``, tokens that round to 0 (or below) dropped.

    >>> quantise({"flow": 1.2345, "of": 0.0004}, 1000.0)
    {'flow': 1234}
    """
    quantised = {token: round(weight * scale) for token, weight in weights.items()}
    return {token: impact for token, impact in quantised.items() if impact > 0}


def query_impacts(weights: SparseVector, max_impact: int = MAX_IMPACT) -> tuple[dict[str, int], float]:
    """A query's integer impacts and its scale: ``(token -> round(q x scale), scale)`` with
    ``scale = max_impact / max(q)`` (per query: a query's ranking does not depend on its scale, so each
    gets the whole integer range); weights <= 0 are left out (they cannot raise a score).

    >>> query_impacts({"wing": 2.0, "flow": 0.5, "of": 0.0})
    ({'wing': 1000, 'flow': 250}, 500.0)
    """
    positive = {token: weight for token, weight in weights.items() if weight > 0}
    if not positive:
        return {}, 1.0
    scale = impact_scale(max(positive.values()), max_impact)
    return quantise(positive, scale), scale
