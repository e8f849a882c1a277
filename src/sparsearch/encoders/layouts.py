"""Which kind of model a ``--model`` directory holds, read from its files (never from its name).

:func:`detect_layout` reads only JSON files (no torch) and returns a :class:`Layout` that says what
the folder is and which files decided it; the registry then builds the matching encoder. The rules,
in order:

1. ``config.json`` with a ``"type"``: a model saved by sparsearch (``"sparsearch"``).
2. ``modules.json``: a sentence-transformers model.

   * ``[Transformer (fill-mask) | MLMTransformer, SpladePooling]`` -> ``"st-siamese"``: SPLADE on
     both sides (the naver/splade-v3 layout); queries run the model.
   * one ``Router`` whose ``query`` route is ``[SparseStaticEmbedding]`` and ``document`` route is
     ``[Transformer (fill-mask), SpladePooling]`` -> ``"st-inference-free"``; the query weights are the
     ``SparseStaticEmbedding``'s own.
   * anything else is refused with the reason: a dense model (``Pooling``), a CSR model
     (``SparseAutoEncoder``: latent dimensions, not tokens), a Router with a model on the query
     side, a ``SpladePooling`` that is not max pooling with ReLU.

3. ``config.json`` with a ``*ForMaskedLM`` architecture and an ``idf.json`` of ``token -> weight``:
   an OpenSearch doc-only model (``"opensearch-doc-only"``): inference-free with those weights.
4. ``config.json`` with a ``*ForMaskedLM`` architecture: ``"masked-lm"`` (the kind, siamese or
   inference-free, is the caller's choice); ``*ForCausalLM``: ``"causal-lm"`` (echo LLM SPLADE).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sparsearch.errors import ModelNotFoundError

LayoutName = Literal["sparsearch", "st-siamese", "st-inference-free", "opensearch-doc-only", "masked-lm", "causal-lm"]

_TRANSFORMERS = ("Transformer", "MLMTransformer")


class UnsupportedModelError(ModelNotFoundError):
    """A model directory whose layout is recognised but cannot be served right; the message says why."""


@dataclass(frozen=True)
class Layout:
    """What a model directory holds.

    Attributes:
        name: the layout (see the module docstring).
        path: the model directory.
        reason: the files that decided, in words (shown by the CLI and in errors).
        document_dir: the Hugging Face masked-LM directory of the document side (its
            ``tokenizer.json`` is the vocabulary); ``None`` for ``"sparsearch"``.
        query_weights_file: ``st-inference-free``: the ``SparseStaticEmbedding``'s safetensors
            file, a (V,) float vector; ``opensearch-doc-only``: the ``idf.json``; else ``None``.
    """

    name: LayoutName
    path: Path
    reason: str
    document_dir: Path | None = None
    query_weights_file: Path | None = None


def _read_json(path: Path) -> Any:  # noqa: ANN401 - any JSON value
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(f"{path}: unreadable ({error})") from error


def _class_name(type_path: str) -> str:
    """``sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling`` -> ``SpladePooling``."""
    return str(type_path).rsplit(".", 1)[-1]


def _architectures(directory: Path) -> list[str]:
    config_file = directory / "config.json"
    if not config_file.is_file():
        return []
    config = _read_json(config_file)
    return [str(a) for a in config.get("architectures") or []] if isinstance(config, dict) else []


def _is_masked_lm(directory: Path, class_name: str) -> bool:
    if class_name == "MLMTransformer":
        return True
    settings_file = directory / "sentence_bert_config.json"
    if settings_file.is_file() and _read_json(settings_file).get("transformer_task") == "fill-mask":
        return True
    return any(a.endswith("ForMaskedLM") for a in _architectures(directory))


def _check_splade_route(path: Path, route: list[tuple[str, Path]], where: str) -> Path:
    """The masked-LM directory of a ``[Transformer (fill-mask), SpladePooling]`` route, or a refusal."""
    names = [name for name, _ in route]
    if "SparseAutoEncoder" in names:
        raise UnsupportedModelError(
            f"{path}: a CSR model ({where}: {' + '.join(names)}); its dimensions are learned latent features, "
            "not vocabulary tokens, so its vectors cannot be explained or searched as token weights. "
            "Use a SPLADE model (masked LM + SpladePooling)"
        )
    if "Pooling" in names or "Normalize" in names:
        raise UnsupportedModelError(
            f"{path}: a dense sentence-transformers model ({where}: {' + '.join(names)}); it has no vocabulary "
            "head, so it gives no token weights. Use a SPLADE model, or --model minilm-splade-untrained to start "
            "one from MiniLM"
        )
    if len(route) != 2 or names[0] not in _TRANSFORMERS or names[1] != "SpladePooling":
        raise UnsupportedModelError(
            f"{path}: {where} is {' + '.join(names) or 'empty'}; sparsearch serves a masked LM followed by "
            "SpladePooling"
        )
    transformer_dir, pooling_dir = route[0][1], route[1][1]
    if not _is_masked_lm(transformer_dir, names[0]):
        raise UnsupportedModelError(
            f"{path}: the {where} Transformer at {transformer_dir} is not a masked LM (no fill-mask task, no "
            "*ForMaskedLM architecture), so SpladePooling has no vocabulary logits to pool"
        )
    pooling = _read_json(pooling_dir / "config.json") if (pooling_dir / "config.json").is_file() else {}
    strategy, activation = pooling.get("pooling_strategy", "max"), pooling.get("activation_function", "relu")
    if (strategy, activation) != ("max", "relu"):
        raise UnsupportedModelError(
            f"{path}: SpladePooling(pooling_strategy={strategy!r}, activation_function={activation!r}); "
            "sparsearch encodes documents with max pooling of log(1 + ReLU) only"
        )
    return transformer_dir


def _sentence_transformers_layout(path: Path) -> Layout:
    modules = _read_json(path / "modules.json")
    if not isinstance(modules, list) or not modules:
        raise ModelNotFoundError(f"{path / 'modules.json'}: expected a non-empty list of modules")
    route = [(_class_name(m.get("type", "")), path / m.get("path", "")) for m in modules]
    if len(route) == 1 and route[0][0] == "Router":
        return _router_layout(path)
    if "Router" in [name for name, _ in route]:
        raise UnsupportedModelError(
            f"{path}: a Router followed by other modules ({route}); not a layout sparsearch knows"
        )
    document_dir = _check_splade_route(path, route, "modules.json")
    return Layout(
        "st-siamese",
        path,
        "sentence-transformers modules.json: masked LM + SpladePooling on both sides (siamese SPLADE)",
        document_dir=document_dir,
    )


def _router_layout(path: Path) -> Layout:
    config_file = path / "router_config.json"
    if not config_file.is_file():
        raise ModelNotFoundError(f"{path}: modules.json names a Router but router_config.json is missing")
    config = _read_json(config_file)
    structure, types = config.get("structure", {}), config.get("types", {})
    if set(structure) != {"query", "document"}:
        raise UnsupportedModelError(
            f"{path}: a Router with routes {sorted(structure)}; sparsearch needs exactly 'query' and 'document'"
        )

    def route(name: str) -> list[tuple[str, Path]]:
        return [(_class_name(types.get(module, module)), path / module) for module in structure[name]]

    query, document = route("query"), route("document")
    document_dir = _check_splade_route(path, document, "the document route")
    if [name for name, _ in query] != ["SparseStaticEmbedding"]:
        raise UnsupportedModelError(
            f"{path}: the Router's query route is {' + '.join(n for n, _ in query)}; sparsearch serves a Router "
            "only with an inference-free query side (a SparseStaticEmbedding). For a model on both sides save it "
            "without a Router (siamese)"
        )
    weights = query[0][1] / "model.safetensors"
    if not weights.is_file():
        raise ModelNotFoundError(f"{path}: the SparseStaticEmbedding weights {weights} are missing")
    return Layout(
        "st-inference-free",
        path,
        "sentence-transformers Router: SparseStaticEmbedding queries, masked LM + SpladePooling documents "
        "(inference-free SPLADE; the query weights are the model's own)",
        document_dir=document_dir,
        query_weights_file=weights,
    )


def _is_token_weights(path: Path) -> bool:
    """An OpenSearch ``idf.json`` (``{token: weight}``), not sparsearch's own (``{"df": ..., "n_docs": ...}``)."""
    data = _read_json(path)
    return (
        isinstance(data, dict)
        and bool(data)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in data.values())
    )


def detect_layout(path: str | Path) -> Layout:
    """Say which layout the model directory ``path`` holds, and why.

    Args:
        path: a model directory.

    Returns:
        The layout, with the files that decided it.

    Raises:
        UnsupportedModelError: a known layout that sparsearch cannot serve right (the message says why).
        ModelNotFoundError: no model files, or files of no known layout.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not path.is_dir():
        raise ModelNotFoundError(f"{path}: no such model directory")
    config = _read_json(config_file) if config_file.is_file() else {}
    if isinstance(config, dict) and config.get("type"):
        return Layout("sparsearch", path, f"config.json type {config['type']!r} (saved by sparsearch)")
    if (path / "modules.json").is_file():
        return _sentence_transformers_layout(path)
    architectures = _architectures(path)
    if any(a.endswith("ForMaskedLM") for a in architectures):
        idf_file = path / "idf.json"
        if idf_file.is_file() and _is_token_weights(idf_file):
            return Layout(
                "opensearch-doc-only",
                path,
                f"{architectures[0]} config.json + idf.json of token -> weight (OpenSearch doc-only model)",
                document_dir=path,
                query_weights_file=idf_file,
            )
        return Layout("masked-lm", path, f"{architectures[0]} config.json, no modules.json", document_dir=path)
    if any(a.endswith("ForCausalLM") for a in architectures):
        return Layout("causal-lm", path, f"{architectures[0]} config.json (echo LLM SPLADE)", document_dir=path)
    if not config_file.is_file():
        raise ModelNotFoundError(
            f"{path}: no config.json or modules.json; expected a saved model, a sentence-transformers "
            "SparseEncoder folder or a Hugging Face *ForMaskedLM checkpoint"
        )
    raise UnsupportedModelError(
        f"{path}: architecture {', '.join(architectures) or 'unknown'} has no vocabulary head; sparsearch needs "
        "a masked LM (e.g. BertForMaskedLM) or a causal LM. For all-MiniLM-L6-v2 use --model minilm-splade-untrained"
    )
