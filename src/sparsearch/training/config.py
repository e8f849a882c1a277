"""The hyperparameters of a training run (a TOML file) and what a run reports."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sparsearch.errors import UsageError


class TrainConfig(BaseModel):
    """Every hyperparameter of a run (the ``sparsearch train --config`` TOML file).

    Names follow the table in docs/method.md#hyperparameters; paper symbols in the descriptions.
    """

    model_config = ConfigDict(extra="forbid")

    data: Path = Field(description="BEIR folder or corpus .jsonl: the documents to adapt to (only documents are read)")
    extra_data: list[Path] = Field(
        default_factory=list, description="more corpora to train on (semantic-head student; each keeps its own IDF)"
    )
    max_documents: int | None = Field(None, ge=1, description="per corpus: train on a seeded sample of this many")
    student: Literal["semantic-head", "splade"] = Field(
        "semantic-head",
        description="semantic-head: a vocabulary head on the frozen dense model (fast on CPUs); "
        "splade: a masked LM with SPLADE max pooling, fine-tuned end to end",
    )
    init_model: Path | None = Field(
        None, description="semantic-head: model whose head training starts from (default: the training-free channel)"
    )
    top_k: int = Field(100, ge=1, description="semantic-head: learned terms kept per document")
    candidate_tokens: list[str] | None = Field(
        None, description="semantic-head: expansion vocabulary (default: every whole-word WordPiece entry)"
    )
    head_learning_rate: float = Field(
        2e-4, gt=0, description="semantic-head: Adam learning rate (2e-3 made the held-out KL worse from the start)"
    )
    initial_mixing_weight: float = Field(
        2.0, gt=0, description="semantic-head: learned weight of the training-free start (folded into the head)"
    )
    output: Path = Field(description="where the trained two-channel model is saved")
    run_dir: Path | None = Field(None, description="logs, metrics, teacher cache (default: <output>.run)")
    base_model: Path | None = Field(None, description="a BERT-family MLM checkpoint (default: MiniLM + tied head)")
    seed: int = 13
    minutes: float | None = Field(20.0, gt=0, description="time budget for the optimisation steps")
    max_steps: int = Field(100_000, ge=1)
    batch_queries: int = Field(8, ge=1)
    docs_per_query: int = Field(4, ge=2, description="n: the positive plus n-1 sampled negatives")
    max_length: int = Field(256, ge=8, description="tokens per training passage (documents are cut there)")
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = 0.01
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    document_regularizer_weight: float = Field(3e-3, ge=0, description="λ_d of the FLOPS term")
    regularizer_ramp_fraction: float = Field(0.3, ge=0, le=1, description="T as a fraction of the steps")
    l0_threshold: int | None = Field(150, description="ℓ0 mask τ: documents at most this dense skip FLOPS")
    teacher_scale: float = Field(20.0, gt=0, description="S")
    teacher_weights: dict[str, float] = Field(default_factory=lambda: {"dense": 0.5, "bm25": 0.5})
    temperature: float = Field(1.0, gt=0)
    loss: Literal["kl", "margin_mse"] = "kl"
    residual_weight: float = Field(1.0, ge=0, description="weight of the frozen BM25 score inside the student score")
    queries_per_document: int = Field(3, ge=1, le=4)
    heldout_fraction: float = Field(0.1, gt=0, lt=1)
    candidates_per_teacher: int = Field(20, ge=2)
    max_active_dims: int | None = Field(150, description="learned terms kept per document when indexing")
    heldout_relevance: Literal["teachers", "source"] = Field(
        "teachers", description="how held-out pseudo-queries are judged when choosing the mixing weight"
    )
    heldout_selection: Literal["kl", "ndcg"] = Field(
        "kl",
        description="semantic-head: choose the mixing weight by the training objective (KL to the teachers) "
        "or by nDCG@10 on the held-out pseudo-queries",
    )
    corpus_weights: list[float] | None = Field(
        None, description="semantic-head: how often each corpus (data, then extra_data) is drawn; default: by size"
    )
    mixing_weights: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="semantic-head: where the head trains (auto: a GPU if torch sees one); "
        "the dense teacher embeds on a GPU whenever there is one",
    )
    eval_every: int = Field(
        100,
        ge=0,
        description="semantic-head: every this many steps (and before the first), measure the held-out KL at "
        "every mixing weight and keep the best checkpoint; 0 keeps the last step's head",
    )

    @classmethod
    def from_toml(cls, path: Path) -> TrainConfig:
        """Read a TOML run config; relative paths in it are relative to the file.

        Raises:
            UsageError: the file is missing, is not TOML, or a field is unknown or out of range
                (the message names the file and each field).
        """
        if not path.is_file():
            raise UsageError(f"{path}: no such config file")
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"{path}: not valid TOML ({error})") from None
        base = path.parent
        for key in ("data", "output", "run_dir", "base_model", "init_model"):
            if isinstance(values.get(key), str):
                values[key] = str(base / Path(values[key]).expanduser())
        if isinstance(values.get("extra_data"), list):
            values["extra_data"] = [
                str(base / Path(p).expanduser()) if isinstance(p, str) else p for p in values["extra_data"]
            ]
        try:
            return cls(**values)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise UsageError(f"{path}: {problems}") from None

    @property
    def resolved_run_dir(self) -> Path:
        return self.run_dir or self.output.with_name(self.output.name + ".run")

    @property
    def all_data(self) -> list[Path]:
        return [self.data, *self.extra_data]


@dataclass
class TrainReport:
    """What a run did (also written to ``<run_dir>/report.json``)."""

    steps: int
    seconds: float
    train_queries: int
    heldout_queries: int
    final_loss: float
    avg_learned_terms: float
    heldout_ndcg_by_weight: dict[str, float]
    chosen_weight: float
    output: str
    heldout_kl_by_weight: dict[str, float] | None = None
    checkpoint_step: int | None = None


ProgressCallback = Callable[[int, int, dict[str, float]], None]
"""Called after every step with (step, expected total steps, metrics)."""
