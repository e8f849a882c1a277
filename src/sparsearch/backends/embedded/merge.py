"""Merging segments: which ones to merge (the policy) and writing the merged segment.

Policy (checked after every commit, run in the background; :func:`pick_merge`), after Lucene's
log-size merge policy:

1. A segment whose deleted documents pass :data:`MAX_DELETED_SHARE` of its documents is rewritten
   alone: its tombstoned postings and the terms only they used go away.
2. Segments are grouped in levels by live size, level ``L`` holding ``MERGE_FACTOR**L`` to
   ``MERGE_FACTOR**(L+1) - 1`` documents; the lowest level with ``MERGE_FACTOR`` segments is merged
   into one (a segment of the next level). A stream of one-document updates thus keeps fewer than
   ``MERGE_FACTOR`` segments per level (a few dozen in all at millions of documents), and each
   document is rewritten once per level, ``log_8(n)`` times.

A forced merge (:meth:`EmbeddedIndex.merge`) merges everything into one segment, as a fresh build
would have it: same documents, same terms, no tombstones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sparsearch.backends.embedded.commit import SegmentEntry
from sparsearch.backends.embedded.concat import Part, Written, write_concatenated
from sparsearch.backends.embedded.docstore import DocStoreWriter
from sparsearch.backends.embedded.postings import PostingsBuilder
from sparsearch.backends.embedded.segment import SegmentView, write_ids
from sparsearch.encoders.dense import DenseWindows

MERGE_FACTOR = 8
MAX_DELETED_SHARE = 0.25


def _level(n_live: int) -> int:
    return int(math.log(max(n_live, 1), MERGE_FACTOR))


def pick_merge(segments: Sequence[SegmentEntry]) -> list[str]:
    """Names of the segments the next background merge combines (empty: nothing to merge)."""
    for entry in segments:
        if entry.n_deleted and entry.n_deleted > MAX_DELETED_SHARE * entry.n_docs:
            return [entry.name]
    levels: dict[int, list[str]] = defaultdict(list)
    for entry in segments:
        levels[_level(entry.n_live)].append(entry.name)
    for level in sorted(levels):
        if len(levels[level]) >= MERGE_FACTOR:
            return levels[level]
    return []


def pick_all(segments: Sequence[SegmentEntry]) -> list[str]:
    """A forced merge: every segment, unless the index is already one segment without tombstones."""
    if len(segments) == 1 and not segments[0].n_deleted:
        return []
    return [entry.name for entry in segments]


def write_merged(directory: Path, views: Sequence[SegmentView]) -> tuple[Written, list[np.ndarray]]:
    """Write the live documents of ``views`` (in order) as one segment into ``directory`` (existing, empty),
    streaming their postings (:func:`~sparsearch.backends.embedded.concat.write_concatenated`: memory
    holds one segment's postings at a time, not the merged ones).

    Returns:
        What was written (terms with no live posting dropped) and, per view, int64 (n_docs,) the
        new ``doc_idx`` of each of its documents (-1 for a deleted one), to carry over deletions that
        arrive while the merge runs.
    """
    store = DocStoreWriter(directory)
    doc_ids: list[str] = []
    terms = PostingsBuilder()  # only its vocabulary: term_ids_for numbers each new token
    parts, mappings = [], []
    with_dense = bool(views) and all(view.reader.dense is not None for view in views)
    dense_parts: list[DenseWindows] = []  # window embeddings follow their documents (--dense indexes)
    for view in views:
        reader = view.reader
        live = view.live_rank >= 0
        n_live = int(live.sum())
        mapping = np.full(reader.n_docs, -1, dtype=np.int64)
        mapping[live] = len(doc_ids) + np.arange(n_live)
        term_map = terms.term_ids_for(reader.compressed.vocab).astype(np.int64)  # the union, in first-seen order
        # segments in order, each doc-ascending per term: every merged list stays doc-ascending
        parts.append(Part(reader.compressed, term_map, mapping))
        doc_ids.extend(doc_id for doc_id, alive in zip(reader.doc_ids, live.tolist(), strict=True) if alive)
        for row, alive in zip(reader.store.iter_rows(), live.tolist(), strict=True):
            if alive:
                store.add(*row)
        mappings.append(mapping)
        if with_dense:
            dense_parts.append(reader.dense.take(np.flatnonzero(live)))  # type: ignore[union-attr]
    store.close()
    written = write_concatenated(directory, parts, terms.vocab, len(doc_ids))
    write_ids(directory, doc_ids, DenseWindows.concat(dense_parts) if with_dense else None)
    return written, mappings
