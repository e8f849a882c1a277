"""What every neural sparse encoder shares: the IDF query side, passages, batching, pruning, files.

Subclasses (:class:`~sparsearch.encoders.splade.SpladeEncoder`,
:class:`~sparsearch.encoders.llm_splade.EchoSpladeEncoder`) provide two things: how a document
text becomes passages of token ids (:meth:`NeuralSparseEncoder._split_passages`) and how a padded
batch of passages becomes (B, V) weights (:meth:`NeuralSparseEncoder._forward`). Everything else is
here:

**Queries (inference-free).** A query is tokenized with the model's own ``tokenizer.json`` (no torch,
microseconds), each distinct non-special token is kept once and weighted by its IDF (docs/method.md#idf-query-weights),
with :class:`~sparsearch.encoders.idf.IdfTable`'s rule for tokens missing from the table (the
table's maximum, df = 0).

**Long documents.** A document is split into passages of at most ``max_length`` tokens (special
tokens included) with ``passage_overlap`` tokens shared by consecutive passages; each passage is
encoded and the document vector is the element-wise maximum over its passages (the same max pooling
SPLADE applies over positions, so a document's vector is what one encoder pass over the whole text
would give if the model could read it). Nothing is silently truncated (docs/method.md#no-silent-truncation); the
cost is linear in the document's length unless ``max_passages`` caps it (recorded in manifests).

**Empty documents.** A document with no token (empty, whitespace only, only characters the tokenizer
drops) gets an empty vector without a model call: encoding ``[CLS] [SEP]`` alone would give it
expansion terms and let it match queries.

**Speed.** Passages of a call are sorted by length and cut into micro-batches of at most
``batch_tokens`` padded tokens (little padding, bounded (B, L, V) logits memory); the forward pass runs
under ``torch.inference_mode``; the activation runs after the maximum over positions (see
:func:`~sparsearch.encoders.sparse_batch.splade_max_pool`); ``precision="bfloat16"`` runs the
model in bfloat16 (fast on CPUs with AVX512-BF16/AMX; bench/results/encode_speed.json).

**Files.** A saved model directory holds ``config.json`` (``"type"``, name, kind, encoding options,
where the weights are), ``tokenizer.json`` (read by the query side without loading the model),
``idf.json`` once fitted, and the weights: copied into the directory when they are at most
:data:`COPY_LIMIT_BYTES` (an index then carries its model and can be moved or served alone), else
referenced by absolute path with the file sizes recorded and checked on load.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sparsearch.encoders.idf import IdfTable
from sparsearch.encoders.sparse_batch import SparseBatch, dense_to_batch, pool_passages
from sparsearch.encoders.vocabulary import TOKENIZER_FILE, TokenizerVocabulary, clean_text
from sparsearch.errors import IndexFormatError, ModelNotFoundError, UsageError, require
from sparsearch.types import BatchEncoder, EncodedQuery, EncoderFingerprint, stable_hash

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
IDF_FILE = "idf.json"
FORMAT_VERSION = 1
COPY_LIMIT_BYTES = 1 << 30
"""Weights up to this size are copied into a saved model (and so into every index); larger ones are
referenced by path (keep that directory in place)."""

Precision = Literal["float32", "bfloat16"]


@dataclass
class EncodingOptions:
    """How documents are encoded. The first six fields change the vectors and are recorded in every
    saved model and encode manifest; ``batch_tokens`` and ``device`` only change speed.

    Attributes:
        max_length: tokens per passage, special tokens included (LLM echo: tokens per copy).
        passage_overlap: tokens shared by consecutive passages of a long document (< max_length / 2).
        max_active_dims: keep at most this many largest weights per document (``None``: all);
            sentence-transformers' name for top-k pruning.
        min_weight: drop weights below this value (0: keep every weight > 0).
        precision: ``"float32"`` or ``"bfloat16"`` (model weights and logits).
        max_passages: encode at most this many passages per document (``None``: all; 1 truncates
            like sentence-transformers' ``encode_document``), bounding the cost of huge documents.
        batch_tokens: padded tokens per forward pass (micro-batch budget; bounds the (B, L, V) logits).
        device: torch device (``None``: CUDA when available, else CPU).
    """

    max_length: int = 256
    passage_overlap: int = 64
    max_active_dims: int | None = None
    min_weight: float = 0.0
    precision: Precision = "float32"
    max_passages: int | None = None
    batch_tokens: int = 4096
    device: str | None = None

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise UsageError(f"max_length must be at least 8 tokens (got {self.max_length})")
        if not 0 <= self.passage_overlap <= self.max_length // 2:
            raise UsageError(
                f"passage_overlap must be between 0 and max_length / 2 = {self.max_length // 2} "
                f"(got {self.passage_overlap})"
            )
        if self.max_active_dims is not None and self.max_active_dims < 1:
            raise UsageError(f"max_active_dims must be >= 1 or None (got {self.max_active_dims})")
        if self.min_weight < 0:
            raise UsageError(f"min_weight must be >= 0 (got {self.min_weight})")
        if self.precision not in ("float32", "bfloat16"):
            raise UsageError(f"precision must be 'float32' or 'bfloat16' (got {self.precision!r})")
        if self.max_passages is not None and self.max_passages < 1:
            raise UsageError(f"max_passages must be >= 1 or None (got {self.max_passages})")
        if self.batch_tokens < self.max_length:
            raise UsageError(f"batch_tokens ({self.batch_tokens}) must be at least max_length ({self.max_length})")

    def output_identity(self) -> dict[str, object]:
        """The options that change document vectors (recorded in manifests)."""
        return {
            "max_length": self.max_length,
            "passage_overlap": self.passage_overlap,
            "max_active_dims": self.max_active_dims,
            "min_weight": self.min_weight,
            "precision": self.precision,
            "max_passages": self.max_passages,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncodingOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> EncodingOptions:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        data = self.to_dict()
        data.update({k: v for k, v in changes.items() if v is not None})
        return EncodingOptions(**data)


def resolve_device(device: str | None) -> str:
    torch = require("torch", "neural")

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def micro_batches(lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Indices of ``lengths`` grouped longest first into batches of at most ``batch_tokens`` padded tokens.

    Sorting by length keeps padding small; a single item longer than the budget forms its own batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) + 1) * lengths[batch[0]] > batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def file_sizes(path: Path) -> dict[str, int]:
    """``relative path -> size`` of every file under ``path`` (for references to large weights)."""
    return {str(f.relative_to(path)): f.stat().st_size for f in sorted(path.rglob("*")) if f.is_file()}


def link_or_copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target``, hard-linking files where the filesystem allows (weights are never
    modified in place, so a link is as good as a copy and costs nothing)."""

    def link_or_copy(src: str, dst: str) -> None:
        src = os.path.realpath(src)  # a Hugging Face cache snapshot holds symlinks to blobs: link the file
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)


def weights_entry(source: Path, directory: Path, name: str, size: int) -> dict[str, object]:
    """The ``config.json`` entry of weights at ``source``: copied to ``directory/name`` or referenced."""
    if size <= COPY_LIMIT_BYTES:
        return {"path": name, "copied": True}
    log.info("weights of %d bytes at %s are referenced, not copied", size, source)
    return {"path": str(source.resolve()), "copied": False, "files": file_sizes(source)}


def resolve_weights(directory: Path, entry: dict[str, Any]) -> Path:
    """The weights directory a saved model's ``config.json`` entry points to, checked.

    Raises:
        IndexFormatError: the directory is missing, or a referenced file changed size since saving.
    """
    path = Path(entry["path"])
    path = path if path.is_absolute() else directory / path
    if not path.is_dir():
        raise IndexFormatError(
            f"{directory}: the model weights at {path} are missing; "
            + ("copy the model back there" if not entry.get("copied", True) else "the model directory is damaged")
        )
    expected = entry.get("files")
    if expected:
        actual = file_sizes(path)
        changed = sorted(name for name, size in expected.items() if actual.get(name) != size)
        if changed:
            raise IndexFormatError(
                f"{directory}: the referenced model at {path} changed since it was saved ({', '.join(changed[:3])}); "
                "restore it or rebuild the index with the new model"
            )
    return path


class NeuralSparseEncoder(BatchEncoder):
    """Base of the neural encoders: IDF queries, passages, micro-batches, pruning, persistence.

    Args:
        name: model name recorded in indexes.
        vocabulary: the model's tokenizer vocabulary (term ids of the output head).
        options: document encoding options.
        idf: the query-side IDF table (``None`` until :meth:`fit`).
    """

    model_type = "neural"
    """``config.json`` ``"type"`` of saved models."""

    def __init__(
        self,
        name: str,
        vocabulary: TokenizerVocabulary,
        options: EncodingOptions | None = None,
        idf: IdfTable | None = None,
    ) -> None:
        self.name = name
        self.vocabulary = vocabulary
        self.options = options or EncodingOptions()
        self.idf = idf
        self._fingerprint: EncoderFingerprint | None = None
        self.loaded_from: Path | None = None
        """The saved model directory this encoder was loaded from (``None``: built in memory)."""
        self.source_layout: str | None = None
        """How a ``--model`` directory made elsewhere was read, in words (``None``: built-in or saved)."""
        if idf is not None:
            self._check_idf(idf)

    # -- corpus statistics ---------------------------------------------------------------------------
    def _check_idf(self, idf: IdfTable) -> None:
        if idf.analyzer.get("vocab_sha256") != self.vocabulary.vocab_hash:
            raise IndexFormatError(
                f"the IDF table was computed with another tokenizer (vocabulary {idf.analyzer.get('vocab_sha256')}) "
                f"than model {self.name!r} (vocabulary {self.vocabulary.vocab_hash}); refit it with encoder.fit(corpus)"
            )

    @property
    def is_fitted(self) -> bool:
        return self.idf is not None

    def fit(self, texts: Iterable[str], batch_size: int = 1024) -> None:
        """Compute the query-side IDF table over ``texts`` (the target corpus) with the model's tokenizer."""

        def token_lists() -> Iterator[list[str]]:
            batch: list[str] = []
            for text in texts:
                batch.append(text)
                if len(batch) >= batch_size:
                    yield from self.vocabulary.tokenize_batch(batch)
                    batch = []
            yield from self.vocabulary.tokenize_batch(batch)

        self.set_idf(IdfTable.from_token_lists(token_lists(), self.vocabulary.identity))

    def set_idf(self, idf: IdfTable) -> None:
        self._check_idf(idf)
        self.idf = idf
        self._fingerprint = None

    def clear_idf(self) -> None:
        """Forget the query weights (shipped or fitted), so the next indexing job fits them on its corpus."""
        self.idf = None
        self._fingerprint = None

    def _require_idf(self) -> IdfTable:
        if self.idf is None:
            raise UsageError(
                f"model {self.name!r} has no IDF table yet: call fit() on the corpus first "
                "(sparsearch index and sparsearch encode do this automatically)"
            )
        return self.idf

    def idf_weights(self) -> list[float]:
        """IDF of every term id (0 for special tokens), shape (V,): the query branch's static weights."""
        idf = self._require_idf()
        special = self.vocabulary.special_ids
        return [0.0 if i in special else idf.idf(token) for i, token in enumerate(self.vocabulary.vocabulary)]

    # -- the Encoder protocol ------------------------------------------------------------------------
    def _query_identity(self) -> dict[str, object]:
        """What determines query weights; hashed into the fingerprint's ``idf_hash``."""
        return {"query": "idf", "idf": self._require_idf().hash}

    @property
    def fingerprint(self) -> EncoderFingerprint:
        if self._fingerprint is None:
            self._fingerprint = EncoderFingerprint(
                name=self.name,
                vocab_hash=stable_hash(self.vocabulary.identity),
                idf_hash=stable_hash(self._query_identity()),
            )
        return self._fingerprint

    def encode_query(self, text: str) -> EncodedQuery:
        """Inference-free query: each distinct non-special token once, weighted by its IDF (no model call)."""
        idf = self._require_idf()
        return EncodedQuery(weights=idf.weights(self.vocabulary.tokenize(text)), encoder=self.fingerprint, text=text)

    def encode_document_batch(self, texts: Sequence[str]) -> SparseBatch:
        """Encode documents into CSR rows over :attr:`vocabulary` (see the module docstring).

        Args:
            texts: document texts (title and body joined); any length.

        Returns:
            One row per text; empty rows for texts without tokens.
        """
        torch = require("torch", "neural")

        options = self.options
        texts = [clean_text(t) if t.strip() else "" for t in texts]  # whitespace-only: no passage at all
        passages = self._split_passages(texts)
        if options.max_passages is not None:
            per_text: Counter[int] = Counter()
            capped: list[tuple[int, list[int]]] = []
            for row, ids in passages:  # the first max_passages passages of each text
                per_text[row] += 1
                if per_text[row] <= options.max_passages:
                    capped.append((row, ids))
            passages = capped
        if not passages:
            return SparseBatch.empty(len(texts))
        with torch.inference_mode():
            docs: torch.Tensor | None = None
            for batch in micro_batches([len(ids) for _, ids in passages], options.batch_tokens):
                pooled = self._forward([passages[i][1] for i in batch])
                if docs is None:
                    docs = torch.zeros(len(texts), pooled.shape[1], dtype=torch.float32, device=pooled.device)
                rows = torch.tensor([passages[i][0] for i in batch], dtype=torch.int64, device=pooled.device)
                pool_passages(docs, pooled, rows)
            assert docs is not None
            return dense_to_batch(
                docs[:, : len(self.vocabulary)],
                zero_ids=sorted(self.vocabulary.special_ids),
                max_active_dims=options.max_active_dims,
                min_weight=options.min_weight,
            )

    # -- what subclasses provide ---------------------------------------------------------------------
    def document_digest(self) -> str:
        """Identity of the document model's weights (an encode job refuses to mix two models' vectors
        even when they share tokenizer and IDF table, and so the query fingerprint)."""
        raise NotImplementedError

    def _split_passages(self, texts: list[str]) -> list[tuple[int, list[int]]]:
        """``(row of the text, model input ids)`` for every passage; texts without tokens give none."""
        raise NotImplementedError

    def _forward(self, passages: list[list[int]]) -> torch.Tensor:
        """(B, V) pooled weights >= 0 of a batch of passages (input ids, unpadded)."""
        raise NotImplementedError

    # -- persistence ---------------------------------------------------------------------------------
    def _config(self) -> dict[str, object]:
        return {
            "type": self.model_type,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "options": {k: v for k, v in self.options.to_dict().items() if k != "device"},  # a per-machine choice
            "vocabulary": self.vocabulary.identity,
        }

    def _save_common(self, directory: Path, extra: dict[str, object]) -> None:
        """Write ``config.json`` (with ``extra``), ``tokenizer.json`` and ``idf.json`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        self.vocabulary.save(directory / TOKENIZER_FILE)
        if self.idf is not None:
            self.idf.save(directory / IDF_FILE)
        config = self._config() | extra
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def load_common(
    directory: Path, expected_type: str
) -> tuple[dict[str, Any], TokenizerVocabulary, IdfTable | None, EncodingOptions]:
    """Read the files :meth:`NeuralSparseEncoder._save_common` wrote.

    Raises:
        ModelNotFoundError: no ``config.json`` or a config of another type.
        IndexFormatError: a damaged config, tokenizer or IDF table.
    """
    config_file = directory / CONFIG_FILE
    if not config_file.is_file():
        raise ModelNotFoundError(f"{directory}: no {CONFIG_FILE}; not a saved sparsearch model")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except ValueError as error:
        raise IndexFormatError(f"{config_file}: not valid JSON ({error})") from error
    if config.get("type") != expected_type:
        raise ModelNotFoundError(f"{config_file}: type {config.get('type')!r}, expected {expected_type!r}")
    if config.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise IndexFormatError(f"{config_file}: written by a newer sparsearch (format {config['format_version']})")
    vocabulary = TokenizerVocabulary.from_file(directory / TOKENIZER_FILE)
    with contextlib.suppress(KeyError, TypeError):
        if config["vocabulary"]["vocab_sha256"] != vocabulary.vocab_hash:
            raise IndexFormatError(f"{directory}: tokenizer.json does not match the vocabulary in {CONFIG_FILE}")
    idf = IdfTable.load(directory / IDF_FILE) if (directory / IDF_FILE).is_file() else None
    try:
        options = EncodingOptions.from_dict(config.get("options", {}))
    except (TypeError, UsageError) as error:
        raise IndexFormatError(f"{config_file}: invalid encoding options ({error})") from error
    return config, vocabulary, idf, options
