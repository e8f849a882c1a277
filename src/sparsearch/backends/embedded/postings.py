"""Posting lists in a term-major (CSC-like) layout, built for vectorised score accumulation.

For term ``t`` (``term_id``), its postings are ``doc_idx[indptr[t]:indptr[t+1]]`` (int32, ascending)
with weights ``weights[indptr[t]:indptr[t+1]]`` (float32). In memory ``indptr`` is int64 so the
number of postings may pass 2^31; on disk it is stored in the narrowest type that holds the postings
count (:func:`offsets_dtype`), so the stored arrays are exactly as large as scipy's CSC arrays of the
same matrix. Segments store postings compressed (:mod:`sparsearch.backends.embedded.codec`); this is
the form builders produce and exports read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sparsearch.errors import UsageError
from sparsearch.types import Document


def offsets_dtype(nnz: int) -> np.dtype:
    """The narrowest type that stores posting offsets ``0..nnz`` and that the kernels read as int64.

    uint32 up to 2^32 - 1 postings (the width scipy's int32 CSC ``indptr`` has), int64 beyond.
    """
    return np.dtype(np.uint32) if nnz < 2**32 else np.dtype(np.int64)


class InvalidWeightError(ValueError):
    """A document weight breaks the contract (weights must be finite and > 0)."""

    def __init__(self, doc_row: int, token: str, weight: float) -> None:
        super().__init__(f"row {doc_row}: token {token!r} has weight {weight!r}; weights must be finite and > 0")
        self.doc_row = doc_row
        self.token = token
        self.weight = weight


@contextlib.contextmanager
def naming_bad_weights(documents: Sequence[Document], first_row: int) -> Iterator[None]:
    """Turn a builder's :class:`InvalidWeightError` into a :class:`UsageError` that names the document
    (``documents[0]`` is the builder's row ``first_row``)."""
    try:
        yield
    except InvalidWeightError as error:
        doc_id = documents[error.doc_row - first_row].doc_id
        raise UsageError(
            f"document {doc_id!r}: token {error.token!r} has weight {error.weight!r}; "
            "document weights must be finite and > 0"
        ) from None


@dataclass
class Postings:
    """Term-major postings. Shapes: indptr (n_terms + 1,), doc_idx/weights (nnz,)."""

    vocab: list[str]
    indptr: np.ndarray
    doc_idx: np.ndarray
    weights: np.ndarray
    n_docs: int

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def doc_lengths(self) -> np.ndarray:
        """Number of terms of each document, shape (n_docs,)."""
        return np.bincount(self.doc_idx, minlength=self.n_docs)

    def to_coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(term_id, doc_idx, weight)`` triples, term-major."""
        term_ids = np.repeat(np.arange(len(self.vocab), dtype=np.int32), np.diff(self.indptr))
        return term_ids, np.asarray(self.doc_idx), np.asarray(self.weights)


class PostingsBuilder:
    """Collects document vectors row by row, then sorts them into :class:`Postings`.

    Args:
        vocab: an initial vocabulary (term ids keep their positions); new tokens are appended.
    """

    def __init__(self, vocab: Sequence[str] = ()) -> None:
        self.vocab: list[str] = list(vocab)
        self.term_index: dict[str, int] = {token: i for i, token in enumerate(self.vocab)}
        self._terms: list[np.ndarray] = []
        self._docs: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []
        self.n_docs = 0

    @property
    def n_postings(self) -> int:
        """Postings added since the builder was created or last :meth:`reset`."""
        return sum(len(part) for part in self._terms)

    def reset(self) -> None:
        """Forget the added rows (the vocabulary stays): the next row is row 0 again."""
        self._terms, self._docs, self._weights = [], [], []
        self.n_docs = 0

    def add_coo(self, term_ids: np.ndarray, doc_idx: np.ndarray, weights: np.ndarray, n_docs: int) -> None:
        """Append postings already expressed in this builder's term ids; ``doc_idx`` is absolute.

        Raises:
            InvalidWeightError: a weight is not a finite number > 0 in float32 (the scoring contract;
                the kernels rely on it).
        """
        weights = weights.astype(np.float32, copy=False)
        bad = np.flatnonzero(~(np.isfinite(weights) & (weights > 0)))
        if len(bad):
            first = bad[0]
            raise InvalidWeightError(int(doc_idx[first]), self.vocab[int(term_ids[first])], float(weights[first]))
        self._terms.append(term_ids.astype(np.int32, copy=False))
        self._docs.append(doc_idx.astype(np.int32, copy=False))
        self._weights.append(weights.astype(np.float32, copy=False))
        self.n_docs += n_docs

    def term_ids_for(self, tokens: Sequence[str]) -> np.ndarray:
        """This builder's term id of each token (new tokens are appended), int32 (len(tokens),)."""
        term_index = self.term_index
        ids = np.empty(len(tokens), dtype=np.int32)
        for i, token in enumerate(tokens):
            term_id = term_index.get(token)
            if term_id is None:
                term_id = term_index[token] = len(self.vocab)
                self.vocab.append(token)
            ids[i] = term_id
        return ids

    def add_csr(self, indptr: np.ndarray, term_ids: np.ndarray, weights: np.ndarray, vocabulary: Sequence[str]) -> None:
        """Append rows given in CSR form over their own ``vocabulary``.

        Args:
            indptr: int64 (rows + 1,) row offsets into ``term_ids``/``weights``.
            term_ids: int (nnz,) indices into ``vocabulary``.
            weights: float (nnz,) weights > 0.
            vocabulary: the tokens ``term_ids`` refer to.
        """
        rows = len(indptr) - 1
        lookup = self.term_ids_for(vocabulary)
        docs = self.n_docs + np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr))
        self.add_coo(lookup[np.asarray(term_ids)], docs, np.asarray(weights), rows)

    def add_documents(self, vectors: Sequence[Mapping[str, float]]) -> None:
        """Append one row per vector (``token -> weight``, weights > 0)."""
        tokens = [token for vector in vectors for token in vector]
        weights = np.fromiter((w for vector in vectors for w in vector.values()), dtype=np.float32, count=len(tokens))
        lengths = np.fromiter((len(vector) for vector in vectors), dtype=np.int64, count=len(vectors))
        docs = self.n_docs + np.repeat(np.arange(len(vectors), dtype=np.int64), lengths)
        self.add_coo(self.term_ids_for(tokens), docs, weights, len(vectors))

    def build(self) -> Postings:
        n_terms = len(self.vocab)
        if self._terms:
            terms = np.concatenate(self._terms)
            docs = np.concatenate(self._docs)
            weights = np.concatenate(self._weights)
        else:
            terms = np.zeros(0, np.int32)
            docs = np.zeros(0, np.int32)
            weights = np.zeros(0, np.float32)
        # Rows arrive in doc order, so a stable sort by term keeps each posting list doc-ascending.
        order = np.argsort(terms, kind="stable")
        terms, docs, weights = terms[order], docs[order], weights[order]
        counts = np.bincount(terms, minlength=n_terms)
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return Postings(self.vocab, indptr, docs, weights, self.n_docs)
