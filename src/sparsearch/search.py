"""Search an index with text: :class:`Searcher` pairs an index with the encoder it was built with.

This is the one place an index meets its encoder: the CLI's ``search`` and ``eval`` and the REST
service open indexes through it, so every caller encodes queries with the index's own encoder
(or a ``model`` with the same fingerprint) and gets the same hits.

Example::

    import sparsearch

    searcher = sparsearch.build_index(["a hypersonic flow", "heat transfer"], "indexes/tiny", model="bm25")
    with searcher:
        hits = searcher.search("heat", top_k=3)  # [Hit(doc_id='1', score=..., title='', text='heat transfer')]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from sparsearch.backends.base import SearchBackend
from sparsearch.errors import UsageError
from sparsearch.types import Document, EncodedQuery, Encoder, Hit

log = logging.getLogger(__name__)

__all__ = ["Searcher", "build_index"]


class Searcher:
    """One opened index and its encoder: text in, ranked :class:`~sparsearch.types.Hit` lists out.

    Build one with :meth:`open` (an existing index) or :func:`build_index` (a new one). Hits come
    sorted by score descending, then ``doc_id`` ascending, with the stored ``title`` and ``text``.

    Args:
        backend: an opened backend (:func:`~sparsearch.backends.factory.open_backend`).
        encoder: its encoder; ``None`` loads it on first use (the one stored with the index, or
            ``model``), so an engine that is down does not stop the searcher from being created.
        model: a saved model directory or built-in name to use instead of the stored encoder; it must
            have the index's fingerprint.
    """

    def __init__(self, backend: SearchBackend, encoder: Encoder | None = None, *, model: str | Path | None = None):
        self._backend = backend
        self._encoder = encoder
        self._model = model
        self._hybrid: SearchBackend | None = None

    @classmethod
    def open(
        cls,
        index: str | Path,
        backend: str = "embedded",
        url: str | None = None,
        model: str | Path | None = None,
    ) -> Searcher:
        """Open an existing index and load the encoder it was built with.

        Args:
            index: the index directory (embedded) or the alias name (``opensearch``, ``elasticsearch``).
            backend: ``embedded``, ``opensearch`` or ``elasticsearch``.
            url: engine URL (engines only; default ``http://localhost:9200``).
            model: a saved model directory (or built-in name) to encode queries with instead of the
                encoder stored with the index; it must be the same encoder.

        Raises:
            UsageError: unknown backend, ``url`` given for the embedded engine, an unfitted ``model``.
            IndexNotFoundError: no index there.
            EncoderMismatchError: ``model`` is not the encoder the index was built with.
            ModelNotFoundError: an engine index whose encoder the engine does not hold, and no ``model``.
        """
        from sparsearch.backends.factory import open_backend

        opened = open_backend(backend, index=index, url=url)
        searcher = cls(opened, model=model)
        try:
            searcher.encoder  # noqa: B018 - load it now: errors belong to open()
        except BaseException:
            searcher.close()
            raise
        return searcher

    @property
    def backend(self) -> SearchBackend:
        """The opened index (embedded directory or engine alias)."""
        return self._backend

    @property
    def encoder(self) -> Encoder:
        """The encoder the index was built with (loaded on first use when not given)."""
        if self._encoder is None:
            from sparsearch.backends.factory import load_backend_encoder

            self._encoder = load_backend_encoder(self._backend, self._model)
        return self._encoder

    def encode_query(self, query: str) -> EncodedQuery:
        """The query as the index's encoder sees it (empty weights: only stop words or unknown tokens)."""
        return self.encoder.encode_query(query)

    def search(
        self, query: str | EncodedQuery, top_k: int = 10, *, with_documents: bool = True, mode: str = "sparse"
    ) -> list[Hit]:
        """The top ``top_k`` hits for one query (none when the query encodes to no token).

        Args:
            query: text, or a query already encoded by :attr:`encoder`.
            top_k: number of hits (fewer when fewer documents match).
            with_documents: fill each hit's ``title`` and ``text`` from the stored documents.
            mode: ``"sparse"`` (inference-free dot product) or ``"hybrid"``: the sparse top
                candidates fused with the dense model's cosine (:mod:`sparsearch.hybrid`; the index
                must be built with ``--dense``, the ``neural`` extra installed; scores are fused scores).

        Raises:
            UsageError: an unknown ``mode``, or ``"hybrid"`` on an index without dense vectors.
            MissingExtraError: ``"hybrid"`` without the ``neural`` extra.
        """
        return self.search_batch([query], top_k, with_documents=with_documents, mode=mode)[0]

    def search_batch(
        self,
        queries: Sequence[str | EncodedQuery],
        top_k: int = 10,
        *,
        with_documents: bool = True,
        mode: str = "sparse",
    ) -> list[list[Hit]]:
        """One hit list per query, in query order (see :meth:`search`)."""
        backend = self.backend_for(mode)
        encoded = [self.encode_query(q) if isinstance(q, str) else q for q in queries]
        non_empty = [q for q in encoded if not q.is_empty]
        found = iter(backend.search_batch(non_empty, top_k) if non_empty else [])
        hit_lists = [[] if q.is_empty else next(found) for q in encoded]
        if with_documents:
            hit_lists = self._with_documents(hit_lists)
        return hit_lists

    def backend_for(self, mode: str) -> SearchBackend:
        """The backend answering ``mode``: the index itself (``"sparse"``) or its
        :class:`~sparsearch.hybrid.HybridBackend` (``"hybrid"``, created on first use: it checks the
        index's dense vectors and loads the dense model)."""
        from sparsearch.hybrid import SEARCH_MODES, HybridBackend

        if mode == "sparse":
            return self._backend
        if mode != "hybrid":
            raise UsageError(f"unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}")
        if self._hybrid is None:
            self._hybrid = HybridBackend(self._backend)
        return self._hybrid

    def _with_documents(self, hit_lists: list[list[Hit]]) -> list[list[Hit]]:
        ids = [hit.doc_id for hits in hit_lists for hit in hits]
        documents = iter(self._backend.get_documents(ids) if ids else [])
        return [[_filled(hit, next(documents)) for hit in hits] for hits in hit_lists]

    def close(self) -> None:
        """Release the backend (engine connections; the embedded index holds no open handles)."""
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = getattr(self._backend, "path", None) or getattr(self._backend, "alias", "")
        return f"Searcher({self._backend.name} {where!s})"


def _filled(hit: Hit, document: Document | None) -> Hit:
    if document is None:  # deleted between the search and the fetch
        return hit
    return Hit(hit.doc_id, hit.score, title=document.title, text=document.text)


def build_index(
    data: str | Path | Iterable[Document | Mapping[str, object] | str],
    index: str | Path,
    model: str | Path = "default",
    overwrite: bool = False,
    *,
    batch_size: int = 256,
    allow_empty: bool = False,
) -> Searcher:
    """Build an embedded index and return a :class:`Searcher` on it.

    The encoder is fitted on ``data`` when it needs corpus statistics (BM25) and saved inside the
    index, so ``Searcher.open(index)`` later needs nothing else.

    Args:
        data: a BEIR folder, a JSONL corpus, or documents in memory: :class:`~sparsearch.types.Document`
            objects, dicts ``{"_id" or "id", "title" (optional), "text"}`` or plain strings (ids
            ``"0"``, ``"1"``... by position).
        index: the index directory to create.
        model: a built-in model name (``"bm25"``, ``"default"``...) or a saved model directory.
        overwrite: replace an existing index at ``index``.
        batch_size: documents encoded per batch.
        allow_empty: build an index even when ``data`` holds no documents (refused otherwise: an
            empty corpus is nearly always a wrong path, and with ``overwrite`` it would empty the index).

    Raises:
        CorpusFormatError: ``data`` is missing, malformed, or holds no documents and ``allow_empty`` is
            false (raised before anything is written: an existing index at ``index`` is left as it was).
        IndexExistsError: ``index`` exists and ``overwrite`` is false.
        ModelNotFoundError: ``model`` names no built-in model or saved directory.
    """
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_embedded import build_embedded_index

    encoder = load_encoder(model)
    built, summary = build_embedded_index(
        data, index, encoder, batch_size=batch_size, overwrite=overwrite, allow_empty=allow_empty
    )
    log.info("indexed %d documents into %s in %.1f s", summary.documents, summary.path, summary.seconds)
    return Searcher(built, encoder)
