"""The reference rows of the four-collection table (bench/references.py) and their report table:
dense = exhaustive best-window cosine, ensemble = equal-weight min-max fusion of BM25 and dense over the
union of their top lists, mean over the collections only when every collection has a figure."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def references():
    sys.path.insert(0, str(BENCH))
    import references

    yield references
    sys.path.remove(str(BENCH))


def test_dense_and_ensemble_runs_follow_their_definitions(references, tiny_data: Path, tmp_path: Path) -> None:
    from sparsearch.corpus import iter_corpus
    from sparsearch.encoders.bm25 import bm25_words
    from sparsearch.encoders.dense import embed
    from sparsearch.eval.beir_data import load_beir_topics

    result = references.reference_runs(tiny_data, tmp_path)
    assert [r["model"] for r in result["rows"]] == ["dense (reference)", "ensemble (reference)"]
    assert all(0 < r["metrics"]["ndcg@10"] <= 1 for r in result["rows"])
    assert (tmp_path / "dense").is_dir(), "window embeddings are cached"
    dense_run, ensemble_run, _, counts = references.dense_and_ensemble_runs(tiny_data, tmp_path)
    documents = list(iter_corpus(tiny_data))
    topics = load_beir_topics(tiny_data)
    query_id = next(iter(topics.queries))
    text = topics.queries[query_id]

    # by hand, for one query: tiny documents are one window each; a document without text has no
    # window, so dense never returns it, and the ensemble gives it the lowest cosine (-1)
    has_text = np.array([bool(d.full_text.strip()) for d in documents])
    dense = np.where(has_text, embed([d.full_text or " " for d in documents]) @ embed([text])[0], -np.inf)
    bm25 = bm25_words()
    bm25.fit(d.full_text for d in documents)
    query = bm25.encode_query(text).weights
    vectors = bm25.encode_document([d.full_text for d in documents])
    lexical = np.array([sum(w * v.get(t, 0.0) for t, w in query.items()) for v in vectors])
    norm = lambda x: (x - x.min()) / (x.max() - x.min() + 1e-6)  # noqa: E731
    dense_order = [i for i in np.argsort(-dense, kind="stable") if has_text[i]]  # depth 100 > tiny
    lexical_order = [i for i in np.argsort(-lexical, kind="stable") if lexical[i] > 0]
    union = list(dict.fromkeys([*lexical_order, *dense_order]))
    fused = 0.5 * norm(lexical[union]) + 0.5 * norm(np.where(has_text[union], dense[union], -1.0))
    expected = [documents[union[i]].doc_id for i in np.argsort(-fused, kind="stable")]

    assert counts["documents"] == len(documents) and counts["windows"] == int(has_text.sum())
    assert list(ensemble_run[query_id]) == expected
    assert list(dense_run[query_id]) == [documents[i].doc_id for i in dense_order]
    np.testing.assert_allclose(list(dense_run[query_id].values()), dense[dense_order], rtol=1e-4)


def test_report_table_means_only_complete_rows(run_module) -> None:
    sys.path.insert(0, str(BENCH))
    from report import collections_lines

    section = {
        "collections": ["a", "b"],
        "rows": [
            {"model": "bm25", "collection": "a", "ndcg@10": 0.2, "recall@100": 0.5, "postings_per_query": 10.0},
            {"model": "bm25", "collection": "b", "ndcg@10": 0.4, "recall@100": 0.5, "postings_per_query": 10.0},
            {"model": "adapted (a)", "collection": "a", "ndcg@10": 0.3, "recall@100": 0.5},
            {"model": "adapted (b)", "collection": "b", "error": "boom"},
        ],
    }
    text = "\n".join(collections_lines(section, {"created_at": "now"}))
    assert "| bm25 | 0.2000 | 0.4000 | 0.3000 |" in text
    assert "| adapted | 0.3000 | – | – |" in text
    assert "adapted (b) on b failed: `boom`" in text
