"""What an indexing job reads, resolved once: a corpus (a BEIR folder, a JSONL file, documents held in
memory), the output of ``sparsearch encode`` (vectors already computed, read without a model call) or an
Anserini JsonVectorCollection (``sparsearch export``'s, or another tool's integer vectors)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sparsearch.corpus import count_lines, is_corpus_path, iter_corpus, iter_documents, resolve_corpus_file
from sparsearch.errors import CorpusFormatError, UsageError
from sparsearch.jobs.encode import EncodedOutput, is_encoded_output
from sparsearch.jobs.jsonvector import JsonVectorCollection, is_jsonvector_folder
from sparsearch.types import Document

Corpus = str | Path | Iterable[Document | Mapping[str, object] | str]
"""A BEIR folder, a JSONL file, an encode output, or documents in memory (:func:`~sparsearch.corpus.iter_documents`)."""


@dataclass(frozen=True)
class Source:
    """The input of an indexing job, resolved by :func:`open_source`; exactly one field is set.

    Attributes:
        corpus_file: the corpus ``.jsonl`` behind a BEIR folder or a JSONL path.
        documents: documents held in memory (validated, in order).
        encoded: a complete ``sparsearch encode`` output.
        jsonvector: a JsonVectorCollection folder (integer vectors, read back as ``impact / scale``).
    """

    corpus_file: Path | None = None
    documents: list[Document] | None = None
    encoded: EncodedOutput | None = None
    jsonvector: JsonVectorCollection | None = None

    def count(self) -> int:
        """Number of documents (for progress bars; a corpus file is counted by its non-blank lines)."""
        if self.encoded is not None:
            return self.encoded.count()
        if self.jsonvector is not None:
            return self.jsonvector.count()
        if self.documents is not None:
            return len(self.documents)
        assert self.corpus_file is not None
        return count_lines(self.corpus_file)

    def is_empty(self) -> bool:
        """Whether there is no document at all; cheap: a corpus file is read up to its first non-blank line,
        an encode output answers from its progress files."""
        if self.encoded is not None:
            return self.encoded.count() == 0
        if self.jsonvector is not None:
            return self.jsonvector.is_empty()
        if self.documents is not None:
            return not self.documents
        assert self.corpus_file is not None
        with self.corpus_file.open("rb") as handle:
            return not any(raw.strip() for raw in handle)  # stops at the first document's line

    def iter_documents(self) -> Iterator[Document]:
        """The documents, in order (an encode output's documents come with its stored vectors instead)."""
        if self.documents is not None:
            yield from self.documents
        elif self.corpus_file is not None:
            yield from iter_corpus(self.corpus_file)
        elif self.jsonvector is not None:
            yield from self.jsonvector.iter_documents()
        else:
            raise ValueError("an encode output is read with its vectors (EncodedOutput.iter_batches)")

    @property
    def saved_encoder_dir(self) -> Path | None:
        """The encoder an encode output or a ``sparsearch export`` was made with (the default model for
        indexing it); ``None`` for a corpus and for another tool's JsonVectorCollection."""
        if self.encoded is not None:
            return self.encoded.encoder_dir
        return self.jsonvector.encoder_dir if self.jsonvector is not None else None


def open_source(data: Corpus | Source, *, scale: float | None = None) -> Source:
    """Resolve ``data`` once: which kind of input it is, and its files.

    Args:
        data: a corpus path, an encode output, a JsonVectorCollection folder or documents in memory.
        scale: for a JsonVectorCollection without a ``sparsearch export`` sidecar: divide its integer
            weights by this (refused for other inputs).

    Raises:
        CorpusFormatError: a missing path, a folder without ``corpus.jsonl``, or (in memory) a bad item.
        IndexFormatError: an incomplete or damaged encode output or export sidecar.
        UsageError: ``scale`` given for an input that is not a JsonVectorCollection, or missing for one.
    """
    if isinstance(data, Source):
        return data
    if is_corpus_path(data):
        path = Path(data)  # type: ignore[arg-type]
        if is_encoded_output(path):
            source = Source(encoded=EncodedOutput(path))
        elif is_jsonvector_folder(path):
            return Source(jsonvector=JsonVectorCollection(path, scale))
        else:
            source = Source(corpus_file=resolve_corpus_file(path))
    else:
        source = Source(documents=list(iter_documents(data)))  # validated up front; read twice when fitting
    if scale is not None:
        raise UsageError(
            f"--scale is for a JsonVectorCollection folder (integer vectors); {data} is not one (no file in it has "
            '"vector" records)'
        )
    return source


def check_not_empty(source: Source, *, allow_empty: bool = False) -> None:
    """Refuse an input without documents, unless ``allow_empty``; called before anything is written.

    A build from an empty corpus is nearly always a wrong path or a failed export; with ``--overwrite``
    (or an engine's alias swap) it would silently replace a served index by an empty one.

    Raises:
        CorpusFormatError: ``source`` holds no document (naming its file) and ``allow_empty`` is false.
    """
    if allow_empty or not source.is_empty():
        return
    fix = "or pass --allow-empty to sparsearch index (allow_empty=True in Python) to build an empty index on purpose"
    if source.encoded is not None:
        raise CorpusFormatError(
            source.encoded.path, f"this encode output holds no documents (its corpus was empty); check the path, {fix}"
        )
    if source.jsonvector is not None:
        raise CorpusFormatError(source.jsonvector.folder, f"this collection holds no documents; check the path, {fix}")
    if source.corpus_file is not None:
        raise CorpusFormatError(
            source.corpus_file, f"no documents (the file is empty or has only blank lines); check the path, {fix}"
        )
    raise CorpusFormatError(
        "<documents>", "no documents were given; pass at least one, or allow_empty=True to build an empty index"
    )
