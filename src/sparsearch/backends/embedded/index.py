"""The embedded engine: an inverted index in a directory, searched in-process.

Directory layout (every array is a ``.npy`` file that opens with ``mmap``; no pickle)::

    INDEX/
      manifest.json          format version, encoder fingerprint, counts, data folder
      encoder/               the encoder that built the index (config + IDF table)
      gen-000001/            one immutable generation of the data:
        vocab.json           term_id -> token
        indptr.npy           uint32 (n_terms + 1,) posting offsets (int64 past 2^32 - 1 postings)
        doc_idx.npy          int32 (nnz,)   postings, term-major, doc-ascending per term
        weights.npy          float32 (nnz,)
        doc_ids.json         doc_idx -> external doc_id
        doc_id_rank.npy      int32 (n_docs,) rank of each doc_id in sorted order (tie-breaks)
        docs.jsonl, docs_offsets.npy   stored title and text

The three posting arrays are scipy's CSC arrays of the (n_docs x n_terms) matrix at the same widths
(scipy's int32 ``indptr`` and ``indices`` until 2^31 postings), so the searchable postings are no
larger than the plain CSC arrays. The per-term bounds MaxScore needs (``max_weight``) are not
stored: they are computed in memory, each the first time a query uses its term. Format 1 (int64
``indptr`` plus a stored ``max_weight.npy``) is still read.

**Builds** go to a temporary sibling directory that is renamed into place; an existing index is
replaced only with ``overwrite=True``.

**Updates** (:meth:`EmbeddedIndex.upsert`, :meth:`EmbeddedIndex.delete`) use rebuild-on-merge:
the surviving postings and the new documents are merged into a new generation folder, the manifest
is swapped atomically (``os.replace``) and the old generation is removed. Cost is linear in the index
size per call, fine for online batches of documents; bulk loads should build once. Readers that
opened the old generation keep a consistent view. Writers are serialised with a lock file.

**Search** is exact: compiled kernels (:mod:`sparsearch.backends.embedded.kernels`) add query weight x
posting weight into per-thread accumulators and keep the top-k in a bounded heap. For small ``k``
(the usual case) each query goes to exhaustive scoring into a float32 accumulator with exact
rescoring of the few documents that can make the top k, or, when the query's frequent tokens weigh
little (BM25-like queries), to MaxScore pruning over document windows, which skips the postings that
cannot change the top k using ``max_weight``; a cheap estimate of what MaxScore would read picks
between them. For ``k`` close to the corpus size the term-at-a-time kernel runs. Order is score
descending, then ``doc_id`` ascending. Scores are summed in float64 over float32 posting weights, in
the query's term order, or in order of increasing bound under MaxScore (last-bit differences).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from sparsearch import __version__
from sparsearch._files import directory_bytes, write_json_atomic
from sparsearch.backends.embedded.docstore import DocStore, DocStoreWriter
from sparsearch.backends.embedded.kernels import search_queries
from sparsearch.backends.embedded.postings import (
    InvalidWeightError,
    Postings,
    PostingsBuilder,
    offsets_dtype,
    unknown_max_weights,
)
from sparsearch.errors import IndexExistsError, IndexFormatError, IndexNotFoundError, UsageError
from sparsearch.types import Document, EncodedQuery, EncoderFingerprint, Hit, SparseVector

FORMAT_VERSION = 2
"""Written by this version: narrow ``indptr``, no stored ``max_weight`` (format 1 had both, int64)."""
READABLE_FORMATS = (1, 2)
MANIFEST_FILE = "manifest.json"
ENCODER_DIR = "encoder"
LOCK_FILE = ".lock"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_generation(directory: Path, postings: Postings, doc_ids: Sequence[str]) -> None:
    """Write the arrays of one generation (the doc store is written by the caller)."""
    (directory / "vocab.json").write_text(json.dumps(postings.vocab, ensure_ascii=False), encoding="utf-8")
    np.save(directory / "indptr.npy", postings.indptr.astype(offsets_dtype(postings.nnz), copy=False))
    np.save(directory / "doc_idx.npy", postings.doc_idx.astype(np.int32, copy=False))
    np.save(directory / "weights.npy", postings.weights.astype(np.float32, copy=False))
    (directory / "doc_ids.json").write_text(json.dumps(list(doc_ids), ensure_ascii=False), encoding="utf-8")
    rank = np.empty(len(doc_ids), dtype=np.int32)
    rank[np.argsort(np.asarray(doc_ids, dtype=object), kind="stable")] = np.arange(len(doc_ids), dtype=np.int32)
    np.save(directory / "doc_id_rank.npy", rank)


def _manifest_signature(path: Path) -> tuple[int, int, int]:
    """The manifest file's identity (inode, mtime, size): every commit replaces the file atomically."""
    stat = os.stat(path / MANIFEST_FILE)
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _missing_index_message(path: Path) -> str:
    return f"no index at {path} (missing {MANIFEST_FILE}); build one with: sparsearch index --data PATH --index {path}"


def check_index_target(path: str | Path, *, overwrite: bool) -> None:
    """Raise :class:`IndexExistsError` if ``path`` exists and may not be replaced."""
    if Path(path).exists() and not overwrite:
        raise IndexExistsError(f"{path} already exists; pass --overwrite to replace it")


def _manifest(fingerprint: EncoderFingerprint, postings: Postings, generation: int, created_at: str) -> dict:
    lengths = postings.doc_lengths()
    return {
        "format_version": FORMAT_VERSION,
        "sparsearch_version": __version__,
        "created_at": created_at,
        "updated_at": _now(),
        "generation": generation,
        "data_dir": f"gen-{generation:06d}",
        "encoder": fingerprint.to_dict(),
        "n_docs": postings.n_docs,
        "n_terms": len(postings.vocab),
        "nnz": postings.nnz,
        "avg_terms_per_doc": float(lengths.mean()) if postings.n_docs else 0.0,
        "empty_documents": int((lengths == 0).sum()),
        "dtype": {"indptr": offsets_dtype(postings.nnz).name, "doc_idx": "int32", "weights": "float32"},
        "quantization": "none",
    }


@contextlib.contextmanager
def _naming_bad_weights(documents: Sequence[Document], first_row: int) -> Iterator[None]:
    """Turn the postings builder's weight check into an error that names the document."""
    try:
        yield
    except InvalidWeightError as error:
        doc_id = documents[error.doc_row - first_row].doc_id
        raise UsageError(
            f"document {doc_id!r}: token {error.token!r} has weight {error.weight!r}; "
            "document weights must be finite and > 0"
        ) from None


class IndexWriter:
    """Builds a new embedded index from a stream of ``(document, vector)`` batches.

    Use as a context manager; the index appears at ``path`` only when the block ends without error::

        with IndexWriter(path, encoder.fingerprint) as writer:
            encoder.save(writer.encoder_dir)
            writer.add(documents, encoder.encode_document([d.full_text for d in documents]))
        index = writer.index

    Args:
        path: target directory.
        fingerprint: the encoder's identity, stored in the manifest.
        overwrite: replace an existing index at ``path`` (else :class:`IndexExistsError`).
    """

    def __init__(self, path: str | Path, fingerprint: EncoderFingerprint, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.overwrite = overwrite
        check_index_target(self.path, overwrite=overwrite)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}"
        self.index: EmbeddedIndex | None = None
        self._builder = PostingsBuilder()
        self._doc_ids: list[str] = []
        self._seen: set[str] = set()
        self._store: DocStoreWriter | None = None

    @property
    def encoder_dir(self) -> Path:
        return self.tmp / ENCODER_DIR

    def __enter__(self) -> IndexWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        (self.tmp / "gen-000001").mkdir(parents=True)
        self._store = DocStoreWriter(self.tmp / "gen-000001")
        return self

    def add(self, documents: Sequence[Document], vectors: Sequence[Mapping[str, float]]) -> None:
        """Append documents and their vectors (same length, same order)."""
        if len(documents) != len(vectors):
            raise ValueError(f"{len(documents)} documents but {len(vectors)} vectors")
        with _naming_bad_weights(documents, self._builder.n_docs):
            self._builder.add_documents(vectors)
        self._add_documents(documents)

    def add_csr(
        self,
        documents: Sequence[Document],
        indptr: np.ndarray,
        term_ids: np.ndarray,
        weights: np.ndarray,
        vocabulary: Sequence[str],
    ) -> None:
        """Append documents whose vectors come as CSR arrays (see :meth:`PostingsBuilder.add_csr`);
        the fast path for pre-encoded or generated vectors (no per-token Python objects)."""
        if len(documents) != len(indptr) - 1:
            raise ValueError(f"{len(documents)} documents but {len(indptr) - 1} rows")
        with _naming_bad_weights(documents, self._builder.n_docs):
            self._builder.add_csr(indptr, term_ids, weights, vocabulary)
        self._add_documents(documents)

    def _add_documents(self, documents: Sequence[Document]) -> None:
        assert self._store is not None, "use IndexWriter as a context manager"
        for document in documents:
            if document.doc_id in self._seen:
                raise UsageError(f"duplicate doc_id {document.doc_id!r}: ids must be unique within an index")
            self._seen.add(document.doc_id)
            self._doc_ids.append(document.doc_id)
            self._store.add(document.title, document.text)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._store is not None
        self._store.close()
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            postings = self._builder.build()
            _write_generation(self.tmp / "gen-000001", postings, self._doc_ids)
            write_json_atomic(self.tmp / MANIFEST_FILE, _manifest(self.fingerprint, postings, 1, _now()))
            check_index_target(self.path, overwrite=self.overwrite)  # somebody may have created it meanwhile
            old = self.path.parent / f".{self.path.name}.old-{os.getpid()}"
            if self.path.exists():
                os.rename(self.path, old)
            os.rename(self.tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.index = EmbeddedIndex.open(self.path)


class EmbeddedIndex:
    """An opened embedded index (see the module docstring for the layout). Implements ``SearchBackend``."""

    name = "embedded"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._scratch = threading.local()
        self._load()

    @classmethod
    def open(cls, path: str | Path) -> EmbeddedIndex:
        """Open the index at ``path`` (arrays are memory-mapped)."""
        return cls(Path(path))

    def _load(self) -> None:
        manifest_file = self.path / MANIFEST_FILE
        if not manifest_file.is_file():
            raise IndexNotFoundError(_missing_index_message(self.path))
        try:
            signature = _manifest_signature(self.path)  # before reading: a commit meanwhile shows as a change
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except FileNotFoundError as error:  # removed between the check and the read
            raise IndexNotFoundError(_missing_index_message(self.path)) from error
        except ValueError as error:
            raise IndexFormatError(f"{manifest_file}: unreadable manifest ({error})") from error
        if manifest.get("format_version") not in READABLE_FORMATS:
            raise IndexFormatError(
                f"{self.path} has index format {manifest.get('format_version')!r}; this sparsearch reads "
                f"formats {', '.join(map(str, READABLE_FORMATS))}: rebuild the index with sparsearch index --overwrite"
            )
        data = self.path / manifest["data_dir"]
        try:
            vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))
            indptr = np.load(data / "indptr.npy")
            if indptr.dtype.kind not in "iu" or indptr.shape != (len(vocab) + 1,):
                raise ValueError(f"indptr.npy holds {indptr.dtype} {indptr.shape}, not integer offsets per term")
            bounds = data / "max_weight.npy"  # format 1 stored the bounds
            self.postings = Postings(
                vocab=vocab,
                indptr=indptr.astype(np.int64),  # in memory 8 bytes per term: one kernel signature
                doc_idx=np.load(data / "doc_idx.npy", mmap_mode="r"),
                weights=np.load(data / "weights.npy", mmap_mode="r"),
                max_weight=np.load(bounds) if bounds.is_file() else unknown_max_weights(len(vocab)),  # writable
                n_docs=int(manifest["n_docs"]),
            )
            self.doc_ids: list[str] = json.loads((data / "doc_ids.json").read_text(encoding="utf-8"))
            self.doc_id_rank = np.load(data / "doc_id_rank.npy")
            self.store = DocStore(data)
        except (OSError, ValueError, KeyError) as error:
            raise IndexFormatError(f"{data}: damaged index data ({error}); rebuild the index") from error
        self.manifest = manifest
        self._signature = signature
        self.term_index = {token: i for i, token in enumerate(vocab)}
        self.doc_index = {doc_id: i for i, doc_id in enumerate(self.doc_ids)}
        self._fingerprint = EncoderFingerprint.from_dict(manifest["encoder"])

    # -- following other writers -------------------------------------------------------------------
    def has_changed(self) -> bool:
        """Whether the index on disk is no longer the generation this object loaded (another process
        committed an update, or rebuilt the index with ``sparsearch index --overwrite``).

        Cheap (one ``stat`` of the manifest, compared by inode, mtime and size); this object's own
        updates reload it and do not count as changes.

        Raises:
            IndexNotFoundError: the index is gone (its manifest is missing).
            OSError: the index directory cannot be read.
        """
        try:
            return _manifest_signature(self.path) != self._signature
        except FileNotFoundError as error:
            raise IndexNotFoundError(_missing_index_message(self.path)) from error

    def reopen(self) -> EmbeddedIndex:
        """A new :class:`EmbeddedIndex` on the current generation; this one is left as it is (threads
        still reading it finish on the files they mapped, until the next commit removes them)."""
        return type(self).open(self.path)

    # -- metadata ----------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> EncoderFingerprint:
        return self._fingerprint

    @property
    def encoder_dir(self) -> Path:
        return self.path / ENCODER_DIR

    def count(self) -> int:
        return self.postings.n_docs

    def health(self) -> dict[str, object]:
        return {
            "engine": "embedded",
            "path": str(self.path),
            "documents": self.count(),
            "generation": self.manifest["generation"],
        }

    def stats(self) -> dict[str, object]:
        """Manifest counts plus bytes on disk."""
        return {**self.manifest, "bytes": directory_bytes(self.path)}

    # -- search ------------------------------------------------------------------------------------
    def _query_terms(self, query: EncodedQuery) -> tuple[np.ndarray, np.ndarray]:
        self._fingerprint.check_compatible(query.encoder, where=f"index {self.path}")
        term_ids, weights = [], []
        for token, weight in query.weights.items():
            term_id = self.term_index.get(token)
            if term_id is not None and weight > 0:
                term_ids.append(term_id)
                weights.append(weight)
        return np.asarray(term_ids, dtype=np.int64), np.asarray(weights, dtype=np.float64)

    def _scratch_buffers(self, n_docs: int) -> SimpleNamespace:
        """Per-thread scratch arrays of shape (n_docs,): ``scores`` float64 and ``acc`` float32 (both all
        zeros, and left so by the kernels), ``touched`` int32 and ``values`` float32."""
        scratch = self._scratch
        if getattr(scratch, "n_docs", -1) != n_docs:
            scratch.buffers = SimpleNamespace(
                scores=np.zeros(n_docs, dtype=np.float64),
                acc=np.zeros(n_docs, dtype=np.float32),
                touched=np.empty(n_docs, dtype=np.int32),
                values=np.empty(n_docs, dtype=np.float32),
            )
            scratch.n_docs = n_docs
        return scratch.buffers

    def search(self, query: EncodedQuery, top_k: int = 10) -> list[Hit]:
        """Exact top-``top_k`` by dot product; documents that share no token are never returned.

        The kernel is chosen per query (see :func:`sparsearch.backends.embedded.kernels.search_one`); all give the
        same hits. One query is searched as a batch of one, so single and batch searches share one
        compiled entry point (:func:`sparsearch.backends.embedded.kernels.search_queries`) and one warm-up."""
        return self._search_chunk([query], top_k)[0]

    def warm_up(self) -> None:
        """Pay searching's one-time cost now rather than in the first query: compile the search kernel
        for this index's array types, or load it from numba's disk cache (under a second once cached;
        tens of seconds on a new install). Every search then runs the compiled code, whichever
        of its kernels (term-at-a-time, dense, MaxScore) a query picks. An empty index has nothing to
        compile: its searches never reach the kernel."""
        vocab = self.postings.vocab
        if vocab:
            self.search(EncodedQuery({vocab[0]: 1.0}, self._fingerprint), 1)

    def search_batch(self, queries: Sequence[EncodedQuery], top_k: int = 10, threads: int = 1) -> list[list[Hit]]:
        """One hit list per query, in order; ``threads > 1`` splits the batch into that many contiguous
        chunks searched in parallel (one compiled call per chunk, which releases the GIL)."""
        if threads <= 1 or len(queries) < 2:
            return self._search_chunk(queries, top_k)
        bounds = np.linspace(0, len(queries), min(threads, len(queries)) + 1).astype(int)
        chunks = [queries[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            return [hits for chunk in pool.map(lambda c: self._search_chunk(c, top_k), chunks) for hits in chunk]

    def _search_chunk(self, queries: Sequence[EncodedQuery], top_k: int) -> list[list[Hit]]:
        """Hits of ``queries`` searched on the calling thread, with its scratch buffers."""
        if top_k < 1:
            raise UsageError(f"top_k must be at least 1 (got {top_k})")
        rows = [self._query_terms(query) for query in queries]
        lengths = [len(terms) for terms, _ in rows]
        if not any(lengths):
            return [[] for _ in queries]
        query_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=query_indptr[1:])
        terms, weights = np.concatenate([t for t, _ in rows]), np.concatenate([w for _, w in rows])
        p, doc_ids, doc_rank = self.postings, self.doc_ids, self.doc_id_rank  # one consistent generation
        buf = self._scratch_buffers(p.n_docs)
        docs, scores, counts, _ = search_queries(
            np.asarray(p.indptr), np.asarray(p.doc_idx), np.asarray(p.weights), np.asarray(p.max_weight),
            query_indptr, terms, weights, doc_rank, top_k, buf.scores, buf.touched, buf.acc, buf.values,
        )  # fmt: skip
        return [
            [Hit(doc_ids[d], s) for d, s in zip(row_docs[:n], row_scores[:n], strict=True)]
            for row_docs, row_scores, n in zip(docs.tolist(), scores.tolist(), counts.tolist(), strict=True)
        ]

    def postings_touched(self, query: EncodedQuery) -> int:
        """Number of postings the query reads (its cost on this index)."""
        term_ids, _ = self._query_terms(query)
        p = self.postings
        return int((p.indptr[term_ids + 1] - p.indptr[term_ids]).sum())

    def explain(self, query: EncodedQuery, doc_id: str) -> dict[str, float]:
        """Per matched query token, its contribution ``q_weight x d_weight`` to ``doc_id``'s score."""
        term_ids, query_weights = self._query_terms(query)
        doc = self.doc_index.get(doc_id)
        if doc is None:
            return {}
        p = self.postings
        contributions = {}
        for term_id, q in zip(term_ids, query_weights, strict=True):
            start, end = int(p.indptr[term_id]), int(p.indptr[term_id + 1])
            pos = start + int(np.searchsorted(p.doc_idx[start:end], doc))
            if pos < end and p.doc_idx[pos] == doc:
                contributions[p.vocab[term_id]] = float(q * p.weights[pos])
        return contributions

    def document_vector(self, doc_id: str) -> SparseVector:
        """The stored ``token -> weight`` map of one document (a scan of all postings: for tests and tools)."""
        doc = self.doc_index[doc_id]
        term_ids, docs, weights = self.postings.to_coo()
        mask = docs == doc
        return {self.postings.vocab[t]: float(w) for t, w in zip(term_ids[mask], weights[mask], strict=True)}

    # -- documents ---------------------------------------------------------------------------------
    def get_documents(self, doc_ids: Sequence[str]) -> list[Document | None]:
        documents: list[Document | None] = []
        for doc_id in doc_ids:
            doc = self.doc_index.get(doc_id)
            if doc is None:
                documents.append(None)
            else:
                title, text = self.store.get(doc)
                documents.append(Document(doc_id=doc_id, title=title, text=text))
        return documents

    # -- updates (rebuild-on-merge) ----------------------------------------------------------------
    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        with (self.path / LOCK_FILE).open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._load()  # another writer may have committed since we opened
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def upsert(self, documents: Sequence[Document], vectors: Sequence[SparseVector]) -> None:
        """Add documents; a document whose ``doc_id`` exists replaces the old one."""
        if len(documents) != len(vectors):
            raise ValueError(f"{len(documents)} documents but {len(vectors)} vectors")
        new_ids = [d.doc_id for d in documents]
        if len(set(new_ids)) != len(new_ids):
            raise UsageError("duplicate doc_id within one upsert batch")
        with self._write_lock():
            self._commit(set(new_ids), documents, vectors)

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents by id; unknown ids are ignored. Returns the number deleted."""
        with self._write_lock():
            present = {d for d in doc_ids if d in self.doc_index}
            if present:
                self._commit(present, [], [])
            return len(present)

    def _commit(self, removed: set[str], documents: Sequence[Document], vectors: Sequence[SparseVector]) -> None:
        old = self.postings
        keep = np.ones(old.n_docs, dtype=bool)
        for doc_id in removed:
            doc = self.doc_index.get(doc_id)
            if doc is not None:
                keep[doc] = False
        renumber = np.cumsum(keep, dtype=np.int64) - 1  # old doc_idx -> new doc_idx
        term_ids, docs, weights = old.to_coo()
        surviving = keep[docs]
        builder = PostingsBuilder(old.vocab)
        builder.add_coo(term_ids[surviving], renumber[docs[surviving]], weights[surviving], int(keep.sum()))
        with _naming_bad_weights(documents, builder.n_docs):
            builder.add_documents(vectors)
        postings = builder.build()
        doc_ids = [d for d, k in zip(self.doc_ids, keep, strict=True) if k] + [d.doc_id for d in documents]

        generation = int(self.manifest["generation"]) + 1
        data = self.path / f"gen-{generation:06d}"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        store = DocStoreWriter(data)
        for row, kept in zip(self.store.iter_rows(), keep, strict=True):
            if kept:
                store.add(*row)
        for document in documents:
            store.add(document.title, document.text)
        store.close()
        _write_generation(data, postings, doc_ids)
        old_data = self.path / self.manifest["data_dir"]
        write_json_atomic(
            self.path / MANIFEST_FILE,
            _manifest(self._fingerprint, postings, generation, self.manifest["created_at"]),
        )
        shutil.rmtree(old_data, ignore_errors=True)
        self._load()
