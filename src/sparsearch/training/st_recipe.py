"""The inference-free SPLADE recipe on sentence-transformers' ``SparseEncoderTrainer``.

Geng et al. (2024, arXiv:2411.04403) on the library users train with: a SPLADE student
(:func:`build_student`: inference-free ``Router`` or siamese), heterogeneous ensemble distillation
inside ``SpladeLoss`` with the IDF-aware FLOPS document regulariser (:func:`build_loss`,
:mod:`sparsearch.training.st_losses`), and ``SparseEncoderTrainingArguments`` that run on CPU in
fp32 and on GPUs in bf16 (accelerate places the model; :func:`training_arguments`). The data side
reads MS MARCO-style files (:func:`read_id_texts`, :func:`read_candidates`) and builds the trainer's
dataset (:func:`build_dataset`). ``scripts/train_splade_msmarco.py`` runs it all; formats, command
and GPU notes are in docs/models-and-training.md#training-with-sentence-transformers.

The saved folder is a plain ``SparseEncoder`` folder: ``SparseEncoder(path)`` loads it, and so does
``sparsearch index --model PATH`` (layouts ``st-inference-free`` / ``st-siamese``).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sparsearch.errors import UsageError, require

log = logging.getLogger(__name__)

TEACHERS: tuple[str, ...] = ("dense", "bm25")


class RecipeConfig(BaseModel):
    """Hyperparameters of the sentence-transformers recipe (paper symbols in the descriptions).

    Defaults are starting points for a MiniLM/BERT-base student on one GPU, taken where stated from
    the paper authors' public fine-tuning sample (opensearch-sparse-model-tuning-sample,
    ``configs/config_kd.yaml``: lr 2e-5, weight decay 0.01, λ_d 2e-3, score scale 30); they have not
    been tuned or run here on MS MARCO.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["inference-free", "siamese"] = "inference-free"
    base_model: Path | None = Field(None, description="a local *ForMaskedLM folder (default: minilm-splade-untrained)")
    max_length: int = Field(256, ge=8, description="tokens per query/passage (MS MARCO passages are ~80)")
    candidates_per_query: int = Field(8, ge=2, description="n: the file's first candidate plus n-1 sampled others")
    teacher_weights: dict[str, float] = Field(default_factory=lambda: {"dense": 0.5, "bm25": 0.5}, description="w_k")
    teacher_scale: float = Field(30.0, gt=0, description="S (the authors' sample config uses 30)")
    temperature: float = Field(1.0, gt=0, description="τ")
    document_regularizer_weight: float = Field(2e-3, ge=0, description="λ_d (authors' sample config: 0.002)")
    query_regularizer_weight: float = Field(2e-3, ge=0, description="λ_q, siamese only")
    l0_threshold: int | None = Field(None, ge=0, description="ℓ0 mask τ: documents at most this dense skip FLOPS")
    regularizer_ramp_fraction: float = Field(0.3, gt=0, le=1, description="T: quadratic warm-up of λ, share of steps")
    batch_size: int = Field(32, ge=1, description="queries per device per step (each with n candidates)")
    learning_rate: float = Field(2e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="linear learning-rate warm-up, share of steps")
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 where CUDA supports it")
    seed: int = 13
    logging_steps: int = Field(100, ge=1)
    save_steps: int = Field(0, ge=0, description="checkpoint every this many steps (0: only the final model)")


@dataclass
class CandidateList:
    """One query's candidates (a line of the candidates file).

    Attributes:
        qid: the query id (a row of ``queries.tsv``).
        pids: candidate passage ids (rows of ``collection.tsv``); ``pids[0]`` is kept in every
            training example (put the judged positive there).
        scores: teacher name -> raw scores aligned with ``pids``; ``None`` until scored.
    """

    qid: str
    pids: list[str]
    scores: dict[str, list[float]] | None = None


# -- reading MS MARCO-style files ----------------------------------------------------------------------
def read_id_texts(path: Path) -> Iterator[tuple[str, str]]:
    """``id<TAB>text`` lines (``collection.tsv``, ``queries.tsv``), streamed.

    Raises:
        UsageError: a missing file, or a line without a tab (the message names file and line).
    """
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            doc_id, tab, text = line.partition("\t")
            if not tab:
                raise UsageError(f"{path}:{number}: expected 'id<TAB>text'")
            yield doc_id, text


def read_candidates(path: Path) -> list[CandidateList]:
    """The candidates file: JSONL, ``{"qid": str, "pids": [str, ...], "scores": {teacher: [float, ...]}}``.

    ``scores`` is optional (see :func:`score_candidates`); when present, every list has one score per
    pid. Ids may be JSON numbers; they are read as strings.

    Raises:
        UsageError: a malformed line (the message names file, line and field).
    """
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except ValueError as error:
                raise UsageError(f"{where}: not JSON ({error})") from None
            if not isinstance(data, dict) or "qid" not in data or not isinstance(data.get("pids"), list):
                raise UsageError(f"{where}: expected an object with 'qid' and a list 'pids'")
            pids = [str(p) for p in data["pids"]]
            scores = data.get("scores")
            if scores is not None:
                if not isinstance(scores, dict) or not all(
                    isinstance(v, list) and len(v) == len(pids) for v in scores.values()
                ):
                    raise UsageError(f"{where}: 'scores' must map each teacher to {len(pids)} numbers (one per pid)")
                scores = {name: [float(x) for x in values] for name, values in scores.items()}
            rows.append(CandidateList(str(data["qid"]), pids, scores))
    return rows


def select_texts(pairs: Iterable[tuple[str, str]], wanted: set[str]) -> dict[str, str]:
    """``id -> text`` for the ids in ``wanted`` (one pass; the rest of the file is not kept)."""
    return {doc_id: text for doc_id, text in pairs if doc_id in wanted}


# -- teachers and IDF ----------------------------------------------------------------------------------
def score_candidates(
    rows: Sequence[CandidateList],
    queries: Mapping[str, str],
    passages: Mapping[str, str],
    collection: Iterable[str],
    chunk: int = 1024,
) -> None:
    """Fill ``rows[i].scores`` with our two teachers (word BM25 fitted on ``collection``, MiniLM cosine).

    Args:
        rows: candidate lists without scores (changed in place).
        queries, passages: id -> text for every qid and pid in ``rows``.
        collection: every passage text, for BM25's statistics (streamed once).
        chunk: queries scored per call (bounds memory).
    """
    from sparsearch.encoders.bm25 import bm25_words
    from sparsearch.training.teachers import score_candidates as score

    bm25 = bm25_words()
    bm25.fit(collection)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        scores = score(bm25, [queries[r.qid] for r in part], [[passages[p] for p in r.pids] for r in part])
        for i, row in enumerate(part):
            row.scores = {name: values[i] for name, values in scores.items()}
        log.info("teacher scores: %d / %d queries", min(start + chunk, len(rows)), len(rows))


def fit_idf_weights(mlm_dir: Path, texts: Iterable[str]) -> list[float]:
    """(V,) IDF of every term id of ``mlm_dir``'s tokenizer over ``texts`` (0 for special tokens).

    The same table sparsearch fits at indexing time (docs/method.md#idf-query-weights).
    """
    from sparsearch.encoders.splade import SpladeEncoder

    encoder = SpladeEncoder.from_mlm(mlm_dir, kind="inference-free")
    encoder.fit(texts)
    return encoder.idf_weights()


# -- dataset, student, loss, arguments -----------------------------------------------------------------
def candidate_columns(n: int) -> list[str]:
    """Dataset column names of the n candidates: ``doc_1`` ... ``doc_n``."""
    return [f"doc_{i}" for i in range(1, n + 1)]


def build_dataset(
    rows: Sequence[CandidateList],
    queries: Mapping[str, str],
    passages: Mapping[str, str],
    config: RecipeConfig,
    teachers: Sequence[str] = TEACHERS,
) -> Any:  # noqa: ANN401 - a datasets.Dataset
    """The trainer's dataset: ``query``, ``doc_1`` ... ``doc_n``, ``label`` (n_teachers, n) raw scores.

    Each row keeps ``pids[0]`` and samples n-1 of the other candidates (seeded by ``config.seed``);
    rows with fewer than n candidates are skipped (logged), since every row needs n columns.

    Raises:
        UsageError: a row without scores for one of ``teachers``, or an id missing from the texts.
    """
    datasets = require("datasets", "train")
    n = config.candidates_per_query
    rng = random.Random(config.seed)
    columns: dict[str, list[Any]] = {"query": [], **{name: [] for name in candidate_columns(n)}, "label": []}
    skipped = 0
    for row in rows:
        if len(row.pids) < n:
            skipped += 1
            continue
        if row.scores is None or any(name not in row.scores for name in teachers):
            raise UsageError(f"query {row.qid}: no scores for teachers {list(teachers)}; score the candidates first")
        chosen = [0, *sorted(rng.sample(range(1, len(row.pids)), n - 1))]
        try:
            columns["query"].append(queries[row.qid])
            for name, i in zip(candidate_columns(n), chosen, strict=True):
                columns[name].append(passages[row.pids[i]])
        except KeyError as error:
            raise UsageError(f"query {row.qid}: id {error} is not in the queries or collection file") from None
        columns["label"].append([[row.scores[name][i] for i in chosen] for name in teachers])
    if skipped:
        log.warning("%d queries have fewer than %d candidates and were skipped", skipped, n)
    if not columns["query"]:
        raise UsageError(f"no query has {n} candidates; lower --candidates-per-query")
    return datasets.Dataset.from_dict(columns)


def resolve_base_model(config: RecipeConfig) -> Path:
    """``config.base_model``, or the ``minilm-splade-untrained`` MLM (built once, offline)."""
    if config.base_model is not None:
        return config.base_model
    from sparsearch.encoders.minilm_base import minilm_mlm_dir

    return minilm_mlm_dir()


def build_student(mlm_dir: Path, kind: str, idf_weights: Sequence[float] | None, max_length: int) -> Any:  # noqa: ANN401
    """The student ``SparseEncoder``: a frozen IDF ``SparseStaticEmbedding`` on the query route and
    MLM + ``SpladePooling`` on the document route (inference-free), or MLM + ``SpladePooling`` (siamese).

    Args:
        mlm_dir: a local ``*ForMaskedLM`` folder.
        kind: ``"inference-free"`` or ``"siamese"``.
        idf_weights: inference-free: (V,) query weights (:func:`fit_idf_weights`); ignored for siamese.
        max_length: tokens per text.
    """
    from sparsearch.encoders.splade import build_sparse_encoder

    if kind == "inference-free" and idf_weights is None:
        raise UsageError("an inference-free student needs IDF weights (fit_idf_weights)")
    weights = idf_weights if kind == "inference-free" else None
    return build_sparse_encoder(mlm_dir, kind=kind, idf_weights=weights, max_length=max_length)  # type: ignore[arg-type]


def build_loss(model: Any, config: RecipeConfig, teachers: Sequence[str] = TEACHERS) -> Any:  # noqa: ANN401
    """``SpladeLoss`` around :class:`~sparsearch.training.st_losses.EnsembleDistillKLLoss`.

    Inference-free: λ_d · :class:`~sparsearch.training.st_losses.IdfAwareFlopsLoss` on documents, no
    query term (the query side has nothing to sparsify). Siamese: FLOPS on both sides (λ_d, λ_q), as
    SPLADE does; no IDF enters a siamese score, so there is nothing for the penalty to be aware of.
    """
    from sentence_transformers.sparse_encoder.losses import FlopsLoss, SpladeLoss

    from sparsearch.training.st_losses import EnsembleDistillKLLoss, IdfAwareFlopsLoss

    principal = EnsembleDistillKLLoss(
        model, teachers, config.teacher_weights, scale=config.teacher_scale, temperature=config.temperature
    )
    if config.kind == "inference-free":
        return SpladeLoss(
            model,
            principal,
            document_regularizer_weight=config.document_regularizer_weight,
            query_regularizer_weight=None,
            document_regularizer=IdfAwareFlopsLoss(model, threshold=config.l0_threshold),
        )
    return SpladeLoss(
        model,
        principal,
        document_regularizer_weight=config.document_regularizer_weight,
        query_regularizer_weight=config.query_regularizer_weight,
        document_regularizer=FlopsLoss(model, threshold=config.l0_threshold),
    )


def use_bf16(precision: str) -> bool:
    """bf16 when asked, or on ``"auto"`` when CUDA is there and supports it; fp32 otherwise (CPUs)."""
    if precision != "auto":
        return precision == "bf16"
    torch = require("torch", "train")
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def training_arguments(config: RecipeConfig, run_dir: Path) -> Any:  # noqa: ANN401
    """``SparseEncoderTrainingArguments``: the schedule, precision and, for a Router, which column goes
    to which route (``query`` -> query, ``doc_*`` -> document). accelerate places the model on the
    GPU(s) it finds; launch with ``accelerate launch`` or ``torchrun`` for several."""
    from sentence_transformers.sparse_encoder import SparseEncoderTrainingArguments

    router_mapping: dict[str, str] = {}
    if config.kind == "inference-free":
        router_mapping = {"query": "query", **dict.fromkeys(candidate_columns(config.candidates_per_query), "document")}
    return SparseEncoderTrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        lr_scheduler_type="linear",
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        bf16=use_bf16(config.precision),
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        eval_strategy="no",
        report_to="none",
        dataloader_drop_last=True,
        router_mapping=router_mapping,
        dataloader_pin_memory=require("torch", "train").cuda.is_available(),
    )


def train(model: Any, dataset: Any, config: RecipeConfig, run_dir: Path, output: Path) -> Any:  # noqa: ANN401
    """Train ``model`` on ``dataset`` (:func:`build_dataset`) and save it at ``output``.

    Returns:
        The trainer's ``TrainOutput`` (global_step, training_loss, metrics); the per-step log
        (loss parts, λ) is ``trainer.state.log_history``, also in ``run_dir/trainer_state.json``.
    """
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer
    from sentence_transformers.sparse_encoder.callbacks import SpladeRegularizerWeightSchedulerCallback

    run_dir.mkdir(parents=True, exist_ok=True)
    loss = build_loss(model, config)
    ramp = SpladeRegularizerWeightSchedulerCallback(loss, warmup_ratio=config.regularizer_ramp_fraction)
    trainer = SparseEncoderTrainer(
        model=model,
        args=training_arguments(config, run_dir),
        train_dataset=dataset,
        loss=loss,
        callbacks=[ramp],
    )
    result = trainer.train()
    trainer.state.save_to_json(str(run_dir / "trainer_state.json"))
    model.save(str(output))
    return result
