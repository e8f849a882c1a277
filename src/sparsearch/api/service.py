"""What the routes do, without HTTP: encode, search, fetch documents, explain, snippet, highlight.

Everything here is synchronous and CPU-bound; the routes are plain ``def`` functions, so FastAPI runs
them in its worker threads and the event loop stays free.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sparsearch.api.errors import ApiError
from sparsearch.api.metrics import Metrics
from sparsearch.api.registry import IndexHandle
from sparsearch.api.schemas import Explanation, Highlight, MatchedToken, SearchHit
from sparsearch.types import Document, EncodedQuery, Encoder, Hit

_WORD = re.compile(r"\w+")
_WORD_CACHE_SIZE = 65_536


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


def search(
    handle: IndexHandle,
    queries: Sequence[str],
    *,
    top_k: int,
    explain: bool,
    snippet_chars: int,
    metrics: Metrics,
) -> SearchOutcome:
    """Answer ``queries`` on one index: encode each, retrieve the top ``top_k``, attach documents.

    Queries that encode to no token (only stop words, unknown words) get no hits.

    Raises:
        ApiError: 503 when the engine is unreachable, 501 when explain is asked of a backend without it.
    """
    started = time.perf_counter()
    encoder = handle.encoder
    encoded = [encoder.encode_query(text) for text in queries]
    encoded_at = time.perf_counter()
    metrics.stage.labels(handle.name, "encode").observe(encoded_at - started)
    words = _word_tokens(encoder)
    # The embedded engine removes an old generation's files when another process commits an update;
    # a read that raced with that sees FileNotFoundError and is retried once on the new generation.
    for attempt in (1, 2):
        try:
            with handle.reading() as backend:
                engine_started = time.perf_counter()
                non_empty = [q for q in encoded if not q.is_empty]
                with handle.engine_errors("search"):
                    found = iter(backend.search_batch(non_empty, top_k) if non_empty else [])
                hit_lists = [[] if q.is_empty else next(found) for q in encoded]
                engine_done = time.perf_counter()
                all_ids = [hit.doc_id for hits in hit_lists for hit in hits]
                with handle.engine_errors("document fetch"):
                    documents = iter(backend.get_documents(all_ids) if all_ids else [])
                results = [
                    [_build_hit(backend, q, hit, next(documents), explain, snippet_chars, words) for hit in hits]
                    for q, hits in zip(encoded, hit_lists, strict=True)
                ]
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    finished = time.perf_counter()
    metrics.stage.labels(handle.name, "engine").observe(engine_done - engine_started)
    metrics.stage.labels(handle.name, "documents").observe(finished - engine_done)
    metrics.queries.labels(handle.name).inc(len(queries))
    return SearchOutcome(hits=results, model=encoder.fingerprint.name, took_ms=(finished - started) * 1000.0)


def upsert(handle: IndexHandle, documents: Sequence[Document]) -> int:
    """Encode ``documents`` with the index's encoder (as the indexing job does) and add or replace them.

    Returns:
        The number of documents in the index afterwards.
    """
    encoder = handle.encoder
    vectors = encoder.encode_document([document.full_text for document in documents])
    with handle.writing() as backend:
        if handle.encoder is not encoder:  # the index was rebuilt with another model meanwhile
            raise ApiError(
                409, "index_changed", f"index {handle.name!r} changed while encoding; send the request again"
            )
        with handle.engine_errors("upsert"):
            backend.upsert(documents, vectors)
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
