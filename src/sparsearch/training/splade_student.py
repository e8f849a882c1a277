"""Label-free adaptation of the learned channel (docs/method.md#label-free-training).

Steps, all from the corpus's own documents:

1. pseudo-queries (:mod:`~sparsearch.training.pseudo_queries`), split by document into train and
   held-out;
2. candidates and raw teacher scores, cached in the run directory (:mod:`~sparsearch.training.teachers`);
3. the student: a BERT-family masked LM with SPLADE max pooling (default: MiniLM with its tied head,
   :func:`~sparsearch.encoders.minilm_base.minilm_mlm_dir`), queries = IDF of distinct WordPiece
   tokens (inference-free);
4. per step, ``batch_queries`` queries x ``docs_per_query`` candidates (the positive plus sampled
   negatives); the target is the teacher ensemble normalised over those candidates; the loss is
   KL (or MarginMSE) on the student score plus λ(step)·FLOPS(documents) with the ℓ0 mask. With
   ``residual_weight`` > 0 the student's score includes the frozen lexical (word BM25) score, so the
   learned channel is trained to add what BM25 misses (docs/method.md#two-channels);
5. at the end: encode the corpus, pick the learned channel's mixing weight on the held-out
   pseudo-queries (never on test queries) and save a two-channel model (lexical + learned).

**Speed on CPUs.** The (B, L, V) head logits are computed without gradient in bfloat16 only to find,
for each document and vocabulary entry, the position holding the maximum; the logits at those
positions (the active entries only) are then recomputed in float32 with gradient. Max pooling sends
gradient to the argmax position alone, so this gives the same gradient as the dense computation at a
small fraction of its cost.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparsearch.corpus import iter_corpus
from sparsearch.encoders.idf import IdfTable
from sparsearch.errors import UsageError, require
from sparsearch.training.config import ProgressCallback, TrainConfig, TrainReport
from sparsearch.training.heldout import best_weight, heldout_ndcg, heldout_qrels, lexical_scores
from sparsearch.training.losses import training_loss
from sparsearch.training.teachers import (
    TeacherExample,
    ensemble_targets,
    prepare_examples,
    sparse_matrix,
)
from sparsearch.types import Document

log = logging.getLogger(__name__)


# -- the student's training forward pass ---------------------------------------------------------------
class SparseMLMStudent:
    """A BERT-family masked LM producing SPLADE document vectors with gradients (see module docstring)."""

    def __init__(self, mlm_dir: Path, max_length: int) -> None:
        transformers = require("transformers", "train")
        self.torch = require("torch", "train")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(mlm_dir), local_files_only=True)
        self.model = transformers.AutoModelForMaskedLM.from_pretrained(str(mlm_dir), local_files_only=True)
        self.model.eval()  # dropout off: the recipe's CPU setting
        self.max_length = max_length
        head = getattr(getattr(self.model, "cls", None), "predictions", None)
        if head is None or not hasattr(head, "transform"):
            raise UsageError(f"{mlm_dir}: training needs a BERT-style masked LM (cls.predictions.transform)")
        self.transform = head.transform
        self.decoder = self.model.get_output_embeddings()
        self.special_ids = set(self.tokenizer.all_special_ids)

    @property
    def vocab_size(self) -> int:
        return int(self.decoder.weight.shape[0])

    def encode(self, texts: Sequence[str]):  # noqa: ANN201 - (B, V) tensor with gradient
        torch = self.torch
        batch = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        hidden = self.model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        transformed = self.transform(hidden)  # (B, L, H), with gradient
        weight, bias = self.decoder.weight, self.decoder.bias
        with torch.no_grad():
            logits = transformed.to(torch.bfloat16) @ weight.to(torch.bfloat16).T + bias.to(torch.bfloat16)
            logits.masked_fill_(batch["attention_mask"].unsqueeze(-1) == 0, float("-inf"))
            best, position = logits.max(dim=1)  # (B, V)
            best[:, list(self.special_ids)] = float("-inf")
            rows, columns = torch.nonzero(best > 0, as_tuple=True)
            positions = position[rows, columns]
        z = (transformed[rows, positions] * weight[columns]).sum(-1) + bias[columns]  # float32, with gradient
        values = torch.log1p(torch.relu(z))
        vectors = torch.zeros(len(texts), self.vocab_size, dtype=values.dtype)
        return vectors.index_put((rows, columns), values)

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))


def _query_weight_matrix(torch: Any, idf: IdfTable, tokenizer: Any, texts: Sequence[str], vocab_size: int):  # noqa: ANN202
    """(n, V) IDF of each query's distinct non-special tokens (binary presence)."""
    matrix = torch.zeros(len(texts), vocab_size)
    special = set(tokenizer.all_special_ids)
    for row, text in enumerate(texts):
        for token_id in set(tokenizer(text, add_special_tokens=False)["input_ids"]) - special:
            matrix[row, token_id] = idf.idf(tokenizer.convert_ids_to_tokens(token_id))
    return matrix


def _sample_batch(
    rng: random.Random, examples: Sequence[TeacherExample], config: TrainConfig
) -> list[tuple[TeacherExample, list[int]]]:
    """``batch_queries`` examples, each with the positive (index 0) and n-1 sampled negatives."""
    batch = []
    for example in rng.sample(list(examples), k=min(config.batch_queries, len(examples))):
        negatives = list(range(1, len(example.candidates)))
        chosen = rng.sample(negatives, k=min(config.docs_per_query - 1, len(negatives)))
        batch.append((example, [0, *chosen]))
    return batch


# -- the run -------------------------------------------------------------------------------------------
def train(config: TrainConfig, on_progress: ProgressCallback | None = None) -> TrainReport:
    """Run the whole recipe and save a two-channel model at ``config.output``."""
    torch = require("torch", "train")
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    run_dir = config.resolved_run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")
    started = time.monotonic()

    # 1-2. data and teachers
    documents = list(iter_corpus(config.data))
    by_id = {d.doc_id: d for d in documents}
    examples = prepare_examples(config, documents)
    train_examples = [e for e in examples if e.query.split == "train"]
    heldout = [e for e in examples if e.query.split == "heldout"]
    if not train_examples:
        raise UsageError(f"{config.data}: no usable pseudo-queries (is the corpus empty or too short?)")

    # 3. student and query side
    if config.base_model is not None:
        mlm_dir = config.base_model
    else:
        from sparsearch.encoders.minilm_base import minilm_mlm_dir

        mlm_dir = minilm_mlm_dir()
    student = SparseMLMStudent(mlm_dir, config.max_length)
    tokenizer = student.tokenizer
    special = set(tokenizer.all_special_tokens)
    idf = IdfTable.from_token_lists(
        ([t for t in tokenizer.tokenize(d.full_text) if t not in special] for d in documents),
        analyzer={"analyzer": "hf-tokenizer", "name": str(mlm_dir)},
    )

    # 4. optimisation
    optimizer = torch.optim.AdamW(student.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    budget = config.minutes * 60 if config.minutes else math.inf
    step, loss_value, step_seconds, total = 0, float("nan"), [], config.max_steps
    metrics_file = (run_dir / "metrics.jsonl").open("w", encoding="utf-8")
    while step < total and time.monotonic() - started < budget:
        t0 = time.monotonic()
        batch = _sample_batch(rng, train_examples, config)
        texts, candidate_index, targets, lexical = [], [], [], []
        for example, chosen in batch:
            row = []
            for i in chosen:
                row.append(len(texts))
                doc_id = example.candidates[i]
                texts.append(example.query.positive_text if i == 0 else by_id[doc_id].full_text)
            candidate_index.append(row)
            selected = {name: np.asarray(values)[chosen] for name, values in example.scores.items()}
            targets.append(ensemble_targets(selected, config.teacher_weights, config.teacher_scale))
            lexical.append(selected["bm25"])
        # warm-up then linear decay of the learning rate, over the steps the time budget allows
        total = config.max_steps
        if math.isfinite(budget):
            total = min(total, max(step + 1, _estimate_steps(step_seconds, budget, started, step)))
        warmup = max(1, int(config.warmup_fraction * total))
        scale = (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * scale

        vectors = student.encode(texts)
        queries = _query_weight_matrix(torch, idf, tokenizer, [e.query.text for e, _ in batch], student.vocab_size)
        scores = (queries @ vectors.T).gather(1, torch.tensor(candidate_index))
        scores = scores + config.residual_weight * torch.tensor(np.asarray(lexical), dtype=scores.dtype)
        target = torch.tensor(np.asarray(targets), dtype=scores.dtype)
        loss, ranking, flops, lam = training_loss(
            scores, target, vectors, config, step, int(config.regularizer_ramp_fraction * total)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        step += 1
        loss_value = loss.item()
        step_seconds.append(time.monotonic() - t0)
        record = {
            "step": step,
            "loss": loss_value,
            "ranking_loss": ranking.item(),
            "flops": flops.item(),
            "lambda": lam,
            "active_terms": float((vectors > 0).sum(1).float().mean()),
            "seconds": step_seconds[-1],
        }
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        if on_progress is not None:
            on_progress(step, total, record)
    metrics_file.close()

    # 5. save the learned channel, pick the mixing weight on held-out pseudo-queries, save the model
    report = _finish(config, student, idf, documents, heldout, step, loss_value, started, len(train_examples))
    (run_dir / "report.json").write_text(json.dumps(report.__dict__, indent=2), encoding="utf-8")
    return report


def _estimate_steps(step_seconds: list[float], budget: float, started: float, step: int) -> int:
    """Steps that fit the time budget at the recent pace (for the schedules and the ETA)."""
    if not step_seconds:
        return max(step + 1, 100)
    pace = float(np.median(step_seconds[-20:]))
    return step + int(max(0.0, budget - (time.monotonic() - started)) / pace)


def _finish(
    config: TrainConfig,
    student: SparseMLMStudent,
    idf: IdfTable,
    documents: Sequence[Document],
    heldout: Sequence[TeacherExample],
    steps: int,
    loss_value: float,
    started: float,
    n_train: int,
) -> TrainReport:
    from sparsearch.encoders.neural import EncodingOptions
    from sparsearch.encoders.splade import SpladeEncoder
    from sparsearch.encoders.two_channel import TwoChannelEncoder, lexical_channel

    weights_dir = config.resolved_run_dir / "student"
    student.save(weights_dir)
    learned = SpladeEncoder.from_mlm(
        weights_dir,
        kind="inference-free",
        name="learned",
        options=EncodingOptions(
            max_length=config.max_length, passage_overlap=config.max_length // 4, max_active_dims=config.max_active_dims
        ),
    )
    texts = [d.full_text for d in documents]
    learned.fit(texts)
    learned_vectors = learned.encode_document(texts)
    avg_terms = float(np.mean([len(v) for v in learned_vectors]))

    # held-out pseudo-queries, judged as heldout_qrels says
    learned_docs, learned_vocab = sparse_matrix(learned_vectors)
    texts_q = [e.query.text for e in heldout]
    learned_q, _ = sparse_matrix([learned.encode_query(t).weights for t in texts_q], learned_vocab)
    learned_scores = (learned_q @ learned_docs.T).toarray()
    qrels = heldout_qrels(heldout, config)
    by_weight = heldout_ndcg(
        documents, heldout, lexical_scores(texts, texts_q), learned_scores, config.mixing_weights, qrels
    )
    chosen = best_weight(by_weight) if heldout else 1.0

    # The saved model carries no corpus statistics: `sparsearch index` fits IDF and BM25 on the
    # corpus it indexes, so the model also serves corpora other than the one it was adapted to.
    unfitted = SpladeEncoder.from_mlm(weights_dir, kind="inference-free", name="learned", options=learned.options)
    model = TwoChannelEncoder(lexical_channel(), unfitted, learned_weight=chosen, name=config.output.name)
    model.save(config.output)
    return TrainReport(
        steps=steps,
        seconds=time.monotonic() - started,
        train_queries=n_train,
        heldout_queries=len(heldout),
        final_loss=loss_value,
        avg_learned_terms=avg_terms,
        heldout_ndcg_by_weight=by_weight,
        chosen_weight=chosen,
        output=str(config.output),
    )
