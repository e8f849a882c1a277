"""The indexing job: read a corpus, fit the encoder's corpus statistics if it needs them, encode in
batches and write an embedded index."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sparsearch._files import directory_bytes
from sparsearch.backends.embedded.index import EmbeddedIndex, check_index_target
from sparsearch.backends.embedded.writer import IndexWriter
from sparsearch.encoders.dense import embed_documents, encode_with_windows
from sparsearch.encoders.sparse_batch import SparseBatch
from sparsearch.jobs.encode import check_neural
from sparsearch.jobs.jsonvector import JsonVectorCollection
from sparsearch.jobs.source import Corpus, Source, check_not_empty, open_source
from sparsearch.types import BatchEncoder, Document, Encoder, ProgressCallback, iter_batches


@dataclass
class IndexSummary:
    """What an indexing job did, for the CLI's closing summary and for logs."""

    path: str
    documents: int
    postings: int
    avg_terms_per_doc: float
    bytes: int
    seconds: float
    empty_documents: list[str] = field(default_factory=list)


def fit_if_needed(encoder: Encoder, corpus: Corpus | Source) -> None:
    """Fit corpus statistics (BM25's df/avgdl, an IDF table) when the encoder has none yet."""
    if not encoder.is_fitted:
        encoder.fit(d.full_text for d in open_source(corpus).iter_documents())


def check_jsonvector_encoder(collection: JsonVectorCollection, encoder: Encoder) -> None:
    """An export's vectors are searched with the encoder that made them; another tool's are searched with
    ``encoder`` as given (fitted on the collection's text when it needs corpus statistics).

    Raises:
        EncoderMismatchError: ``encoder`` is not the encoder recorded in the export's sidecar.
    """
    fit_if_needed(encoder, collection.iter_documents())  # a no-op for the encoder saved with an export
    if collection.info is not None:
        collection.info.encoder.check_compatible(encoder.fingerprint, where=f"the export {collection.folder}")


def iter_sparse_batches(
    source: Source, encoder: Encoder, batch_size: int
) -> Iterator[tuple[list[Document], SparseBatch, list[str]]]:
    """``(documents, CSR rows, vocabulary)`` batches for the indexer, in corpus order.

    From an encode output the stored vectors are read (no model call); from a corpus the documents
    are encoded with ``encoder.encode_document_batch`` (a neural encoder).
    """
    if source.encoded is not None:
        for documents, rows in source.encoded.iter_batches(batch_size):
            yield documents, rows, source.encoded.vocabulary
        return
    neural = check_neural(encoder)
    vocabulary = neural.vocabulary.vocabulary
    for documents in iter_batches(source.iter_documents(), batch_size):
        yield documents, neural.encode_document_batch([d.full_text for d in documents]), vocabulary


def build_embedded_index(
    corpus: Corpus | Source,
    index_path: str | Path,
    encoder: Encoder,
    *,
    batch_size: int = 256,
    overwrite: bool = False,
    allow_empty: bool = False,
    on_progress: ProgressCallback | None = None,
    dense: bool = False,
) -> tuple[EmbeddedIndex, IndexSummary]:
    """Encode every document of ``corpus`` and write an embedded index at ``index_path``.

    The encoder is saved inside the index, so searching needs only the index directory. Documents
    with no text are indexed (with no terms) and listed in the summary. ``corpus`` may also be an
    iterable of Documents, dicts or strings (read once into memory: the encoder may need a fitting pass).

    A corpus without documents is refused unless ``allow_empty`` is true (an empty index is nearly
    always a wrong path, and with ``overwrite`` it would replace the index at ``index_path``).

    With ``dense``, every document's dense-model window embeddings are stored too (float16, 768
    bytes a window of 160 words) for hybrid search (:mod:`sparsearch.hybrid`); an encoder that
    computes them anyway (the shipped default model) hands them over, else the dense model runs once more.

    Raises:
        CorpusFormatError: the corpus is missing, malformed (file and line in the message) or, without
            ``allow_empty``, empty; an existing index at ``index_path`` is then left untouched.
        IndexExistsError: ``index_path`` exists and ``overwrite`` is false (checked before any work).
        MissingExtraError: ``dense`` without the ``neural`` extra.
    """
    started = time.perf_counter()
    check_index_target(index_path, overwrite=overwrite)  # fail before the (long) fitting pass
    source = open_source(corpus)  # resolved once: which input it is, and its files
    check_not_empty(source, allow_empty=allow_empty)  # before fitting, and before anything is written
    encoded = source.encoded is not None  # vectors written by `sparsearch encode`: read, never re-encoded
    identity = None
    if dense:
        from sparsearch.encoders.dense import dense_model_identity

        identity = dense_model_identity()  # fails now, not after the fitting pass, without the extra
    if source.encoded is not None:
        source.encoded.check_encoder(encoder)
    elif source.jsonvector is not None:
        check_jsonvector_encoder(source.jsonvector, encoder)
    else:
        fit_if_needed(encoder, source)
    writer = IndexWriter(index_path, encoder.fingerprint, overwrite=overwrite, dense=identity)
    empty: list[str] = []
    with writer:
        encoder.save(writer.encoder_dir)
        if source.jsonvector is not None:  # integer vectors made elsewhere (sparsearch export, pyserini)
            for batch_pairs in iter_batches(iter(source.jsonvector), batch_size):
                batch, vectors = [d for d, _ in batch_pairs], [v for _, v in batch_pairs]
                empty.extend(d.doc_id for d, v in zip(batch, vectors, strict=True) if not v)
                writer.add(batch, vectors)
                if on_progress is not None:
                    on_progress(len(batch))
        elif encoded or isinstance(encoder, BatchEncoder):  # CSR rows: no per-token Python objects
            for batch, rows, vocabulary in iter_sparse_batches(source, encoder, batch_size):
                empty.extend(d.doc_id for d, n in zip(batch, rows.lengths(), strict=True) if n == 0)
                windows = embed_documents([d.full_text for d in batch]) if dense else None
                writer.add_csr(batch, rows.indptr, rows.term_ids, rows.weights, vocabulary, dense=windows)
                if on_progress is not None:
                    on_progress(len(batch))
        else:
            for batch in iter_batches(source.iter_documents(), batch_size):
                texts = [d.full_text for d in batch]
                if dense:
                    vectors, windows = encode_with_windows(encoder, texts)
                else:
                    vectors, windows = encoder.encode_document(texts), None
                empty.extend(d.doc_id for d, v in zip(batch, vectors, strict=True) if not v)
                writer.add(batch, vectors, dense=windows)
                if on_progress is not None:
                    on_progress(len(batch))
    index = writer.index
    assert index is not None
    manifest = index.manifest
    summary = IndexSummary(
        path=str(index.path),
        documents=manifest["n_docs"],
        postings=manifest["nnz"],
        avg_terms_per_doc=manifest["avg_terms_per_doc"],
        bytes=directory_bytes(index.path),
        seconds=time.perf_counter() - started,
        empty_documents=empty,
    )
    return index, summary
