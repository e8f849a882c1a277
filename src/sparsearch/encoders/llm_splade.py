"""LLM-based SPLADE with echo embeddings (Mistral-SPLADE; docs/method.md#echo-llm-splade).

A decoder-only model sees a token only after it: the first position of a passage knows nothing of
the rest. "Echo" feeds the passage twice and reads only the second copy, where every position has
seen the whole passage ("Repetition Improves Language Model Embeddings")::

    [BOS] prefix  passage  middle  passage
                                   ^^^^^^^ pooled positions

The LM head turns each pooled position's hidden state into vocabulary logits, and the SPLADE
activation and max pooling follow (sentence-transformers' ``SpladePooling``), so a document becomes a
sparse map over the LLM's own vocabulary. Queries stay inference-free: IDF weights over the same
tokenizer (fit on the target corpus). Logits are taken from the LM head as is (no final
soft-capping, which Mistral, Llama and Qwen do not use).

**Backbone.** Any local Hugging Face causal-LM directory (``config.json`` with a ``*ForCausalLM``
architecture, weights, ``tokenizer.json``): Mistral, Llama, Qwen ... Point the encoder at it::

    from sparsearch.encoders.llm_splade import EchoSpladeEncoder
    from sparsearch.encoders.neural import EncodingOptions

    encoder = EchoSpladeEncoder.from_causal_lm(
        "/models/Mistral-7B-v0.1", options=EncodingOptions(precision="bfloat16", device="cuda")
    )
    lora = encoder.add_lora(r=16)        # peft model; train it, then encoder.save(path)

or from the command line ``sparsearch index --model /models/Mistral-7B-v0.1`` (a causal LM
directory is recognised from its ``config.json``). Echo doubles the encoding cost and a 7B model
needs a GPU; this is out of scope for CPU-only indexing (docs/method.md#echo-llm-splade) but works end to end on
tiny models (tests).

**Training.** :meth:`EchoSpladeEncoder.add_lora` wraps the backbone with LoRA adapters (peft);
:meth:`EchoSpladeEncoder.forward_passages` is differentiable (call it outside ``inference_mode``).
:meth:`save` writes the adapters next to the config and copies the backbone when it is at most
1 GiB, else references it by path (the backbone weights never change under LoRA).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsearch._files import directory_bytes
from sparsearch.encoders.idf import IdfTable
from sparsearch.encoders.neural import (
    EncodingOptions,
    NeuralSparseEncoder,
    link_or_copy_tree,
    load_common,
    resolve_device,
    resolve_weights,
    weights_entry,
)
from sparsearch.encoders.vocabulary import TokenizerVocabulary
from sparsearch.errors import ModelNotFoundError, UsageError, require

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

log = logging.getLogger(__name__)

BACKBONE_DIR = "backbone"
ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class EchoTemplate:
    """The text around the two copies: ``prefix + passage + middle + passage``."""

    prefix: str = "Passage: "
    middle: str = "\nThe same passage again: "


class EchoSpladeEncoder(NeuralSparseEncoder):
    """Echo SPLADE over a causal LM; implements the ``Encoder`` protocol (inference-free queries).

    Args:
        name: model name recorded in indexes.
        vocabulary: the LLM's tokenizer vocabulary.
        backbone_dir: the causal-LM checkpoint directory.
        adapter_dir: a peft LoRA adapter directory to apply (``None``: the plain backbone).
        options: document encoding options (``max_length`` counts the tokens of one copy).
        idf: the query-side IDF table (``None`` until :meth:`fit`).
        template: the echo template.
    """

    model_type = "llm-splade"

    def __init__(
        self,
        name: str,
        vocabulary: TokenizerVocabulary,
        *,
        backbone_dir: Path,
        adapter_dir: Path | None = None,
        options: EncodingOptions | None = None,
        idf: IdfTable | None = None,
        template: EchoTemplate | None = None,
    ) -> None:
        super().__init__(name, vocabulary, options, idf)
        self.backbone_dir = backbone_dir
        self.adapter_dir = adapter_dir
        self.template = template or EchoTemplate()
        self._model: Any = None
        self._tokenizer: Any = None
        self._pooling: Any = None
        self._template_ids: tuple[list[int], list[int], list[int]] | None = None

    @classmethod
    def from_causal_lm(
        cls,
        backbone_dir: str | Path,
        *,
        name: str | None = None,
        options: EncodingOptions | None = None,
        template: EchoTemplate | None = None,
    ) -> EchoSpladeEncoder:
        """From a local Hugging Face causal-LM directory (loaded on first use).

        ``options`` defaults to :class:`EncodingOptions` with ``precision="bfloat16"``: a 7B model
        takes 28 GB in float32.

        Raises:
            ModelNotFoundError: no ``config.json`` or ``tokenizer.json`` there.
        """
        path = Path(backbone_dir)
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: no config.json; expected a Hugging Face causal-LM checkpoint directory")
        return cls(
            name or path.name,
            TokenizerVocabulary.from_file(path),
            backbone_dir=path,
            options=options or EncodingOptions(precision="bfloat16"),
            template=template,
        )

    @classmethod
    def load(cls, directory: str | Path) -> EchoSpladeEncoder:
        """Load a directory written by :meth:`save`.

        Raises:
            ModelNotFoundError: not a saved echo SPLADE model.
            IndexFormatError: damaged files, or a referenced backbone that moved or changed.
        """
        directory = Path(directory)
        config, vocabulary, idf, options = load_common(directory, cls.model_type)
        backbone = resolve_weights(directory, config["backbone"])
        adapter = directory / config["adapter"] if config.get("adapter") else None
        encoder = cls(
            config["name"],
            vocabulary,
            backbone_dir=backbone,
            adapter_dir=adapter,
            options=options,
            idf=idf,
            template=EchoTemplate(**config.get("template", {})),
        )
        encoder.loaded_from = directory.resolve()
        return encoder

    # -- the torch model (lazy) ----------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The causal LM (a peft model once adapters are added or loaded), loaded on first access."""
        if self._model is None:
            require("transformers", "neural")
            import torch
            from transformers import AutoModelForCausalLM

            dtype = torch.bfloat16 if self.options.precision == "bfloat16" else torch.float32
            model = AutoModelForCausalLM.from_pretrained(str(self.backbone_dir), dtype=dtype)
            if self.adapter_dir is not None:
                peft = require("peft", "train")
                model = peft.PeftModel.from_pretrained(model, str(self.adapter_dir))
            model.to(resolve_device(self.options.device))
            model.eval()
            self._check(model)
            self._model = model
        return self._model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.backbone_dir))
        return self._tokenizer

    def _causal_lm(self) -> Any:
        """The underlying ``*ForCausalLM`` (inside a peft wrapper, with its LoRA layers injected)."""
        model = self.model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def _check(self, model: Any) -> None:
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        out_size = causal_lm.get_output_embeddings().weight.shape[0]
        if out_size < len(self.vocabulary):
            raise ModelNotFoundError(
                f"model {self.name!r}: the LM head scores {out_size} tokens but the tokenizer has "
                f"{len(self.vocabulary)}; use the tokenizer the model was trained with"
            )
        window = getattr(causal_lm.config, "max_position_embeddings", None)
        prefix, middle, bos = self._template()
        needed = 2 * self.options.max_length + len(prefix) + len(middle) + len(bos)
        if window is not None and needed > window:
            fits = (window - needed) // 2 + self.options.max_length
            raise UsageError(
                f"echo needs {needed} positions for max_length {self.options.max_length} but model "
                f"{self.name!r} has a window of {window}; lower max_length to {fits}"
            )

    def _template(self) -> tuple[list[int], list[int], list[int]]:
        """Token ids of the prefix, the middle and the BOS token (empty when the model has none)."""
        if self._template_ids is None:
            prefix, middle = self.vocabulary.encode_ids([self.template.prefix, self.template.middle])
            bos_id = self.tokenizer.bos_token_id
            self._template_ids = (prefix, middle, [] if bos_id is None else [bos_id])
        return self._template_ids

    def add_lora(
        self,
        r: int = 16,
        alpha: int = 32,
        dropout: float = 0.05,
        target_modules: list[str] | str | None = None,
    ) -> Any:
        """Wrap the backbone with LoRA adapters (peft) for training; returns the peft model.

        Args:
            r: adapter rank.
            alpha: LoRA scaling numerator (scale = alpha / r).
            dropout: dropout on the adapter input.
            target_modules: module names to adapt (``None``: peft's default for the architecture,
                e.g. ``q_proj``/``v_proj`` for Llama and Mistral).
        """
        peft = require("peft", "train")
        if self.adapter_dir is not None or hasattr(self.model, "get_base_model"):
            raise UsageError(f"model {self.name!r} already has LoRA adapters")
        config = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules)
        self._model = peft.get_peft_model(self.model, config)
        return self._model

    def document_digest(self) -> str:
        """The backbone's files (names and sizes: hashing billions of weights would take minutes), the
        adapter weights when LoRA is on, and the echo template."""
        import hashlib

        from sparsearch.encoders.neural import file_sizes
        from sparsearch.types import stable_hash

        adapter = hashlib.sha256()
        for name, tensor in self.model.state_dict().items():
            if "lora_" in name:
                adapter.update(name.encode())
                adapter.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return stable_hash(
            {
                "backbone": file_sizes(self.backbone_dir),
                "adapter": adapter.hexdigest(),
                "template": asdict(self.template),
            }
        )

    # -- documents -----------------------------------------------------------------------------------
    def _split_passages(self, texts: list[str]) -> list[tuple[int, list[int]]]:
        """Windows of ``max_length`` content tokens sharing ``passage_overlap`` tokens (echo is added later)."""
        size, overlap = self.options.max_length, self.options.passage_overlap
        step = size - overlap
        passages = []
        for row, ids in enumerate(self.vocabulary.encode_ids(texts)):
            for start in range(0, max(len(ids) - overlap, 1), step):
                window = ids[start : start + size]
                if window:
                    passages.append((row, window))
        return passages

    def forward_passages(self, passages: list[list[int]]) -> torch.Tensor:
        """(B, V) SPLADE weights of passages (content token ids, unpadded); differentiable.

        Builds ``[BOS] prefix p middle p`` per passage (right padding), runs the decoder once, gathers
        the hidden states of the second copy, applies the LM head to those positions only and pools
        them with ``SpladePooling`` (log(1 + ReLU), max).
        """
        import torch

        if self._pooling is None:
            from sentence_transformers.sparse_encoder.modules import SpladePooling

            self._pooling = SpladePooling(pooling_strategy="max", activation_function="relu")
        causal_lm = self._causal_lm()
        device = causal_lm.get_output_embeddings().weight.device
        prefix, middle, bos = self._template()
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        lengths = [len(p) for p in passages]
        sequences = [bos + prefix + p + middle + p for p in passages]
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(passages), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(passages), width), dtype=torch.long)
        for i, sequence in enumerate(sequences):
            input_ids[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            attention_mask[i, : len(sequence)] = 1
        hidden = causal_lm.get_decoder()(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)
        ).last_hidden_state  # (B, width, H)
        n_max = max(lengths)
        starts = torch.tensor([len(s) - n for s, n in zip(sequences, lengths, strict=True)], dtype=torch.long)
        offsets = torch.arange(n_max, dtype=torch.long)
        positions = (starts[:, None] + offsets[None, :]).clamp(max=width - 1).to(device)  # (B, n_max)
        second = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        mask = (offsets[None, :] < torch.tensor(lengths)[:, None]).long().to(device)
        logits = causal_lm.get_output_embeddings()(second)  # (B, n_max, V')
        self._pooling.train(torch.is_grad_enabled())  # eval mode pools in place, which autograd cannot undo
        features = self._pooling({"token_embeddings": logits, "attention_mask": mask})
        return features["sentence_embedding"].float()

    def _forward(self, passages: list[list[int]]) -> torch.Tensor:
        return self.forward_passages(passages)

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write config, tokenizer, IDF table, LoRA adapters, and the backbone (copied when <= 1 GiB)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        backbone = weights_entry(self.backbone_dir, directory, BACKBONE_DIR, directory_bytes(self.backbone_dir))
        if backbone["copied"] and self.backbone_dir.resolve() != (directory / BACKBONE_DIR).resolve():
            link_or_copy_tree(self.backbone_dir, directory / BACKBONE_DIR)
        adapter: str | None = None
        if self._model is not None and hasattr(self._model, "get_base_model"):
            self._model.save_pretrained(str(directory / ADAPTER_DIR))
            adapter = ADAPTER_DIR
        elif self.adapter_dir is not None:
            if self.adapter_dir.resolve() != (directory / ADAPTER_DIR).resolve():
                link_or_copy_tree(self.adapter_dir, directory / ADAPTER_DIR)
            adapter = ADAPTER_DIR
        self._save_common(directory, {"backbone": backbone, "adapter": adapter, "template": asdict(self.template)})


def causal_lm_config(path: Path) -> dict[str, Any] | None:
    """The Hugging Face ``config.json`` of ``path`` when it describes a causal LM, else ``None``."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    architectures = config.get("architectures") or []
    return config if any(str(a).endswith("ForCausalLM") for a in architectures) else None
