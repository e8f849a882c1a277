"""The batch encoding job (``sparsearch encode``): corpus -> sparse vectors on disk, resumable and shardable.

Output directory layout (no pickle; arrays are ``.npy`` files that open with mmap)::

    OUT/
      encode_manifest.json       format, corpus identity (size, sha256), model fingerprint, encoding
                                 and pruning options, number of shards, chunk size, dtypes
      vocab.json                 term_id -> token (the model's vocabulary)
      encoder/                   the encoder, saved as inside an index (config, tokenizer, IDF table, weights)
      shard-00000-of-00004/
        progress.json            committed chunks, documents done, complete flag
        chunk-000000/            one committed chunk of --chunk-size documents:
          indptr.npy             int64 (docs + 1,)
          term_ids.npy           int32 (nnz,)  ascending within a document
          weights.npy            float32 (nnz,)  all > 0
          docs.jsonl             {"_id", "title", "text"} per document, in order

**Sharding.** With ``--shard I/N`` a job encodes the documents whose position in the corpus file
(0-based) is congruent to I modulo N, so N processes or machines split a corpus without counting
it first. They may share ``OUT`` (a shared filesystem) or write separate directories that are
merged by copying the ``shard-*`` folders into one (the manifests must agree). Every shard fits
the same IDF table on the whole corpus (deterministic), so all shards carry the same encoder.

**Resuming.** Each chunk is written to a temporary folder, renamed into place, and only then
recorded in ``progress.json`` (replaced atomically). A crash or Ctrl-C loses at most the chunk in
progress; re-running the same command removes any uncommitted folder, skips the committed
documents and continues, so no document is duplicated or dropped. A re-run with another model,
corpus, options, shard count or chunk size is refused (use a new ``--output`` or ``--overwrite``).

**Loading.** ``sparsearch index --data OUT`` reads the vectors without re-encoding
(:class:`EncodedOutput`), in corpus order, and refuses incomplete or missing shards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sparsearch import __version__
from sparsearch._files import write_json_atomic
from sparsearch.corpus import iter_corpus, resolve_corpus_file
from sparsearch.encoders.sparse_batch import SparseBatch
from sparsearch.errors import CorpusFormatError, EncoderMismatchError, IndexFormatError, UsageError
from sparsearch.types import BatchEncoder, Document, Encoder, EncoderFingerprint, ProgressCallback

log = logging.getLogger(__name__)

FORMAT = "sparsearch-encoded"
FORMAT_VERSION = 1
MANIFEST_FILE = "encode_manifest.json"
VOCAB_FILE = "vocab.json"
ENCODER_DIR = "encoder"
PROGRESS_FILE = "progress.json"


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; ``None`` -> ``(0, 1)``.

    Raises:
        UsageError: malformed or out of range.
    """
    if spec is None:
        return 0, 1
    try:
        index_text, count_text = spec.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UsageError(f"--shard {spec!r}: expected I/N, e.g. 0/4 for the first of four shards") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {spec!r}: I must be in 0..N-1 and N >= 1")
    return index, count


def shard_dir_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexFormatError(f"{path}: unreadable ({error}); the encode output is damaged") from error


def corpus_identity(path: str | Path) -> dict[str, object]:
    """Size and sha256 of the corpus file behind ``path`` (what a resumed job must find unchanged)."""
    corpus_file = resolve_corpus_file(Path(path))
    digest = hashlib.sha256()
    with corpus_file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"file": corpus_file.name, "bytes": corpus_file.stat().st_size, "sha256": digest.hexdigest()}


@dataclass
class EncodeSummary:
    """What one ``sparsearch encode`` run did (for the CLI's closing table)."""

    output: str
    shard: str
    documents: int
    encoded_now: int
    resumed_from: int
    postings: int
    avg_terms_per_doc: float
    seconds: float
    complete: bool
    empty_documents: list[str] = field(default_factory=list)


@dataclass
class _Progress:
    chunks: list[dict[str, int | str]]
    complete: bool

    @property
    def docs(self) -> int:
        return sum(int(c["docs"]) for c in self.chunks)

    @property
    def nnz(self) -> int:
        return sum(int(c["nnz"]) for c in self.chunks)

    def to_dict(self, shard: tuple[int, int]) -> dict[str, object]:
        return {
            "shard": shard[0],
            "num_shards": shard[1],
            "docs": self.docs,
            "nnz": self.nnz,
            "complete": self.complete,
            "chunks": self.chunks,
        }


def _load_progress(shard_dir: Path) -> _Progress:
    path = shard_dir / PROGRESS_FILE
    if not path.is_file():
        return _Progress(chunks=[], complete=False)
    data = _read_json(path)
    return _Progress(chunks=list(data.get("chunks", [])), complete=bool(data.get("complete", False)))


def _clean_uncommitted(shard_dir: Path, progress: _Progress) -> None:
    """Remove temporary folders and chunks written but not recorded before a crash."""
    committed = {str(c["name"]) for c in progress.chunks}
    for entry in shard_dir.iterdir():
        if entry.is_dir() and entry.name not in committed:
            log.info("removing uncommitted %s", entry)
            shutil.rmtree(entry)


def _write_chunk(shard_dir: Path, name: str, documents: list[Document], rows: SparseBatch) -> None:
    tmp = shard_dir / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        np.save(tmp / "indptr.npy", rows.indptr.astype(np.int64, copy=False))
        np.save(tmp / "term_ids.npy", rows.term_ids.astype(np.int32, copy=False))
        np.save(tmp / "weights.npy", rows.weights.astype(np.float32, copy=False))
        with (tmp / "docs.jsonl").open("w", encoding="utf-8") as handle:
            for document in documents:
                record = {"_id": document.doc_id, "title": document.title, "text": document.text}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, shard_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_neural(encoder: Encoder) -> BatchEncoder:
    """``encoder`` with CSR rows over a fixed vocabulary: a neural model as it is, the two-channel
    default through the term list of its fitted corpus (:mod:`sparsearch.encoders.closed_vocabulary`).

    Raises:
        UsageError: a BM25 model (indexed directly, no encoding job needed).
    """
    from sparsearch.encoders.closed_vocabulary import ClosedVocabularyEncoder
    from sparsearch.encoders.two_channel import TwoChannelEncoder

    if isinstance(encoder, BatchEncoder):
        return encoder
    if isinstance(encoder, TwoChannelEncoder):
        return ClosedVocabularyEncoder(encoder)
    raise UsageError(
        f"sparsearch encode needs a learned model (SPLADE or the two-channel default; got {encoder.name!r}); "
        "BM25 models are indexed directly with sparsearch index"
    )


def _job_params(
    encoder: BatchEncoder, corpus: dict[str, object], num_shards: int, chunk_size: int, model_spec: str
) -> dict[str, object]:
    vocabulary = encoder.vocabulary
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "corpus": corpus,
        "model": {
            "spec": model_spec,
            "fingerprint": encoder.fingerprint.to_dict(),
            "document_digest": encoder.document_digest(),
        },
        "encoding": encoder.options.output_identity(),
        "num_shards": num_shards,
        "chunk_size": chunk_size,
        "vocabulary": {"size": len(vocabulary), "sha256": vocabulary.vocab_hash},
        "dtype": {"indptr": "int64", "term_ids": "int32", "weights": "float32"},
    }


_COMPARED = ("format", "format_version", "corpus", "encoding", "num_shards", "chunk_size", "vocabulary")


def _prepare_output(output: Path, params: dict[str, object], encoder: BatchEncoder) -> None:
    """Create the manifest, vocabulary and encoder of ``output``, or check an existing one agrees."""
    manifest_file = output / MANIFEST_FILE
    if manifest_file.is_file():
        existing = _read_json(manifest_file)
        for key in _COMPARED:
            if existing.get(key) != params[key]:
                raise UsageError(
                    f"{output} holds vectors encoded with other settings ({key}: {existing.get(key)!r} "
                    f"!= {params[key]!r}); use a new --output, or --overwrite to start again"
                )
        if (
            existing["model"]["fingerprint"] != params["model"]["fingerprint"]
            or existing["model"].get("document_digest") != params["model"]["document_digest"]
        ):  # type: ignore[index]
            raise EncoderMismatchError(
                f"{output} was encoded by model {existing['model']['spec']!r} "
                f"({existing['model']['fingerprint']}); this run uses {params['model']['spec']!r} "  # type: ignore[index]
                f"({params['model']['fingerprint']}); use a new --output, or --overwrite to start again"  # type: ignore[index]
            )
        return
    output.mkdir(parents=True, exist_ok=True)
    tmp_encoder = output / f".{ENCODER_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_encoder, ignore_errors=True)
    encoder.save(tmp_encoder)
    shutil.rmtree(output / ENCODER_DIR, ignore_errors=True)  # left by a run that stopped before its manifest
    with contextlib.suppress(OSError):  # another shard saved the (identical) encoder meanwhile
        os.rename(tmp_encoder, output / ENCODER_DIR)
    shutil.rmtree(tmp_encoder, ignore_errors=True)
    vocab_tmp = output / f".{VOCAB_FILE}.tmp-{os.getpid()}"
    vocab_tmp.write_text(json.dumps(encoder.vocabulary.vocabulary, ensure_ascii=False), encoding="utf-8")
    os.replace(vocab_tmp, output / VOCAB_FILE)
    manifest = params | {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sparsearch_version": __version__,
    }
    try:  # first writer wins; a concurrent shard then re-reads and compares
        with manifest_file.open("x", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, ensure_ascii=False)
    except FileExistsError:
        _prepare_output(output, params, encoder)


def _reuse_idf(output: Path, corpus: dict[str, object], encoder: BatchEncoder) -> bool:
    """On a rerun, take the IDF table the first run fitted on the same corpus (a full tokenizer pass
    over a large corpus takes minutes); the fingerprint check that follows still applies."""
    from sparsearch.encoders.closed_vocabulary import ClosedVocabularyEncoder
    from sparsearch.encoders.idf import IdfTable

    if isinstance(encoder, ClosedVocabularyEncoder):  # fitted again: BM25 statistics are more than an IDF table
        return False
    manifest_file, idf_file = output / MANIFEST_FILE, output / ENCODER_DIR / "idf.json"
    if not (manifest_file.is_file() and idf_file.is_file()) or _read_json(manifest_file).get("corpus") != corpus:
        return False
    table = IdfTable.load(idf_file)
    if table.analyzer.get("vocab_sha256") != encoder.vocabulary.vocab_hash:
        return False
    encoder.set_idf(table)
    return True


def prepare_encode_output(
    data: str | Path,
    output: str | Path,
    encoder: Encoder,
    *,
    model_spec: str,
    num_shards: int,
    chunk_size: int,
    overwrite: bool = False,
) -> BatchEncoder:
    """Fit the encoder's IDF table on the whole corpus (or reuse the one in ``output``) and write or
    check ``output``'s manifest, vocabulary and encoder: what every shard of a job shares.

    Called by :func:`run_encode_job` for each shard, and once by a driver that ships the fitted
    encoder to its workers (:mod:`sparsearch.jobs.ray_encode`).

    Returns:
        ``encoder``, fitted.

    Raises:
        UsageError: a non-neural model, bad sizes, or an output written with other settings.
        EncoderMismatchError: the output was written by another model.
    """
    neural = check_neural(encoder)
    if chunk_size < 1 or num_shards < 1:
        raise UsageError("--chunk-size and the number of shards must be >= 1")
    output = Path(output)
    if overwrite and output.exists():
        shutil.rmtree(output)
    corpus = corpus_identity(data)
    if not neural.is_fitted and not _reuse_idf(output, corpus, neural):
        neural.fit(d.full_text for d in iter_corpus(data))
    _prepare_output(output, _job_params(neural, corpus, num_shards, chunk_size, model_spec), neural)
    return neural


def read_shard_docs(output: str | Path, shard: tuple[int, int]) -> int:
    """Documents committed so far by shard ``(I, N)`` of ``output`` (0 before its first chunk)."""
    return _load_progress(Path(output) / shard_dir_name(*shard)).docs


def run_encode_job(
    data: str | Path,
    output: str | Path,
    encoder: Encoder,
    *,
    model_spec: str,
    shard: tuple[int, int] = (0, 1),
    batch_size: int = 64,
    chunk_size: int = 1024,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
) -> EncodeSummary:
    """Encode the documents of one shard of ``data`` into ``output`` (resuming a previous run).

    Args:
        data: BEIR folder or corpus ``.jsonl``.
        output: the output directory (see the module docstring).
        encoder: a learned encoder (:func:`check_neural`: SPLADE, or the two-channel model over its
            corpus's term list); fitted on the whole corpus here when it is not fitted yet.
        model_spec: the ``--model`` value, recorded in the manifest.
        shard: ``(I, N)``: encode the documents at positions ``≡ I (mod N)``.
        batch_size: documents per encoder call (passages are length-sorted and micro-batched inside).
        chunk_size: documents per committed chunk (the most a crash can lose).
        overwrite: delete ``output`` first.
        on_progress: called with the number of documents just committed (or skipped on resume).

    Raises:
        CorpusFormatError: the corpus is missing or malformed.
        UsageError: bad arguments, a non-neural model, or an output written with other settings.
        EncoderMismatchError: the output was written by another model.
    """
    started = time.perf_counter()
    if batch_size < 1:
        raise UsageError("--batch-size and --chunk-size must be >= 1")
    shard_index, num_shards = shard
    output = Path(output)
    neural = prepare_encode_output(
        data, output, encoder, model_spec=model_spec, num_shards=num_shards, chunk_size=chunk_size, overwrite=overwrite
    )

    shard_dir = output / shard_dir_name(shard_index, num_shards)
    shard_dir.mkdir(exist_ok=True)
    progress = _load_progress(shard_dir)
    _clean_uncommitted(shard_dir, progress)
    resumed_from = progress.docs
    if on_progress is not None and resumed_from:
        on_progress(resumed_from)
    encoded_now = 0
    empty: list[str] = []

    def shard_documents() -> Iterator[Document]:
        for position, document in enumerate(iter_corpus(data)):
            if position % num_shards == shard_index:
                yield document

    if not progress.complete:
        documents = shard_documents()
        for _ in range(resumed_from):  # skip what committed chunks hold
            if next(documents, None) is None:
                raise CorpusFormatError(data, f"has fewer documents than {output} already holds; was it truncated?")
        while True:
            chunk = [d for _, d in zip(range(chunk_size), documents, strict=False)]
            if not chunk:
                break
            parts = [
                neural.encode_document_batch([d.full_text for d in chunk[i : i + batch_size]])
                for i in range(0, len(chunk), batch_size)
            ]
            rows = SparseBatch.concatenate(parts)
            empty.extend(d.doc_id for d, n in zip(chunk, rows.lengths(), strict=True) if n == 0)
            name = f"chunk-{len(progress.chunks):06d}"
            _write_chunk(shard_dir, name, chunk, rows)
            progress.chunks.append({"name": name, "docs": len(chunk), "nnz": rows.nnz})
            write_json_atomic(shard_dir / PROGRESS_FILE, progress.to_dict(shard))
            encoded_now += len(chunk)
            if on_progress is not None:
                on_progress(len(chunk))
        progress.complete = True
        write_json_atomic(shard_dir / PROGRESS_FILE, progress.to_dict(shard))

    return EncodeSummary(
        output=str(output),
        shard=f"{shard_index}/{num_shards}",
        documents=progress.docs,
        encoded_now=encoded_now,
        resumed_from=resumed_from,
        postings=progress.nnz,
        avg_terms_per_doc=progress.nnz / progress.docs if progress.docs else 0.0,
        seconds=time.perf_counter() - started,
        complete=progress.complete,
        empty_documents=empty,
    )


# -- reading an encode output ---------------------------------------------------------------------------
def is_encoded_output(path: str | Path) -> bool:
    """Whether ``path`` is a ``sparsearch encode`` output directory."""
    return (Path(path) / MANIFEST_FILE).is_file()


class _ShardCursor:
    """Rows of one shard, in order, one chunk (mmap) at a time."""

    def __init__(self, shard_dir: Path, chunks: list[dict[str, Any]]) -> None:
        self.shard_dir = shard_dir
        self._chunks = iter(chunks)
        self._rows: SparseBatch | None = None
        self._docs: Iterator[str] = iter(())
        self._row = 0

    def _open_next_chunk(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        directory = self.shard_dir / str(chunk["name"])
        try:
            self._rows = SparseBatch(
                np.load(directory / "indptr.npy", mmap_mode="r"),
                np.load(directory / "term_ids.npy", mmap_mode="r"),
                np.load(directory / "weights.npy", mmap_mode="r"),
            )
            self._docs = iter((directory / "docs.jsonl").read_text(encoding="utf-8").splitlines())
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"{directory}: damaged chunk ({error}); re-encode this shard") from error
        if len(self._rows) != int(chunk["docs"]):
            raise IndexFormatError(f"{directory}: {len(self._rows)} rows but progress.json says {chunk['docs']}")
        self._row = 0
        return True

    def next(self) -> tuple[Document, np.ndarray, np.ndarray]:
        """The next document with its term ids and weights (views)."""
        while self._rows is None or self._row >= len(self._rows):
            if not self._open_next_chunk():
                raise IndexFormatError(f"{self.shard_dir}: fewer documents than its progress.json records")
        assert self._rows is not None
        record = json.loads(next(self._docs))
        start, end = int(self._rows.indptr[self._row]), int(self._rows.indptr[self._row + 1])
        self._row += 1
        document = Document(doc_id=record["_id"], title=record.get("title", ""), text=record.get("text", ""))
        return document, self._rows.term_ids[start:end], self._rows.weights[start:end]


def iter_shard(output: str | Path, shard: tuple[int, int]) -> Iterator[tuple[Document, np.ndarray, np.ndarray]]:
    """The committed documents of shard ``(I, N)`` of ``output`` with their term ids and weights
    (views over the chunks), in corpus order; complete or not, other shards are not read."""
    shard_dir = Path(output) / shard_dir_name(*shard)
    progress = _load_progress(shard_dir)
    cursor = _ShardCursor(shard_dir, list(progress.chunks))
    for _ in range(progress.docs):
        yield cursor.next()


class EncodedOutput:
    """A complete ``sparsearch encode`` output, read back in corpus order.

    Raises:
        IndexFormatError: not an encode output, a damaged manifest, or a missing/incomplete shard
            (the message names the ``--shard`` to re-run).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest_file = self.path / MANIFEST_FILE
        if not manifest_file.is_file():
            raise IndexFormatError(f"{self.path}: no {MANIFEST_FILE}; not a sparsearch encode output")
        self.manifest: dict[str, Any] = _read_json(manifest_file)
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(f"{manifest_file}: unsupported format {self.manifest.get('format_version')!r}")
        self.vocabulary: list[str] = _read_json(self.path / VOCAB_FILE)
        if len(self.vocabulary) != self.manifest["vocabulary"]["size"]:
            raise IndexFormatError(f"{self.path / VOCAB_FILE}: vocabulary size differs from the manifest")
        self.num_shards = int(self.manifest["num_shards"])
        self._progress: list[dict[str, Any]] = []
        for index in range(self.num_shards):
            shard_dir = self.path / shard_dir_name(index, self.num_shards)
            progress_file = shard_dir / PROGRESS_FILE
            if not progress_file.is_file():
                raise IndexFormatError(
                    f"{self.path}: shard {index}/{self.num_shards} is missing; run sparsearch encode "
                    f"--shard {index}/{self.num_shards} --output {self.path} (or copy its folder here)"
                )
            progress = _read_json(progress_file)
            if not progress.get("complete"):
                raise IndexFormatError(
                    f"{self.path}: shard {index}/{self.num_shards} is incomplete ({progress.get('docs', 0)} documents "
                    f"so far); re-run sparsearch encode --shard {index}/{self.num_shards} to finish it"
                )
            self._progress.append(progress)
        counts = [int(p["docs"]) for p in self._progress]
        total = sum(counts)
        expected = [len(range(i, total, self.num_shards)) for i in range(self.num_shards)]
        if counts != expected:
            raise IndexFormatError(f"{self.path}: shard sizes {counts} do not split {total} documents round-robin")

    @property
    def encoder_dir(self) -> Path:
        return self.path / ENCODER_DIR

    @property
    def fingerprint(self) -> EncoderFingerprint:
        return EncoderFingerprint.from_dict(self.manifest["model"]["fingerprint"])

    def count(self) -> int:
        return sum(int(p["docs"]) for p in self._progress)

    def check_encoder(self, encoder: Encoder) -> None:
        """Raise :class:`EncoderMismatchError` unless ``encoder`` is the model that encoded the vectors."""
        idf_file = self.encoder_dir / "idf.json"
        neural = encoder if isinstance(encoder, BatchEncoder) else None
        if neural is not None and not neural.is_fitted and idf_file.is_file():
            # the same --model as the encode run, not fitted yet: it takes the IDF table of the corpus
            from sparsearch.encoders.idf import IdfTable

            with contextlib.suppress(IndexFormatError):
                neural.set_idf(IdfTable.load(idf_file))
        same = encoder.is_fitted and encoder.fingerprint == self.fingerprint
        if same and neural is not None and neural.loaded_from != self.encoder_dir.resolve():  # not the saved encoder
            same = neural.document_digest() == self.manifest["model"].get("document_digest")
        if not same:
            raise EncoderMismatchError(
                f"{self.path} was encoded by model {self.manifest['model']['spec']!r}, not by this --model; index "
                "it without --model (its encoder is saved in the encode output) or re-encode with the model you want"
            )

    def iter_batches(self, batch_size: int) -> Iterator[tuple[list[Document], SparseBatch]]:
        """Documents and their CSR rows (over :attr:`vocabulary`), in corpus order, ``batch_size`` at a time."""
        cursors = [
            _ShardCursor(self.path / shard_dir_name(i, self.num_shards), list(p["chunks"]))
            for i, p in enumerate(self._progress)
        ]
        total = self.count()
        for start in range(0, total, batch_size):
            documents: list[Document] = []
            term_ids: list[np.ndarray] = []
            weights: list[np.ndarray] = []
            for position in range(start, min(start + batch_size, total)):
                document, ids, values = cursors[position % self.num_shards].next()
                documents.append(document)
                term_ids.append(ids)
                weights.append(values)
            indptr = np.zeros(len(documents) + 1, np.int64)
            np.cumsum([len(ids) for ids in term_ids], out=indptr[1:])
            yield (
                documents,
                SparseBatch(
                    indptr,
                    np.concatenate(term_ids).astype(np.int32, copy=False) if term_ids else np.zeros(0, np.int32),
                    np.concatenate(weights).astype(np.float32, copy=False) if weights else np.zeros(0, np.float32),
                ),
            )
