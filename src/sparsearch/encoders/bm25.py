"""BM25 in inference-free form: BM25 term weights stored in documents, IDF as query weights.

Document weight of token t in document d (tf = occurrences of t in d, dl = tokens in d)::

    w_t(d) = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

Query weight of t = IDF(t) (see :mod:`sparsearch.encoders.idf`) times the number of times t occurs
in the query (``query_tf=True``, the default: Okapi BM25 and Lucene/bm25s score a repeated query
term once per occurrence), or IDF(t) once per distinct token (``query_tf=False``, the binary
presence rule of the learned inference-free models). The dot product of the two is exactly BM25
(Lucene variant), so BM25 runs through the same engines, files and kernels as the learned models and
speed comparisons are fair. Why ``query_tf=True`` is the default: History section of
``encoders/default_model/README.md``.

Corpus statistics (N, df, avgdl) are fitted once, on the corpus being indexed, and then frozen:
documents added later are weighted with the fitted statistics; rebuild the index to refit them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from sparsearch.encoders.analyzers import Analyzer, WordAnalyzer, WordPieceAnalyzer, build_analyzer
from sparsearch.encoders.idf import IdfTable
from sparsearch.errors import IndexFormatError, UsageError
from sparsearch.types import BaseEncoder, EncodedQuery, EncoderFingerprint, SparseVector, stable_hash

CONFIG_FILE = "config.json"
IDF_FILE = "idf.json"


class BM25Encoder(BaseEncoder):
    """BM25 document and query weights over a configurable analyzer.

    Args:
        analyzer: how text becomes tokens (:class:`WordAnalyzer` or :class:`WordPieceAnalyzer`).
        name: model name recorded in indexes (``"bm25"``, ``"bm25-wordpiece"``).
        k1: term-frequency saturation (bm25s default 1.5).
        b: length normalisation strength (0.75).
        query_tf: weight a query token by its count in the query (standard BM25) or count it once.

    Example:
        >>> encoder = BM25Encoder(WordAnalyzer(), name="bm25")
        >>> encoder.fit(["the wing in a slipstream", "heat transfer in a slab"])
        >>> sorted(encoder.encode_document(["wings and slipstreams"])[0])
        ['slipstream', 'wing']
        >>> sorted(encoder.encode_query("slipstream of the wing").weights)
        ['slipstream', 'wing']
    """

    def __init__(self, analyzer: Analyzer, name: str, k1: float = 1.5, b: float = 0.75, query_tf: bool = True) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise UsageError(f"BM25 needs k1 >= 0 and 0 <= b <= 1 (got k1={k1}, b={b})")
        self.analyzer = analyzer
        self.name = name
        self.k1 = k1
        self.b = b
        self.query_tf = query_tf
        self.idf: IdfTable | None = None
        self.avgdl = 0.0
        self._fingerprint: EncoderFingerprint | None = None

    # -- fitting -----------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self.idf is not None

    def fit(self, texts: Iterable[str], batch_size: int = 1024) -> None:
        """Count N, df and avgdl over ``texts`` (one streaming pass, tokens counted once per document)."""
        df: Counter[str] = Counter()
        n_docs = 0
        total_length = 0
        batch: list[str] = []

        def consume(chunk: list[str]) -> None:
            nonlocal n_docs, total_length
            for tokens in self.analyzer.tokenize_batch(chunk):
                if tokens:
                    n_docs += 1
                    total_length += len(tokens)
                    df.update(set(tokens))

        for text in texts:
            batch.append(text)
            if len(batch) >= batch_size:
                consume(batch)
                batch = []
        consume(batch)
        self.idf = IdfTable(df=dict(df), n_docs=n_docs, analyzer=self.analyzer.identity)
        self.avgdl = total_length / n_docs if n_docs else 0.0
        self._fingerprint = None

    def _require_fitted(self) -> IdfTable:
        if self.idf is None:
            raise UsageError(f"the {self.name} encoder has no corpus statistics yet: call fit() on the corpus first")
        return self.idf

    # -- the Encoder protocol ----------------------------------------------------------------------
    @property
    def fingerprint(self) -> EncoderFingerprint:
        if self._fingerprint is None:  # hashing the IDF table costs milliseconds: once per fit
            idf = self._require_fitted()
            self._fingerprint = EncoderFingerprint(
                name=self.name,
                vocab_hash=stable_hash(self.analyzer.identity),
                idf_hash=stable_hash(
                    {
                        "idf": idf.hash,
                        "k1": self.k1,
                        "b": self.b,
                        "avgdl": self.avgdl,
                        "query_tf": self.query_tf,
                    }
                ),
            )
        return self._fingerprint

    def encode_document(self, texts: Sequence[str]) -> list[SparseVector]:
        """BM25 weights per document; an empty document gives an empty map."""
        self._require_fitted()
        k1, b, avgdl = self.k1, self.b, self.avgdl or 1.0
        vectors = []
        for tokens in self.analyzer.tokenize_batch(list(texts)):
            norm = k1 * (1.0 - b + b * len(tokens) / avgdl)
            vectors.append({t: tf * (k1 + 1.0) / (tf + norm) for t, tf in Counter(tokens).items()})
        return vectors

    def encode_query(self, text: str) -> EncodedQuery:
        idf = self._require_fitted()
        tokens = self.analyzer.tokenize(text)
        if self.query_tf:
            weights = {token: count * idf.idf(token) for token, count in Counter(tokens).items()}
        else:
            weights = idf.weights(tokens)
        return EncodedQuery(weights=weights, encoder=self.fingerprint, text=text)

    # -- persistence -------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write ``config.json`` and, once fitted, ``idf.json`` (an unfitted model is fitted on the
        corpus it indexes)."""
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "type": "bm25",
            "name": self.name,
            "k1": self.k1,
            "b": self.b,
            "query_tf": self.query_tf,
            "avgdl": self.avgdl,
            "analyzer": self.analyzer.identity,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        if self.idf is not None:
            self.idf.save(directory / IDF_FILE)

    @classmethod
    def load(cls, directory: Path) -> BM25Encoder:
        try:
            config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
            encoder = cls(
                build_analyzer(config["analyzer"]),
                name=config["name"],
                k1=config["k1"],
                b=config["b"],
                query_tf=config.get("query_tf", True),
            )
            encoder.avgdl = float(config["avgdl"])
        except (OSError, ValueError, KeyError) as error:
            raise IndexFormatError(f"{directory}: not a readable BM25 encoder ({error})") from error
        if (directory / IDF_FILE).is_file():
            encoder.idf = IdfTable.load(directory / IDF_FILE)
        return encoder


def bm25_words(k1: float = 1.5, b: float = 0.75) -> BM25Encoder:
    """``--model bm25``: stemmed English words, stop words removed."""
    return BM25Encoder(WordAnalyzer(), name="bm25", k1=k1, b=b)


def bm25_wordpiece(k1: float = 1.5, b: float = 0.75) -> BM25Encoder:
    """``--model bm25-wordpiece``: the BERT-uncased WordPiece tokens the neural encoders use."""
    return BM25Encoder(WordPieceAnalyzer(), name="bm25-wordpiece", k1=k1, b=b)
