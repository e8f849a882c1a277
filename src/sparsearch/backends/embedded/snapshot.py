"""A consistent, read-only view of an embedded index: one commit's segments and their tombstones.

Searches take the current snapshot once and read only it, so a commit (another thread's update, a
merge, another process's ``--overwrite``) never changes what a running search sees, and searches
never wait for writers. A snapshot holds references to its :class:`SegmentReader`\\ s; Python's
reference counting keeps them (and their mapped files) alive until the last snapshot using them is
collected, even when a writer has removed their folders.

Search across segments: each segment answers its own exact top k of live documents (the kernels skip
tombstoned ones), then the lists are merged by score, then ``doc_id``: the top k of the union is the
exact top k of the index, with the same order as one segment would give.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from itertools import accumulate, chain, repeat
from types import SimpleNamespace
from typing import TypeVar

import numpy as np

from sparsearch.backends.embedded.codec import WINDOW_DOCS
from sparsearch.backends.embedded.commit import Commit
from sparsearch.backends.embedded.kernels import positions, search_queries
from sparsearch.backends.embedded.segment import SegmentView
from sparsearch.errors import IndexFormatError
from sparsearch.types import Document, EncoderFingerprint, Hit

_T = TypeVar("_T")
DENSE_QUERY_CHUNK = 64
"""Queries scored by one pass of :meth:`Snapshot.dense_search` over the windows."""


class ScratchBuffers(threading.local):
    """Per-thread scratch arrays of the kernels, sized to the largest segment seen and sliced per segment."""

    def get(self, n_docs: int) -> SimpleNamespace:
        """``scores`` float64 (n_docs,) and ``acc`` float32 (WINDOW_DOCS,), all zeros and left so by the
        kernels; ``touched`` int32 (n_docs,), ``win_touched`` int32 (WINDOW_DOCS + 1,), ``cand_docs``
        int32 and ``cand_values`` float32 (n_docs,)."""
        views = getattr(self, "views", None)
        if views is not None and views.scores.shape[0] == n_docs:  # the same segment as last time
            return views
        buffers = getattr(self, "buffers", None)
        if buffers is None or len(buffers.scores) < n_docs:
            size = max(n_docs, 1)
            buffers = self.buffers = SimpleNamespace(
                scores=np.zeros(size, dtype=np.float64),
                touched=np.empty(size, dtype=np.int32),
                acc=np.zeros(WINDOW_DOCS, dtype=np.float32),
                win_touched=np.empty(WINDOW_DOCS + 1, dtype=np.int32),
                cand_docs=np.empty(size, dtype=np.int32),
                cand_values=np.empty(size, dtype=np.float32),
            )
        self.views = SimpleNamespace(
            scores=buffers.scores[:n_docs],
            touched=buffers.touched[:n_docs],
            acc=buffers.acc,
            win_touched=buffers.win_touched,
            cand_docs=buffers.cand_docs[:n_docs],
            cand_values=buffers.cand_values[:n_docs],
        )
        return self.views


ChunkRunner = Callable[[Callable[[int, int], _T], int], Iterable[_T]]
"""How a batch's kernel calls are run: ``run(search_range, n_queries)`` calls ``search_range(lo, hi)`` on
ranges that cover ``[0, n_queries)`` in order (on other threads, maybe) and yields the results in order."""


def hit_lists(ids: list[list[str]], scores: list[list[float]]) -> list[list[Hit]]:
    """:class:`Hit` lists from :meth:`Snapshot.ranked`'s parallel lists."""
    return [
        [Hit(doc_id, score) for doc_id, score in zip(row_ids, row_scores, strict=True)]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]


def run_serially(search_range: Callable[[int, int], _T], n_queries: int) -> list[_T]:
    """The :data:`ChunkRunner` of one thread: the whole batch in one call."""
    return [search_range(0, n_queries)]


class Snapshot:
    """One commit of an index, opened: ``views`` in manifest order."""

    def __init__(self, commit: Commit, views: Sequence[SegmentView]) -> None:
        self.commit = commit
        self.views = tuple(views)

    @property
    def manifest(self) -> dict:
        return self.commit.manifest

    @cached_property
    def fingerprint(self) -> EncoderFingerprint:
        """The encoder that built the index (every query is checked against it)."""
        return EncoderFingerprint.from_dict(self.commit.manifest["encoder"])

    def count(self) -> int:
        return sum(view.n_live for view in self.views)

    @cached_property
    def doc_ids(self) -> list[str]:
        """Live document ids, segment by segment."""
        return [doc_id for view in self.views for doc_id in view.live_doc_ids()]

    def locate(self, doc_id: str) -> tuple[SegmentView, int] | None:
        """The segment and ``doc_idx`` of the live document ``doc_id`` (at most one: an upsert
        tombstones the old copy in the same commit that adds the new one)."""
        for view in reversed(self.views):  # recent segments first: updated documents live there
            doc = view.locate(doc_id)
            if doc is not None:
                return view, doc
        return None

    # -- search ------------------------------------------------------------------------------------
    def ranked(
        self, queries: Sequence[dict[str, float]], top_k: int, scratch: ScratchBuffers, run: ChunkRunner = run_serially
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Exact top-``top_k`` of each query (``token -> weight``; tokens whose weight is not > 0 are left
        out) as parallel lists: per query its doc ids and their scores, best first.

        The batch is flattened once (tokens, float64 weights, CSR offsets); per segment, ``run`` hands
        ranges of queries to :meth:`_ranked_segment`'s worker, which maps the range's tokens to the
        segment's term ids in one pass (-1 where it lacks a token), answers them in one compiled call
        (which releases the GIL) and looks up the doc ids of all hits in one indexing of an object
        array. Several segments' lists are merged per query.
        """
        tokens = list(chain.from_iterable(queries))
        values = chain.from_iterable(query.values() for query in queries)
        weights = np.fromiter(values, dtype=np.float64, count=len(tokens))
        query_indptr = np.fromiter(accumulate(map(len, queries), initial=0), dtype=np.int64, count=len(queries) + 1)
        batch = (tokens, weights, query_indptr)
        found = [self._ranked_segment(view, batch, top_k, scratch, run) for view in self.views if view.n_live > 0]
        if len(found) == 1:
            return found[0]
        ids: list[list[str]] = []
        scores: list[list[float]] = []
        for i in range(len(queries)):
            # (-score, doc_id) orders like the kernels: score descending, then doc_id ascending
            best = heapq.nsmallest(
                top_k, ((-score, doc_id) for seg_ids, seg_scores in found for doc_id, score in
                        zip(seg_ids[i], seg_scores[i], strict=True))
            )  # fmt: skip
            ids.append([doc_id for _, doc_id in best])
            scores.append([-negative for negative, _ in best])
        return ids, scores

    @staticmethod
    def _ranked_segment(
        view: SegmentView,
        batch: tuple[list[str], np.ndarray, np.ndarray],
        top_k: int,
        scratch: ScratchBuffers,
        run: ChunkRunner,
    ) -> tuple[list[list[str]], list[list[float]]]:
        """Each query's top ``top_k`` in one segment: doc ids and scores, best first.

        Each range of queries is prepared, searched and turned into lists by the thread that runs it:
        with two threads, one thread's Python part (tokens to term ids, hits to doc ids) overlaps the
        other's compiled call (mapping a whole batch up front took 2.7 us a query, cache-cold after
        the previous batch's kernels, on one thread while the other waited; see docs/engines.md).
        """
        tokens, weights, query_indptr = batch
        get = view.reader.term_index.get
        p = view.reader.compressed
        bounds = p.block_bounds()  # stored; derived here, once, for segments written before they were
        all_live = len(view.deleted) == 0
        doc_id_array = view.reader.doc_id_array

        def search_range(lo: int, hi: int) -> tuple[list[list[str]], list[list[float]]]:
            start, stop = int(query_indptr[lo]), int(query_indptr[hi])
            # -1 for tokens the segment lacks; the kernel skips them and weights not > 0 (NaN included)
            terms = np.fromiter(map(get, tokens[start:stop], repeat(-1)), dtype=np.int64, count=stop - start)
            buf = scratch.get(p.n_docs)  # the calling thread's buffers
            docs, scores, counts, _ = search_queries(
                p.window_offsets, p.doc_low, p.impacts, p.impact_scale, p.weights, p.n_windows, *bounds,
                query_indptr[lo : hi + 1], terms, weights[start:stop], view.live_rank, all_live, top_k,
                buf.scores, buf.touched, buf.acc, buf.win_touched, buf.cand_docs, buf.cand_values,
            )  # fmt: skip
            ids = doc_id_array[docs].tolist()  # -1 past a short row's count: sliced off below
            score_rows = scores.tolist()
            n_hits = counts.tolist()
            if min(n_hits, default=docs.shape[1]) == docs.shape[1]:  # full rows (or an empty batch)
                return ids, score_rows
            return [row[:n] for row, n in zip(ids, n_hits, strict=True)], [
                row[:n] for row, n in zip(score_rows, n_hits, strict=True)
            ]

        ids: list[list[str]] = []
        scores: list[list[float]] = []
        for range_ids, range_scores in run(search_range, len(query_indptr) - 1):
            ids.extend(range_ids)
            scores.extend(range_scores)
        return ids, scores

    def postings_touched(self, query: dict[str, float]) -> int:
        total = 0
        for view in self.views:
            p, term_index = view.reader.compressed, view.reader.term_index
            ids = np.asarray([term_index[t] for t in query if t in term_index], dtype=np.int64)
            starts = p.window_offsets[ids * p.n_windows]
            total += int((p.window_offsets[(ids + 1) * p.n_windows] - starts).sum())
        return total

    def explain(self, query: dict[str, float], doc_id: str) -> dict[str, float]:
        """Per matched query token, its contribution ``q_weight x d_weight`` to ``doc_id``'s score."""
        found = self.locate(doc_id)
        if found is None:
            return {}
        view, doc = found
        term_index = view.reader.term_index
        matched = [(token, q, term_index[token]) for token, q in query.items() if token in term_index]
        terms = np.asarray([term for _, _, term in matched], dtype=np.int64)
        found_at = self._positions(view, terms, np.full(len(terms), doc, dtype=np.int64))
        weights = view.reader.compressed.weights
        return {
            token: float(q * weights[pos])
            for (token, q, _), pos in zip(matched, found_at.tolist(), strict=True)
            if pos >= 0
        }

    @staticmethod
    def _positions(view: SegmentView, terms: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """int64: the posting position of each ``(terms[i], docs[i])`` in ``view``'s segment, -1 if none."""
        p = view.reader.compressed
        return positions(p.window_offsets, p.doc_low, p.n_windows, terms, docs)

    def document_vector(self, doc_id: str) -> dict[str, float]:
        """The stored ``token -> weight`` map of one live document (a scan of its segment's postings)."""
        found = self.locate(doc_id)
        if found is None:
            raise KeyError(doc_id)
        view, doc = found
        vocab = view.reader.compressed.vocab
        found_at = self._positions(view, np.arange(len(vocab), dtype=np.int64), np.full(len(vocab), doc, np.int64))
        terms = np.flatnonzero(found_at >= 0)
        weights = np.asarray(view.reader.compressed.weights)[found_at[terms]]
        return {vocab[t]: float(w) for t, w in zip(terms.tolist(), weights.tolist(), strict=True)}

    def dense_windows(self, doc_id: str) -> np.ndarray:
        """The stored window embeddings of one live document, float16 (n_windows, 384).

        Raises:
            KeyError: no live document ``doc_id``.
            IndexFormatError: its segment has no dense files although the manifest says it should.
        """
        found = self.locate(doc_id)
        if found is None:
            raise KeyError(doc_id)
        view, doc = found
        if view.reader.dense is None:
            raise IndexFormatError(f"{view.reader.directory}: dense vectors missing; rebuild the index with --dense")
        return view.reader.dense.document(doc)

    def sparse_scores(self, query: dict[str, float], doc_ids: Sequence[str]) -> np.ndarray:
        """Exact sparse scores of given live documents, whether or not the search would return them.

        Args:
            query: ``token -> weight`` (weights > 0).
            doc_ids: (n,) live document ids (a missing id raises ``KeyError``).

        Returns:
            float64 (n,): ``sum over shared tokens of q_weight x d_weight`` (0 for a document sharing
            no token), summed in the query's token order like :meth:`explain`.
        """
        scores = np.zeros(len(doc_ids), dtype=np.float64)
        by_view: dict[int, tuple[SegmentView, list[int], list[int]]] = {}
        for i, doc_id in enumerate(doc_ids):
            found = self.locate(doc_id)
            if found is None:
                raise KeyError(doc_id)
            view, doc = found
            _, rows, docs = by_view.setdefault(id(view), (view, [], []))
            rows.append(i)
            docs.append(doc)
        for view, rows, docs in by_view.values():
            term_index = view.reader.term_index
            rows_arr, docs_arr = np.asarray(rows, dtype=np.int64), np.asarray(docs, dtype=np.int64)
            weights = view.reader.compressed.weights
            for token, weight in query.items():
                term_id = term_index.get(token)
                if term_id is None:
                    continue
                found_at = self._positions(view, np.full(len(docs_arr), term_id, dtype=np.int64), docs_arr)
                hit = found_at >= 0
                scores[rows_arr[hit]] += float(weight) * np.asarray(weights)[found_at[hit]].astype(np.float64)
        return scores

    def dense_search(self, embeddings: np.ndarray, top_k: int) -> list[list[Hit]]:
        """Exact exhaustive dense search: per query, the ``top_k`` live documents by best-window cosine.

        Every window of every segment is scored (a document without windows is never returned), in
        float64 so the order does not depend on batching; tombstoned documents are skipped. The
        windows are read from each segment's cached float64 copy (:attr:`SegmentReader.dense_float64`,
        3 KB a window, kept while the segment is open); a call adds the (n_windows, n_queries) float64
        scores of one segment, at most :data:`DENSE_QUERY_CHUNK` queries at a time.

        Args:
            embeddings: float32 (n_queries, 384), L2-normalised query embeddings.
            top_k: hits per query.

        Returns:
            Per query, up to ``top_k`` hits (``score``: the cosine), score descending, then ``doc_id``.

        Raises:
            IndexFormatError: a segment has no dense files.
        """
        queries = np.asarray(embeddings, dtype=np.float64)
        if len(queries) > DENSE_QUERY_CHUNK:  # bounds the (n_windows, n_queries) score matrix
            return [
                hits
                for lo in range(0, len(queries), DENSE_QUERY_CHUNK)
                for hits in self.dense_search(queries[lo : lo + DENSE_QUERY_CHUNK], top_k)
            ]
        found: list[list[tuple[float, str]]] = [[] for _ in range(len(queries))]
        for view in self.views:
            if view.n_live == 0:
                continue
            dense = view.reader.dense
            if dense is None:
                raise IndexFormatError(
                    f"{view.reader.directory}: dense vectors missing; rebuild the index with --dense"
                )
            counts = np.diff(dense.indptr)
            docs = np.flatnonzero((counts > 0) & (view.live_rank >= 0))
            if not len(docs) or not len(queries):
                continue
            cosines = view.reader.dense_float64 @ queries.T  # (n_windows, n_queries)
            with_windows = np.flatnonzero(counts > 0)
            best = np.maximum.reduceat(cosines, dense.indptr[with_windows], axis=0)  # (n_with_windows, n_q)
            best = best[np.isin(with_windows, docs)]
            doc_ids = view.reader.doc_ids
            k = min(top_k, len(docs))
            for q in range(len(queries)):
                column = best[:, q]
                # every document scoring at least the k-th best: ties at the cut are kept, then ordered by doc_id
                kth = np.partition(column, len(column) - k)[len(column) - k]
                keep = np.flatnonzero(column >= kth)
                found[q].extend((-float(column[i]), doc_ids[int(docs[i])]) for i in keep)
        return [[Hit(doc_id, -negative) for negative, doc_id in heapq.nsmallest(top_k, hits)] for hits in found]

    def get_documents(self, doc_ids: Sequence[str]) -> list[Document | None]:
        documents: list[Document | None] = []
        for doc_id in doc_ids:
            found = self.locate(doc_id)
            if found is None:
                documents.append(None)
            else:
                view, doc = found
                title, text = view.reader.store.get(doc)
                documents.append(Document(doc_id=doc_id, title=title, text=text))
        return documents

    # -- statistics --------------------------------------------------------------------------------
    def live_statistics(self) -> tuple[int, float, int]:
        """``(n_terms, avg_terms_per_doc, empty_documents)`` over live documents; ``n_terms`` counts
        distinct tokens over the segments (the terms of deleted documents count until a merge)."""
        largest = max(self.views, key=lambda view: len(view.reader.term_index), default=None)
        extra: set[str] = set()
        for view in self.views:
            if view is not largest:
                extra.update(t for t in view.reader.compressed.vocab if t not in largest.reader.term_index)  # type: ignore[union-attr]
        n_terms = (len(largest.reader.term_index) if largest is not None else 0) + len(extra)
        terms = empty = live = 0
        for view in self.views:
            lengths = view.reader.doc_lengths
            if len(view.deleted):
                lengths = lengths[view.live_rank >= 0]
            terms += int(lengths.sum())
            empty += int((lengths == 0).sum())
            live += len(lengths)
        return n_terms, terms / live if live else 0.0, empty
