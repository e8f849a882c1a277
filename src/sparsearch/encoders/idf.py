"""Per-token IDF tables: the query weights of every inference-free model.

``IDF(t) = ln(1 + (N - df_t + 0.5) / (df_t + 0.5))`` (BM25/Lucene form, always > 0), with N the number
of non-empty documents and df_t the number of documents containing t at least once.

**Missing tokens** (df = 0 in the table's corpus) get the df = 0 value of the same formula, the
table's maximum: they may still match documents through learned expansions, and one rule is used in
training and serving alike (docs/method.md#special-and-unknown-tokens).

**Shipped weights.** A model may come with its own query weights (a sentence-transformers Router's
``SparseStaticEmbedding``, an OpenSearch doc-only model's ``idf.json`` of ``token -> weight``): then
the table holds them as ``fixed`` and uses them as shipped, a token missing from them weighing 0
(what both of those models do).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sparsearch.errors import IndexFormatError
from sparsearch.types import stable_hash


def bm25_idf(df: float, n_docs: int) -> float:
    """``ln(1 + (N - df + 0.5) / (df + 0.5))``."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


@dataclass
class IdfTable:
    """Document frequencies of one corpus under one analyzer, and the IDF they imply.

    Attributes:
        df: ``token -> number of documents containing it``.
        n_docs: N, the number of non-empty documents counted.
        analyzer: the analyzer identity the tokens come from (tokenizer drift guard).
        fixed: ``token -> weight`` shipped with a model, used as is instead of ``df`` (``None``: the
            weights follow from ``df``). Tokens missing from it weigh 0.
    """

    df: dict[str, int]
    n_docs: int
    analyzer: dict[str, object]
    fixed: dict[str, float] | None = None

    @classmethod
    def from_weights(cls, weights: dict[str, float], analyzer: dict[str, object]) -> IdfTable:
        """A table of shipped query weights (``token -> weight``), used as they are."""
        return cls(df={}, n_docs=0, analyzer=analyzer, fixed={t: float(w) for t, w in weights.items()})

    @classmethod
    def from_token_lists(cls, token_lists: Iterable[list[str]], analyzer: dict[str, object]) -> IdfTable:
        """Count each token once per document over ``token_lists`` (one list per document)."""
        df: Counter[str] = Counter()
        n_docs = 0
        for tokens in token_lists:
            if tokens:
                n_docs += 1
                df.update(set(tokens))
        return cls(df=dict(df), n_docs=n_docs, analyzer=analyzer)

    def idf(self, token: str) -> float:
        if self.fixed is not None:
            return self.fixed.get(token, 0.0)
        return bm25_idf(self.df.get(token, 0), self.n_docs)

    def weights(self, tokens: Iterable[str]) -> dict[str, float]:
        """Binary-presence query weights: each distinct token once, weighted by its IDF (0s dropped)."""
        weights = ((token, self.idf(token)) for token in dict.fromkeys(tokens))
        return {token: weight for token, weight in weights if weight != 0.0}

    @property
    def hash(self) -> str:
        if self.fixed is not None:
            return stable_hash({"fixed": self.fixed, "analyzer": self.analyzer})
        return stable_hash({"df": self.df, "n_docs": self.n_docs, "analyzer": self.analyzer})

    def save(self, path: Path) -> None:
        payload: dict[str, object] = {"n_docs": self.n_docs, "analyzer": self.analyzer}
        if self.fixed is not None:
            payload["fixed"] = dict(sorted(self.fixed.items()))
        else:
            payload["df"] = dict(sorted(self.df.items()))
        path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> IdfTable:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            if "fixed" in payload:
                return cls.from_weights(dict(payload["fixed"]), dict(payload["analyzer"]))
            return cls(df=dict(payload["df"]), n_docs=int(payload["n_docs"]), analyzer=dict(payload["analyzer"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise IndexFormatError(f"{path}: not a readable IDF table ({error})") from error
