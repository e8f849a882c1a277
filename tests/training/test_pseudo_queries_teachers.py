"""Pseudo-queries from documents only, and teacher mining/scoring over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsearch.corpus import iter_corpus
from sparsearch.training.pseudo_queries import PseudoQueryGenerator
from sparsearch.training.teachers import load_examples, mine_and_score, save_examples
from sparsearch.types import Document
from tests.conftest import bundled_collection


@pytest.fixture(scope="module")
def cranfield_documents() -> list[Document]:
    return list(iter_corpus(bundled_collection("cranfield")))[:300]


def test_generator_is_deterministic_and_clean(cranfield_documents) -> None:
    first = PseudoQueryGenerator(cranfield_documents, seed=3).generate()
    assert first == PseudoQueryGenerator(cranfield_documents, seed=3).generate()
    assert first != PseudoQueryGenerator(cranfield_documents, seed=4).generate()
    texts = [" ".join(q.text.lower().split()) for q in first]
    assert len(texts) == len(set(texts))  # deduplicated
    assert all(len(q.text.split()) >= 2 for q in first)
    assert {q.kind for q in first} == {"title", "cloze", "keywords", "span"}
    per_doc: dict[str, int] = {}
    for q in first:
        per_doc[q.doc_id] = per_doc.get(q.doc_id, 0) + 1
    assert max(per_doc.values()) <= 3


def test_heldout_split_is_by_document(cranfield_documents) -> None:
    queries = PseudoQueryGenerator(cranfield_documents, heldout_fraction=0.2).generate()
    splits: dict[str, set[str]] = {}
    for q in queries:
        splits.setdefault(q.doc_id, set()).add(q.split)
    assert all(len(s) == 1 for s in splits.values())
    heldout = sum(1 for s in splits.values() if s == {"heldout"}) / len(splits)
    assert 0.1 < heldout < 0.3


def test_query_text_is_usually_removed_from_the_positive(cranfield_documents) -> None:
    queries = [q for q in PseudoQueryGenerator(cranfield_documents).generate() if q.kind in ("cloze", "span")]
    removed = np.mean([q.text not in q.positive_text for q in queries])
    assert 0.8 < removed <= 0.97
    always = PseudoQueryGenerator(cranfield_documents, removal_probability=1.0).generate()
    assert all(q.text not in q.positive_text for q in always if q.kind in ("cloze", "span"))


def test_mining_puts_the_positive_first_and_aligns_scores(tiny_data: Path, tmp_path: Path) -> None:
    documents = list(iter_corpus(tiny_data))
    queries = PseudoQueryGenerator(documents, removal_probability=0.0, heldout_fraction=0.0).generate()
    examples = mine_and_score(documents, queries, candidates_per_teacher=3, consistency_depth=3)
    assert examples, "some queries must pass the round-trip filter"
    for example in examples:
        assert example.candidates[0] == example.query.doc_id
        assert len(set(example.candidates)) == len(example.candidates)
        assert set(example.scores) == {"bm25", "dense"}
        assert all(len(v) == len(example.candidates) for v in example.scores.values())
        assert -1.0 <= min(example.scores["dense"]) and max(example.scores["dense"]) <= 1.0 + 1e-6
    save_examples(examples, tmp_path / "teachers.jsonl")
    assert load_examples(tmp_path / "teachers.jsonl") == examples
