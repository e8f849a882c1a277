"""What an indexing job reads, resolved once: a corpus (a BEIR folder, a JSONL file, documents held in
memory) or the output of ``sparsearch encode`` (vectors already computed, read without a model call)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sparsearch.corpus import count_lines, is_corpus_path, iter_corpus, iter_documents, resolve_corpus_file
from sparsearch.errors import CorpusFormatError
from sparsearch.jobs.encode import EncodedOutput, is_encoded_output
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
    """

    corpus_file: Path | None = None
    documents: list[Document] | None = None
    encoded: EncodedOutput | None = None

    def count(self) -> int:
        """Number of documents (for progress bars; a corpus file is counted by its non-blank lines)."""
        if self.encoded is not None:
            return self.encoded.count()
        if self.documents is not None:
            return len(self.documents)
        assert self.corpus_file is not None
        return count_lines(self.corpus_file)

    def is_empty(self) -> bool:
        """Whether there is no document at all; cheap: a corpus file is read up to its first non-blank line,
        an encode output answers from its progress files."""
        if self.encoded is not None:
            return self.encoded.count() == 0
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
        else:
            raise ValueError("an encode output is read with its vectors (EncodedOutput.iter_batches)")

    @property
    def saved_encoder_dir(self) -> Path | None:
        """The encoder an encode output was made with (the default model for indexing it)."""
        return self.encoded.encoder_dir if self.encoded is not None else None


def open_source(data: Corpus | Source) -> Source:
    """Resolve ``data`` once: which kind of input it is, and its files.

    Raises:
        CorpusFormatError: a missing path, a folder without ``corpus.jsonl``, or (in memory) a bad item.
        IndexFormatError: an incomplete or damaged encode output.
    """
    if isinstance(data, Source):
        return data
    if is_corpus_path(data):
        path = Path(data)  # type: ignore[arg-type]
        if is_encoded_output(path):
            return Source(encoded=EncodedOutput(path))
        return Source(corpus_file=resolve_corpus_file(path))
    return Source(documents=list(iter_documents(data)))  # validated up front; read twice when fitting


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
    if source.corpus_file is not None:
        raise CorpusFormatError(
            source.corpus_file, f"no documents (the file is empty or has only blank lines); check the path, {fix}"
        )
    raise CorpusFormatError(
        "<documents>", "no documents were given; pass at least one, or allow_empty=True to build an empty index"
    )
