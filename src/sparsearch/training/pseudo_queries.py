"""Label-free training queries drawn from a corpus's own documents (docs/method.md#pseudo-queries).

Generators (cheap and model-free):

* ``title``: the title asks for its body (the title is cut from the start of the body, where
  collections often repeat it, with probability ``removal_probability``);
* ``cloze``: one sentence of the text asks for the rest (inverse cloze); the sentence is removed
  from the positive with probability ``removal_probability`` so lexical copying is not a free win;
* ``keywords``: 2-6 of the document's highest TF-IDF words, shuffled;
* ``span``: a random run of 4-16 consecutive words.

Queries are deduplicated, queries of fewer than two words are dropped, and whole documents (not
single queries) are assigned to the training or the held-out split, so held-out queries never share
a source document with training queries. Evaluation queries and qrels are never read.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sparsearch.encoders.analyzers import ENGLISH_STOP_WORDS
from sparsearch.types import Document

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"(?u)\b[^\W\d_][\w-]+\b")
GENERATORS = ("title", "cloze", "keywords", "span")


@dataclass(frozen=True)
class PseudoQuery:
    """One training query and its source document.

    Attributes:
        query_id: unique id (``<doc_id>:<kind>``).
        text: the query text.
        doc_id: the document it was drawn from (the positive).
        positive_text: the positive's text as the student should see it (the query removed from it
            most of the time).
        kind: which generator made it.
        split: ``"train"`` or ``"heldout"``.
    """

    query_id: str
    text: str
    doc_id: str
    positive_text: str
    kind: str
    split: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _document_frequencies(documents: Sequence[Document]) -> tuple[Counter[str], int]:
    df: Counter[str] = Counter()
    for document in documents:
        df.update({w.lower() for w in _WORD.findall(document.full_text)})
    return df, len(documents)


class PseudoQueryGenerator:
    """Draws 1-``max_per_document`` pseudo-queries per document.

    Args:
        documents: the corpus (only its text is used).
        seed: random seed (the output is deterministic for a seed).
        max_per_document: at most this many queries per document (docs/method.md#pseudo-queries).
        removal_probability: how often the query's own text is cut from the positive.
        heldout_fraction: fraction of documents whose queries form the held-out split.
    """

    def __init__(
        self,
        documents: Sequence[Document],
        seed: int = 13,
        max_per_document: int = 3,
        removal_probability: float = 0.9,
        heldout_fraction: float = 0.1,
    ) -> None:
        self.documents = documents
        self.rng = random.Random(seed)
        self.max_per_document = max_per_document
        self.removal_probability = removal_probability
        self.heldout_fraction = heldout_fraction
        self.df, self.n_docs = _document_frequencies(documents)

    def _remove(self, text: str, piece: str) -> str:
        if self.rng.random() < self.removal_probability:
            return " ".join(text.replace(piece, " ").split())
        return text

    def _title(self, document: Document) -> tuple[str, str] | None:
        title = document.title.strip()
        if len(title.split()) < 2 or not document.text.strip():
            return None
        body = document.text
        if body.lower().startswith(title.lower()):
            body = self._remove(body, body[: len(title)])
        return title, body

    def _cloze(self, document: Document) -> tuple[str, str] | None:
        sentences = [s for s in _sentences(document.text) if 4 <= len(s.split()) <= 40]
        if len(_sentences(document.text)) < 2 or not sentences:
            return None
        sentence = self.rng.choice(sentences)
        return sentence, self._remove(document.text, sentence)

    def _keywords(self, document: Document) -> tuple[str, str] | None:
        counts = Counter(w.lower() for w in _WORD.findall(document.full_text) if w.lower() not in ENGLISH_STOP_WORDS)
        if len(counts) < 3:
            return None
        scored = sorted(counts, key=lambda w: (-counts[w] * math.log(self.n_docs / self.df[w]), w))[:8]
        chosen = self.rng.sample(scored, k=min(len(scored), self.rng.randint(2, 6)))
        return " ".join(chosen), document.full_text

    def _span(self, document: Document) -> tuple[str, str] | None:
        words = document.text.split()
        if len(words) < 8:
            return None
        length = self.rng.randint(4, min(16, len(words) - 1))
        start = self.rng.randrange(0, len(words) - length + 1)
        span = " ".join(words[start : start + length])
        return span, self._remove(" ".join(words), span)

    def generate(self) -> list[PseudoQuery]:
        """All pseudo-queries, deduplicated (case-insensitive), in document order."""
        generators = {"title": self._title, "cloze": self._cloze, "keywords": self._keywords, "span": self._span}
        seen: set[str] = set()
        queries: list[PseudoQuery] = []
        for document in self.documents:
            split = "heldout" if self.rng.random() < self.heldout_fraction else "train"
            kinds = self.rng.sample(GENERATORS, k=len(GENERATORS))
            made = 0
            for kind in kinds:
                if made >= self.max_per_document:
                    break
                result = generators[kind](document)
                if result is None:
                    continue
                text, positive = result
                key = " ".join(text.lower().split())
                if len(_WORD.findall(text)) < 2 or key in seen or not positive.strip():
                    continue
                seen.add(key)
                queries.append(PseudoQuery(f"{document.doc_id}:{kind}", text, document.doc_id, positive, kind, split))
                made += 1
        return queries
