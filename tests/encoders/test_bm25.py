"""BM25 in inference-free form: weights by hand, analyzers, persistence."""

from __future__ import annotations

import math

import pytest

from sparsearch.encoders.analyzers import WordAnalyzer, WordPieceAnalyzer
from sparsearch.encoders.bm25 import BM25Encoder
from sparsearch.encoders.idf import bm25_idf
from sparsearch.types import dot


def test_word_analyzer_lowercases_stems_and_drops_stop_words() -> None:
    assert WordAnalyzer().tokenize("The Wings of a supersonic AIRCRAFT, flying") == [
        "wing",
        "superson",
        "aircraft",
        "fli",
    ]
    assert WordAnalyzer(prefix="w:").tokenize("wings") == ["w:wing"]


def test_wordpiece_analyzer_uses_bert_uncased_without_special_tokens() -> None:
    analyzer = WordPieceAnalyzer()
    assert len(analyzer.vocabulary) == 30522
    tokens = analyzer.tokenize("Aeroelastic [SEP] models")
    assert "[SEP]" not in tokens and tokens[0] == "aero" and "models" in tokens
    assert analyzer.tokenize("x " * 2000).count("x") == 2000  # never truncated


def test_weights_match_the_bm25_formula_by_hand() -> None:
    k1, b = 1.2, 0.75
    encoder = BM25Encoder(WordAnalyzer(stemmer=None, stop_words=frozenset()), name="bm25", k1=k1, b=b)
    docs = ["aa bb aa", "bb cc", "cc cc cc dd"]
    encoder.fit(docs)
    avgdl = (3 + 2 + 4) / 3
    weights = encoder.encode_document(docs)[0]
    norm = k1 * (1 - b + b * 3 / avgdl)
    assert weights["aa"] == pytest.approx(2 * (k1 + 1) / (2 + norm))
    assert weights["bb"] == pytest.approx(1 * (k1 + 1) / (1 + norm))
    query = encoder.encode_query("aa bb bb")
    assert query.weights["aa"] == pytest.approx(math.log(1 + (3 - 1 + 0.5) / 1.5))
    assert query.weights["bb"] == pytest.approx(2 * bm25_idf(2, 3))  # query term frequency counts


def test_binary_query_presence_when_asked() -> None:
    encoder = BM25Encoder(WordAnalyzer(), name="bm25", query_tf=False)
    encoder.fit(["wing lift", "heat"])
    assert encoder.encode_query("wing wing wing").weights == {"wing": pytest.approx(bm25_idf(1, 2))}


def test_idf_of_unseen_token_is_the_df_zero_value() -> None:
    encoder = BM25Encoder(WordAnalyzer(), name="bm25")
    encoder.fit(["wing lift", "heat flux", ""])
    assert encoder.idf is not None and encoder.idf.n_docs == 2  # N counts non-empty documents
    assert encoder.encode_query("zebra").weights["zebra"] == pytest.approx(math.log(1 + 2.5 / 0.5))


def test_score_is_the_dot_product_and_equals_bm25() -> None:
    encoder = BM25Encoder(WordAnalyzer(), name="bm25")
    corpus = ["slipstream wing lift", "wing flutter", "heat conduction slab"]
    encoder.fit(corpus)
    doc = encoder.encode_document([corpus[0]])[0]
    query = encoder.encode_query("wing slipstream")
    k1, b, avgdl = 1.5, 0.75, encoder.avgdl
    expected = sum(bm25_idf(df, 3) * (k1 + 1) / (1 + k1 * (1 - b + b * 3 / avgdl)) for df in (2, 1))
    assert dot(query.weights, doc) == pytest.approx(expected)


def test_unfitted_encoder_says_what_to_do() -> None:
    from sparsearch.errors import UsageError

    with pytest.raises(UsageError, match="fit"):
        BM25Encoder(WordAnalyzer(), name="bm25").encode_query("x")
