"""What the routes do, without HTTP: encode, search, fetch documents, explain, snippet, highlight.

Everything here is synchronous and CPU-bound, and runs in worker threads so the event loop stays
free. A search works in chunks (:data:`QUERIES_PER_CHUNK` queries, then hit by hit when explaining)
and checks its :class:`~sparsearch.api.limits.Deadline` between them, so a search past its timeout,
or whose client went away, stops within one chunk.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sparsearch.api.errors import ApiError
from sparsearch.api.limits import Deadline
from sparsearch.api.metrics import Metrics
from sparsearch.api.registry import IndexHandle
from sparsearch.api.schemas import Explanation, Highlight, MatchedToken, SearchHit
from sparsearch.backends.base import SearchBackend
from sparsearch.types import Document, EncodedQuery, Encoder, Hit

_WORD = re.compile(r"\w+")
_WORD_CACHE_SIZE = 65_536

QUERIES_PER_CHUNK = 10
"""Queries retrieved per engine call: few enough that a deadline is checked often (a chunk of 10 x
top_k 1000 plain hits takes ~0.3 s on 2 cores), enough to keep the engines' batch calls."""


@dataclass
class SearchOutcome:
    """Hits of each query (request order), the encoder's name and the time spent, in milliseconds."""

    hits: list[list[SearchHit]]
    model: str
    took_ms: float


@functools.lru_cache(maxsize=32)
def _word_tokens(encoder: Encoder) -> Callable[[str], frozenset[str]]:
    """A cached ``word -> tokens`` function for one encoder (the tokens its query side makes of the word).

    Asking the encoder itself keeps highlighting right for every analyzer (stems, WordPieces...).
    """

    @functools.lru_cache(maxsize=_WORD_CACHE_SIZE)
    def tokens(word: str) -> frozenset[str]:
        return frozenset(encoder.encode_query(word).weights)

    return tokens


def find_highlights(
    text: str, matched: frozenset[str], tokens_of: Callable[[str], frozenset[str]]
) -> list[tuple[int, int, list[str]]]:
    """Words of ``text`` that produce a matched token: ``(start, end, sorted tokens)``, end exclusive."""
    spans = []
    for match in _WORD.finditer(text):
        hit = tokens_of(match.group().lower()) & matched
        if hit:
            spans.append((match.start(), match.end(), sorted(hit)))
    return spans


def make_snippet(text: str, chars: int, focus: int | None = None) -> str:
    """About ``chars`` characters of ``text`` cut at word boundaries, starting a little before ``focus``.

    ``…`` marks a cut at either end. ``focus`` is a character offset (the first match), ``None`` for
    the start of the text.
    """
    if len(text) <= chars:
        return text
    start = 0 if focus is None else max(0, focus - chars // 4)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < (focus or 0) else start
    end = min(len(text), start + chars)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    snippet = text[start:end].strip()
    return ("…" if start > 0 else "") + snippet + ("…" if end < len(text) else "")


def _contributions(backend: object, query: EncodedQuery, doc_id: str) -> dict[str, float]:
    """Per matched query token, ``q_weight x d_weight`` for ``doc_id``, as the backend scored it.

    The embedded engine explains itself. OpenSearch/Elasticsearch backends return the document's
    stored vector; the engine scores weights truncated to 9 significant bits, so the same truncation
    is applied here and the contributions add up to the engine's score (to float32 rounding).
    """
    explain = getattr(backend, "explain", None)
    if explain is not None:
        return explain(query, doc_id)
    document_vector = getattr(backend, "document_vector", None)
    if document_vector is None:
        raise ApiError(
            501,
            "explain_not_supported",
            f"the {getattr(backend, 'name', 'current')} backend cannot explain scores; search without explain",
        )
    from sparsearch.backends.engines.bodies import quantize_weights

    stored = document_vector(doc_id)
    shared = [token for token in query.weights if token in stored]
    quantized = quantize_weights([stored[token] for token in shared]) if shared else []
    return {token: query.weights[token] * float(weight) for token, weight in zip(shared, quantized, strict=True)}


def _first_match(text: str, tokens: frozenset[str], words: Callable[[str], frozenset[str]]) -> int | None:
    for match in _WORD.finditer(text):
        if words(match.group().lower()) & tokens:
            return match.start()
    return None


def _build_hit(
    backend: object,
    query: EncodedQuery,
    hit: Hit,
    document: Document | None,
    explain: bool,
    snippet_chars: int,
    words: Callable[[str], frozenset[str]],
) -> SearchHit:
    title = document.title if document is not None else None
    text = document.text if document is not None else None
    if not explain:
        snippet = make_snippet(text, snippet_chars) if text is not None else None
        return SearchHit(id=hit.doc_id, score=hit.score, title=title, snippet=snippet)
    contributions = _contributions(backend, query, hit.doc_id)
    tokens = frozenset(contributions)
    focus = _first_match(text, tokens, words) if text else None
    snippet = make_snippet(text, snippet_chars, focus) if text is not None else None
    matched = sorted(
        (
            MatchedToken(
                token=token,
                query_weight=query.weights[token],
                document_weight=contribution / query.weights[token],
                contribution=contribution,
            )
            for token, contribution in contributions.items()
        ),
        key=lambda m: (-m.contribution, m.token),
    )
    highlights = [
        Highlight(field=field, start=start, end=end, tokens=hit_tokens)
        for field, field_text in (("title", title), ("snippet", snippet))
        if field_text
        for start, end, hit_tokens in find_highlights(field_text, tokens, words)
    ]
    explanation = Explanation(matched=matched, highlights=highlights)
    return SearchHit(id=hit.doc_id, score=hit.score, title=title, snippet=snippet, explain=explanation)


def _retrieve(
    handle: IndexHandle, backend: SearchBackend, queries: Sequence[EncodedQuery], top_k: int
) -> list[list[Hit]]:
    """The engine's hits for each query (none for a query that encoded to no token)."""
    non_empty = [q for q in queries if not q.is_empty]
    with handle.engine_errors("search"):
        found = iter(backend.search_batch(non_empty, top_k) if non_empty else [])
    return [[] if q.is_empty else next(found) for q in queries]


def _attach_documents(
    handle: IndexHandle,
    backend: SearchBackend,
    queries: Sequence[EncodedQuery],
    hit_lists: list[list[Hit]],
    *,
    explain: bool,
    snippet_chars: int,
    words: Callable[[str], frozenset[str]],
    deadline: Deadline,
) -> list[list[SearchHit]]:
    """Each hit with its title and snippet (and explanation), checking ``deadline`` per query, or per
    hit when explaining (about 0.4 ms a hit)."""
    all_ids = [hit.doc_id for hits in hit_lists for hit in hits]
    with handle.engine_errors("document fetch"):
        documents = iter(backend.get_documents(all_ids) if all_ids else [])
    results = []
    for query, hits in zip(queries, hit_lists, strict=True):
        deadline.check()
        built = []
        for hit in hits:
            if explain:
                deadline.check()
            built.append(_build_hit(backend, query, hit, next(documents), explain, snippet_chars, words))
        results.append(built)
    return results


def search(
    handle: IndexHandle,
    queries: Sequence[str],
    *,
    top_k: int,
    explain: bool,
    snippet_chars: int,
    metrics: Metrics,
    deadline: Deadline | None = None,
    mode: str = "sparse",
) -> SearchOutcome:
    """Answer ``queries`` on one index: encode each, retrieve the top ``top_k``, attach documents.

    Queries that encode to no token (only stop words, unknown words) get no hits. The work runs in
    chunks of :data:`QUERIES_PER_CHUNK` queries and checks ``deadline`` between queries (and between
    hits when explaining).

    Args:
        deadline: the request's time budget and cancellation flag; ``None``: no limit.
        mode: ``"sparse"`` or ``"hybrid"`` (:mod:`sparsearch.hybrid`: fused scores, at most 100 hits;
            ``explain`` then explains the sparse stage: contributions add up to the sparse dot product).

    Raises:
        ApiError: 503 when the engine is unreachable, 501 when explain is asked of a backend without it,
            504 past the deadline, 499 once the deadline was cancelled (the client went away), 409 for
            hybrid mode on an index without dense vectors or on a server without the ``neural`` extra.
    """
    started = time.perf_counter()
    deadline = deadline if deadline is not None else Deadline(math.inf)
    encoder = handle.encoder
    encoded = []
    for text in queries:
        deadline.check()
        encoded.append(encoder.encode_query(text))
    encoded_at = time.perf_counter()
    metrics.stage.labels(handle.name, "encode").observe(encoded_at - started)
    words = _word_tokens(encoder)
    engine_seconds = 0.0
    results: list[list[SearchHit]] = []
    with handle.reading() as index_backend:  # embedded: pinned to one commit for the whole request
        backend = _hybrid(handle, index_backend) if mode == "hybrid" else index_backend
        for first in range(0, len(encoded), QUERIES_PER_CHUNK):
            chunk = encoded[first : first + QUERIES_PER_CHUNK]
            deadline.check()
            engine_started = time.perf_counter()
            hit_lists = _retrieve(handle, backend, chunk, top_k)
            engine_seconds += time.perf_counter() - engine_started
            results += _attach_documents(
                handle,
                backend,
                chunk,
                hit_lists,
                explain=explain,
                snippet_chars=snippet_chars,
                words=words,
                deadline=deadline,
            )
    finished = time.perf_counter()
    metrics.stage.labels(handle.name, "engine").observe(engine_seconds)
    metrics.stage.labels(handle.name, "documents").observe(finished - encoded_at - engine_seconds)
    metrics.queries.labels(handle.name).inc(len(queries))
    return SearchOutcome(hits=results, model=encoder.fingerprint.name, took_ms=(finished - started) * 1000.0)


def _hybrid(handle: IndexHandle, backend: SearchBackend) -> SearchBackend:
    """``backend`` answering in hybrid mode, or a 409 naming what is missing (dense vectors in the
    index, the dense model on the server): the request is valid, the index or server cannot answer it."""
    from sparsearch.errors import MissingExtraError, UsageError
    from sparsearch.hybrid import HybridBackend

    try:
        with handle.engine_errors("read the index's dense model"):
            return HybridBackend(backend)
    except (UsageError, MissingExtraError) as error:
        message = f"index {handle.name!r} cannot search in hybrid mode: {error}"
        raise ApiError(409, "hybrid_unavailable", message) from None


def upsert(handle: IndexHandle, documents: Sequence[Document]) -> int:
    """Encode ``documents`` with the index's encoder (as the indexing job does) and add or replace them;
    an index with dense vectors (built with ``--dense``) gets the documents' window embeddings too.

    Returns:
        The number of documents in the index afterwards.
    """
    from sparsearch.encoders.dense import encode_with_windows

    encoder = handle.encoder
    texts = [document.full_text for document in documents]
    with handle.reading() as current, handle.engine_errors("read the index"):
        stores_dense = bool(getattr(current, "dense_identity", None))
    dense = None
    if stores_dense:
        vectors, dense = encode_with_windows(encoder, texts)
    else:
        vectors = encoder.encode_document(texts)
    with handle.writing() as backend:
        if handle.encoder is not encoder:  # the index was rebuilt with another model meanwhile
            raise ApiError(
                409, "index_changed", f"index {handle.name!r} changed while encoding; send the request again"
            )
        with handle.engine_errors("upsert"):
            extra = {"dense": dense} if dense is not None else {}
            if handle.kind == "embedded":  # checked again under the index's writer lock
                backend.upsert(documents, vectors, fingerprint=encoder.fingerprint, **extra)  # type: ignore[call-arg]
            else:
                backend.upsert(documents, vectors, **extra)  # type: ignore[call-arg]
        with handle.engine_errors("count"):
            return int(backend.count())


def delete(handle: IndexHandle, doc_id: str) -> int:
    """Delete one document by id.

    Returns:
        The number of documents in the index afterwards.

    Raises:
        ApiError: 404 when the index has no document ``doc_id``.
    """
    with handle.writing() as backend:
        with handle.engine_errors("delete"):
            removed = backend.delete([doc_id])
        if not removed:
            raise ApiError(404, "unknown_document", f"index {handle.name!r} has no document with id {doc_id!r}")
        with handle.engine_errors("count"):
            return int(backend.count())
