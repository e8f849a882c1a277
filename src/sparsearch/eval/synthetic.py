"""Synthetic sparse corpora for scale benchmarks, fitted to a real index.

A :class:`CorpusProfile` captures what an encoder produces on real text: how often each vocabulary
entry occurs (its document frequency), how many terms a document has, and how weights are
distributed. :func:`generate_postings` draws a corpus of any size from it (terms drawn in proportion
to their document frequency, lengths and weights resampled from the real index), and
:func:`generate_queries` draws queries of realistic length from generated documents, weighted by
the generated corpus's IDF.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sparsearch.backends.embedded.postings import Postings, PostingsBuilder
from sparsearch.encoders.idf import bm25_idf


@dataclass
class CorpusProfile:
    """Distributions measured on a real index.

    Attributes:
        vocab: tokens, shape (V,).
        df_fraction: float64 (V,), fraction of documents containing each token.
        doc_lengths: int64 (n,), terms per document of the real corpus (resampled).
        weights: float32 (m,), a sample of real posting weights (resampled).
    """

    vocab: list[str]
    df_fraction: np.ndarray
    doc_lengths: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_postings(cls, postings: Postings, weight_sample: int = 200_000, seed: int = 0) -> CorpusProfile:
        rng = np.random.default_rng(seed)
        df = np.diff(np.asarray(postings.indptr)).astype(np.float64)
        lengths = postings.doc_lengths()
        weights = np.asarray(postings.weights)
        sample = weights[rng.integers(0, len(weights), size=min(weight_sample, len(weights)))]
        return cls(list(postings.vocab), df / max(postings.n_docs, 1), lengths[lengths > 0], sample.astype(np.float32))

    @property
    def mean_terms_per_doc(self) -> float:
        return float(self.doc_lengths.mean())


def iter_generated_rows(
    profile: CorpusProfile, n_docs: int, seed: int = 0, chunk: int = 50_000
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Documents drawn from ``profile``, as CSR chunks ``(indptr, term_ids, weights)`` over
    ``profile.vocab`` (at most ``chunk`` rows each).

    Terms are drawn with replacement in proportion to ``df_fraction`` and deduplicated per document,
    so documents come out slightly shorter than the sampled length when frequent terms repeat.
    """
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(profile.df_fraction)
    vocab_size = len(profile.vocab)
    for start in range(0, n_docs, chunk):
        rows = min(chunk, n_docs - start)
        lengths = rng.choice(profile.doc_lengths, size=rows)
        docs = np.repeat(np.arange(rows, dtype=np.int64), lengths)
        terms = np.searchsorted(cumulative, rng.random(len(docs)) * cumulative[-1])
        keys = np.sort(docs * vocab_size + np.minimum(terms, vocab_size - 1))  # sorted by doc, then term
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # dedupe (np.unique hashes: ~8x slower)
        docs, terms = keys // vocab_size, keys % vocab_size
        indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=rows), out=indptr[1:])
        yield indptr, terms.astype(np.int32), rng.choice(profile.weights, size=len(keys))


def generate_postings(profile: CorpusProfile, n_docs: int, seed: int = 0) -> Postings:
    """A whole generated corpus as term-major postings (see :func:`iter_generated_rows`)."""
    builder = PostingsBuilder(profile.vocab)
    for indptr, terms, weights in iter_generated_rows(profile, n_docs, seed):
        builder.add_csr(indptr, terms, weights, profile.vocab)
    return builder.build()


def generate_queries(
    postings: Postings, n_queries: int, min_terms: int = 5, max_terms: int = 15, seed: int = 1
) -> list[dict[str, float]]:
    """Queries of ``min_terms..max_terms`` distinct tokens drawn in proportion to document frequency
    (the distribution of a document's own tokens, as pseudo-queries have), weighted by IDF."""
    rng = np.random.default_rng(seed)
    df = np.diff(np.asarray(postings.indptr)).astype(np.float64)
    probabilities = df / df.sum()
    n_present = int((df > 0).sum())
    queries = []
    for _ in range(n_queries):
        size = int(rng.integers(min_terms, max_terms + 1))
        chosen = rng.choice(len(df), size=min(size, n_present), replace=False, p=probabilities)
        queries.append({postings.vocab[t]: bm25_idf(df[t], postings.n_docs) for t in chosen})
    return queries
