"""What an indexing job reads, resolved once: a corpus (a BEIR folder, a JSONL file, documents held in
memory) or the output of ``sparsearch encode`` (vectors already computed, read without a model call)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sparsearch.corpus import count_lines, is_corpus_path, iter_corpus, iter_documents, resolve_corpus_file
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
