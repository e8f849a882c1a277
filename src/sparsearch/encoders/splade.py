"""SPLADE encoders on sentence-transformers' ``SparseEncoder``: inference-free and siamese.

Both kinds share the document side: a BERT-family masked-LM (``Transformer(...,
transformer_task="fill-mask")``) followed by ``SpladePooling`` (log(1 + ReLU), max over positions);
special tokens are forced to 0. They differ on the query side:

* ``kind="inference-free"`` (the default model family, docs/method.md#inference-free-splade): the model is a
  ``Router.for_query_document`` whose query branch is a ``SparseStaticEmbedding`` holding the IDF
  table, so ``SparseEncoder.encode_query`` returns IDF-weighted binary token presence. Serving uses
  the same weights without torch (:meth:`NeuralSparseEncoder.encode_query`: a tokenizer call and dict
  look-ups, microseconds; tests check both paths agree).
* ``kind="siamese"``: the same MLM encoder on both sides (``SparseEncoder.encode_query`` +
  ``decode``). Used as a sparse teacher and by users who accept a model call per query.

Documents go through a faster path than ``SparseEncoder.encode_document`` (passages instead of
truncation, token-budget micro-batches, activation after the maximum, optional bfloat16; see
:mod:`sparsearch.encoders.neural`); :meth:`SpladeEncoder.encode_document_reference` runs
sentence-transformers' own path, which tests and ``bench/encode_speed.py`` compare against.

Any local BERT-family MLM checkpoint directory (``config.json`` with a ``*ForMaskedLM``
architecture, weights and a ``tokenizer.json``) loads with :meth:`SpladeEncoder.from_mlm`; the
MiniLM base without an MLM head is built by :mod:`sparsearch.encoders.minilm_base`.

Saved model directory (``encoder.save(path)``; the indexer saves it as ``INDEX/encoder``)::

    config.json          {"type": "splade", "kind", "name", "options", "weights": {...}, ...}
    tokenizer.json       the query side reads only this (and idf.json): no torch at search time
    idf.json             the IDF table, once fitted
    sparse_encoder/      SparseEncoder.save() output (copied when <= 1 GiB, else referenced by path)
    modules.json         with config_sentence_transformers.json: SparseEncoder(path) loads the root
                         folder too (when the weights are copied)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sparsearch._files import directory_bytes
from sparsearch.encoders.idf import IdfTable
from sparsearch.encoders.neural import (
    COPY_LIMIT_BYTES,
    EncodingOptions,
    NeuralSparseEncoder,
    link_or_copy_tree,
    load_common,
    resolve_device,
    resolve_weights,
    weights_entry,
)
from sparsearch.encoders.sparse_batch import splade_max_pool
from sparsearch.encoders.vocabulary import TokenizerVocabulary, clean_text
from sparsearch.errors import ModelNotFoundError, UsageError, require
from sparsearch.types import EncodedQuery, SparseVector

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from sentence_transformers import SparseEncoder

log = logging.getLogger(__name__)

Kind = Literal["inference-free", "siamese"]
KINDS: tuple[str, ...] = ("inference-free", "siamese")
WEIGHTS_DIR = "sparse_encoder"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"unknown SPLADE kind {kind!r}: use one of {', '.join(KINDS)}")


def build_sparse_encoder(
    mlm_dir: str | Path,
    *,
    kind: Kind = "inference-free",
    idf_weights: Sequence[float] | None = None,
    max_length: int = 256,
    device: str | None = None,
) -> SparseEncoder:
    """A sentence-transformers ``SparseEncoder`` over a local masked-LM checkpoint.

    Args:
        mlm_dir: Hugging Face MLM checkpoint directory (config, weights, tokenizer).
        kind: ``"inference-free"`` (Router: ``SparseStaticEmbedding`` queries, MLM documents) or
            ``"siamese"`` (MLM on both sides).
        idf_weights: (V,) static query weights for the inference-free kind (``None``: all ones,
            to be filled by :meth:`SpladeEncoder.fit`).
        max_length: truncation length of sentence-transformers' own ``encode_*`` calls.
        device: torch device (``None``: CUDA when available).

    Returns:
        The model, in eval mode, with ``similarity_fn_name="dot"``.
    """
    require("sentence_transformers", "neural")
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding, SpladePooling, Transformer

    _check_kind(kind)
    document = Transformer(str(mlm_dir), transformer_task="fill-mask", max_seq_length=max_length)
    pooling = SpladePooling(pooling_strategy="max", activation_function="relu")
    if kind == "inference-free":
        weight = None if idf_weights is None else torch.tensor(list(idf_weights), dtype=torch.float32)
        query = SparseStaticEmbedding(tokenizer=document.tokenizer, weight=weight, frozen=True)
        modules: list[Any] = [Router.for_query_document(query_modules=[query], document_modules=[document, pooling])]
    else:
        modules = [document, pooling]
    model = SparseEncoder(modules=modules, device=resolve_device(device), similarity_fn_name="dot")
    model.eval()
    return model


def _document_transformer(model: SparseEncoder) -> Any:
    """The ``Transformer`` module of the document side (first module of the Router's document route)."""
    from sentence_transformers.sparse_encoder.modules import Router

    first = model[0]
    return first.sub_modules["document"][0] if isinstance(first, Router) else first


def _static_embedding(model: SparseEncoder) -> Any | None:
    from sentence_transformers.sparse_encoder.modules import Router

    first = model[0]
    return first.sub_modules["query"][0] if isinstance(first, Router) else None


def _parameter_digest(module: torch.nn.Module) -> str:
    """sha256 of every parameter's float32 bytes, in state-dict order (the siamese query identity)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class SpladeEncoder(NeuralSparseEncoder):
    """Inference-free or siamese SPLADE; implements the ``Encoder`` protocol.

    Build one with :meth:`from_mlm` (a Hugging Face MLM checkpoint), :meth:`from_sparse_encoder`
    (a ``SparseEncoder`` in memory, e.g. after training) or :meth:`load` (a saved directory). The
    torch model is loaded on first use only: an inference-free index answers queries without it.

    Args:
        name: model name recorded in indexes.
        vocabulary: the model's tokenizer vocabulary.
        kind: ``"inference-free"`` or ``"siamese"``.
        options: document encoding options.
        idf: the query-side IDF table (inference-free; ``None`` until :meth:`fit`).
        weights_dir: a ``SparseEncoder.save()`` directory to load from.
        mlm_dir: a masked-LM checkpoint to build the model from (when ``weights_dir`` is ``None``).
        sparse_encoder: the model itself (when already in memory).

    Example:
        >>> encoder = SpladeEncoder.from_mlm(tiny_mlm_dir, kind="inference-free")  # doctest: +SKIP
        >>> encoder.fit(["a wing in a slipstream", "heat transfer in a slab"])  # doctest: +SKIP
        >>> encoder.encode_document(["wing"])[0]  # {'wing': 1.7, 'wings': 0.4, ...}  # doctest: +SKIP
    """

    model_type = "splade"

    def __init__(
        self,
        name: str,
        vocabulary: TokenizerVocabulary,
        *,
        kind: Kind = "inference-free",
        options: EncodingOptions | None = None,
        idf: IdfTable | None = None,
        weights_dir: Path | None = None,
        mlm_dir: Path | None = None,
        sparse_encoder: SparseEncoder | None = None,
    ) -> None:
        _check_kind(kind)
        if weights_dir is None and mlm_dir is None and sparse_encoder is None:
            raise UsageError("a SpladeEncoder needs weights_dir, mlm_dir or sparse_encoder")
        super().__init__(name, vocabulary, options, idf)
        self.kind = kind
        self._weights_dir = weights_dir
        self._mlm_dir = mlm_dir
        self._model = sparse_encoder
        self._doc_model: Any = None
        self._digest: str | None = None
        self._document_digest: str | None = None
        if sparse_encoder is not None:
            self._prepare(sparse_encoder)

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_mlm(
        cls,
        mlm_dir: str | Path,
        *,
        kind: Kind = "inference-free",
        name: str | None = None,
        options: EncodingOptions | None = None,
    ) -> SpladeEncoder:
        """From a local Hugging Face masked-LM checkpoint directory (any BERT-family model).

        Raises:
            ModelNotFoundError: the directory or its ``tokenizer.json`` is missing.
        """
        path = Path(mlm_dir)
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: no config.json; expected a Hugging Face masked-LM checkpoint directory")
        vocabulary = TokenizerVocabulary.from_file(path)
        return cls(name or path.name, vocabulary, kind=kind, options=options, mlm_dir=path)

    @classmethod
    def from_sparse_encoder(
        cls,
        model: SparseEncoder,
        *,
        kind: Kind = "inference-free",
        name: str = "splade",
        options: EncodingOptions | None = None,
        idf: IdfTable | None = None,
    ) -> SpladeEncoder:
        """Wrap a ``SparseEncoder`` already in memory (its document side must be a fill-mask Transformer)."""
        vocabulary = TokenizerVocabulary.from_hf_tokenizer(_document_transformer(model).tokenizer)
        return cls(name, vocabulary, kind=kind, options=options, idf=idf, sparse_encoder=model)

    @classmethod
    def load(cls, directory: str | Path) -> SpladeEncoder:
        """Load a directory written by :meth:`save` (the torch model itself loads on first use).

        Raises:
            ModelNotFoundError: not a saved SPLADE model.
            IndexFormatError: damaged files, or referenced weights that moved or changed.
        """
        directory = Path(directory)
        config, vocabulary, idf, options = load_common(directory, cls.model_type)
        weights_dir = resolve_weights(directory, config["weights"])
        encoder = cls(
            config["name"],
            vocabulary,
            kind=config.get("kind", "inference-free"),
            options=options,
            idf=idf,
            weights_dir=weights_dir,
        )
        encoder._digest = config.get("model_digest")
        encoder.loaded_from = directory.resolve()
        return encoder

    # -- the torch model (lazy) ----------------------------------------------------------------------
    @property
    def sparse_encoder(self) -> SparseEncoder:
        """The sentence-transformers model (loaded on first access)."""
        if self._model is None:
            if self._weights_dir is not None:
                require("sentence_transformers", "neural")
                from sentence_transformers import SparseEncoder

                model = SparseEncoder(
                    str(self._weights_dir), device=resolve_device(self.options.device), local_files_only=True
                )
                model.eval()
            else:
                assert self._mlm_dir is not None
                model = build_sparse_encoder(
                    self._mlm_dir,
                    kind=self.kind,
                    idf_weights=self.idf_weights() if self.idf is not None and self.kind == "inference-free" else None,
                    max_length=self.options.max_length,
                    device=self.options.device,
                )
            self._prepare(model)
            self._model = model
        return self._model

    def _prepare(self, model: SparseEncoder) -> None:
        """Check the model against the vocabulary and options, and sync the query branch's IDF."""
        from sentence_transformers.sparse_encoder.modules import Router

        is_router = isinstance(model[0], Router)
        if is_router != (self.kind == "inference-free"):
            raise ModelNotFoundError(
                f"model {self.name!r}: a {self.kind} SPLADE needs "
                + ("a Router with query and document routes" if self.kind == "inference-free" else "no Router")
            )
        transformer = _document_transformer(model)
        hf_model = transformer.model
        tokenizer = transformer.tokenizer
        if len(tokenizer) != len(self.vocabulary):
            raise ModelNotFoundError(
                f"model {self.name!r}: its tokenizer has {len(tokenizer)} tokens but tokenizer.json has "
                f"{len(self.vocabulary)}; the model directory mixes two vocabularies"
            )
        out_size = hf_model.get_output_embeddings().weight.shape[0]
        if out_size < len(self.vocabulary):
            raise ModelNotFoundError(
                f"model {self.name!r}: the MLM head scores {out_size} tokens but the tokenizer has "
                f"{len(self.vocabulary)}; use the tokenizer the model was trained with"
            )
        window = getattr(hf_model.config, "max_position_embeddings", None)
        if window is not None and self.options.max_length > window:
            raise UsageError(
                f"max_length {self.options.max_length} exceeds model {self.name!r}'s window of {window} tokens"
            )
        if self.kind == "siamese" and self._digest is None:
            self._digest = _parameter_digest(hf_model)
        self._sync_static_weights(model)

    def _sync_static_weights(self, model: SparseEncoder) -> None:
        static = _static_embedding(model)
        if static is not None and self.idf is not None:
            import torch

            with torch.no_grad():
                static.weight.copy_(torch.tensor(self.idf_weights(), dtype=static.weight.dtype))

    def set_idf(self, idf: IdfTable) -> None:
        super().set_idf(idf)
        if self._model is not None:
            self._sync_static_weights(self._model)

    def _document_model(self) -> Any:
        """The HF masked-LM used by the fast document path (a bfloat16 copy when asked)."""
        if self._doc_model is None:
            import copy

            import torch

            hf_model = _document_transformer(self.sparse_encoder).model
            if self.options.precision == "bfloat16":
                hf_model = copy.deepcopy(hf_model).to(torch.bfloat16)
            hf_model.eval()
            self._doc_model = hf_model
        return self._doc_model

    # -- documents -----------------------------------------------------------------------------------
    def _split_passages(self, texts: list[str]) -> list[tuple[int, list[int]]]:
        if not texts:
            return []
        tokenizer = _document_transformer(self.sparse_encoder).tokenizer
        encoded = tokenizer(
            texts,
            truncation=True,
            max_length=self.options.max_length,
            stride=self.options.passage_overlap,
            return_overflowing_tokens=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [
            (row, ids)
            for row, ids, special in zip(
                encoded["overflow_to_sample_mapping"],
                encoded["input_ids"],
                encoded["special_tokens_mask"],
                strict=True,
            )
            if len(special) > sum(special)  # a passage of special tokens only: the text had no token
        ]

    def _forward(self, passages: list[list[int]]) -> torch.Tensor:
        import torch

        model = self._document_model()
        device = next(model.parameters()).device
        pad = _document_transformer(self.sparse_encoder).tokenizer.pad_token_id or 0
        length = max(len(p) for p in passages)
        input_ids = torch.full((len(passages), length), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(passages), length), dtype=torch.long)
        for i, ids in enumerate(passages):
            input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, : len(ids)] = 1
        attention_mask = attention_mask.to(device)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask).logits
        return splade_max_pool(logits, attention_mask)

    def encode_document_reference(self, texts: Sequence[str], batch_size: int = 32) -> list[SparseVector]:
        """sentence-transformers' own path: ``SparseEncoder.encode_document`` + ``decode``.

        Truncates every document at ``max_length`` (no passages); special tokens are removed and the
        pruning options applied like in the fast path. The baseline of ``bench/encode_speed.py``.
        """
        model = self.sparse_encoder
        texts = [clean_text(t) for t in texts]
        embeddings = model.encode_document(
            texts, batch_size=batch_size, convert_to_tensor=True, convert_to_sparse_tensor=True, save_to_cpu=True
        )
        special = self.vocabulary.special_tokens
        vectors = []
        for text, decoded in zip(texts, model.decode(embeddings), strict=True):
            if not self.vocabulary.tokenize(text):
                vectors.append({})
                continue
            pairs = [(t, w) for t, w in decoded if t not in special and w > 0 and w >= self.options.min_weight]
            if self.options.max_active_dims is not None:
                pairs = pairs[: self.options.max_active_dims]  # decode() sorts by weight, descending
            vectors.append(dict(pairs))
        return vectors

    def document_digest(self) -> str:
        """sha256 of the document MLM's float32 parameters (cached; loads the model)."""
        if self._document_digest is None:
            self._document_digest = _parameter_digest(_document_transformer(self.sparse_encoder).model)
        return self._document_digest

    # -- queries -------------------------------------------------------------------------------------
    def _query_identity(self) -> dict[str, object]:
        if self.kind == "siamese":
            if self._digest is None:
                self.sparse_encoder  # noqa: B018 - loading the model computes the digest
            return {"query": "siamese", "model": self._digest, "max_length": self.options.max_length}
        return super()._query_identity()

    @property
    def is_fitted(self) -> bool:
        return self.kind == "siamese" or self.idf is not None

    def encode_query(self, text: str) -> EncodedQuery:
        """Inference-free: IDF-weighted distinct tokens (no model call). Siamese: the MLM encoder."""
        if self.kind == "inference-free":
            return super().encode_query(text)
        model = self.sparse_encoder
        embedding = model.encode_query(clean_text(text), convert_to_tensor=True, convert_to_sparse_tensor=True)
        special = self.vocabulary.special_tokens
        weights = {token: weight for token, weight in model.decode(embedding) if token not in special and weight > 0}
        return EncodedQuery(weights=weights, encoder=self.fingerprint, text=text)

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write config, tokenizer, IDF table and weights (copied when small, else referenced)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / WEIGHTS_DIR
        if self._model is None and self._weights_dir is not None:  # files on disk are current
            entry = weights_entry(self._weights_dir, directory, WEIGHTS_DIR, directory_bytes(self._weights_dir))
            if entry["copied"] and self._weights_dir.resolve() != target.resolve():
                link_or_copy_tree(self._weights_dir, target)
        else:
            model = self.sparse_encoder
            size = sum(p.numel() * p.element_size() for p in model.parameters())
            if size > COPY_LIMIT_BYTES and self._weights_dir is not None:
                entry = weights_entry(self._weights_dir, directory, WEIGHTS_DIR, size)
            else:
                model.save(str(target), create_model_card=False)
                entry = {"path": WEIGHTS_DIR, "copied": True}
        extra: dict[str, object] = {"kind": self.kind, "weights": entry}
        if self._digest is not None:
            extra["model_digest"] = self._digest
        self._save_common(directory, extra)
        if entry["copied"]:
            write_sentence_transformers_root(directory, WEIGHTS_DIR)


def write_sentence_transformers_root(directory: Path, weights_dir: str) -> None:
    """Make ``SparseEncoder(directory)`` load the model saved in ``directory/weights_dir``.

    Writes ``modules.json`` (the saved modules, their paths prefixed with ``weights_dir``) and
    ``config_sentence_transformers.json`` at the root; ``config.json`` stays sparsearch's own (the
    modules read theirs from ``weights_dir``), and sparsearch itself reads the root ``config.json``
    first, so both tools load the same folder.
    """
    import json

    source = directory / weights_dir
    modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    for module in modules:
        module["path"] = f"{weights_dir}/{module['path']}".rstrip("/")
    (directory / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    settings = source / "config_sentence_transformers.json"
    if settings.is_file():
        (directory / settings.name).write_text(settings.read_text(encoding="utf-8"), encoding="utf-8")


def load_huggingface_checkpoint(path: str | Path, kind: Kind = "inference-free") -> NeuralSparseEncoder:
    """An encoder over a plain Hugging Face checkpoint directory, chosen by its architecture.

    ``*ForMaskedLM`` -> :class:`SpladeEncoder` of ``kind``; ``*ForCausalLM`` -> echo
    :class:`~sparsearch.encoders.llm_splade.EchoSpladeEncoder`. Both need an IDF table, fitted on the
    corpus when indexing.

    Raises:
        ModelNotFoundError: another architecture (e.g. a bare ``BertModel`` without an MLM head).
    """
    import json

    path = Path(path)
    try:
        architectures = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(f"{path / 'config.json'}: unreadable ({error})") from error
    if any(str(a).endswith("ForMaskedLM") for a in architectures):
        return SpladeEncoder.from_mlm(path, kind=kind)
    if any(str(a).endswith("ForCausalLM") for a in architectures):
        from sparsearch.encoders.llm_splade import EchoSpladeEncoder

        return EchoSpladeEncoder.from_causal_lm(path)
    raise ModelNotFoundError(
        f"{path}: architecture {', '.join(map(str, architectures)) or 'unknown'} has no vocabulary head; "
        "sparsearch needs a masked LM (e.g. BertForMaskedLM) or a causal LM. "
        "For all-MiniLM-L6-v2 use --model minilm-splade-untrained"
    )
