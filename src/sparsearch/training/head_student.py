"""Training the semantic channel's vocabulary head: the default model's learned channel.

The document encoder is the frozen dense teacher (all-MiniLM-L6-v2) followed by a trained
:class:`~sparsearch.encoders.semantic.VocabularyHead` that turns its embedding into weights over
~22.7k whole-word WordPiece tokens (SPLADE-style output: non-negative, top-k sparse). The query side
stays inference-free (IDF of the query's distinct WordPiece tokens). Because the encoder is frozen,
every document window and pseudo-query positive is embedded once and cached; a training step is
then a (windows x 384) @ (384 x 22.7k) product without gradient and a gradient through the
chosen top-k entries only, a fraction of a second on 2 CPU cores, so hundreds of steps fit in
minutes on a CPU.

Recipe (docs/method.md#label-free-training and #two-channels), per step: ``batch_queries``
pseudo-queries of one corpus with all their mined candidates; student score
``residual_weight · BM25_words(q, d) + Σ_t IDF_t · w_t(d)``
(the learned channel is trained as a residual over the frozen lexical channel); target = the
teacher ensemble (per-query min-max of BM25 and dense, averaged, scaled); loss = KL + λ(step) · FLOPS
on the candidate documents, λ ramped quadratically. The head starts from ``init_model`` (the shipped
default, or the training-free channel) so training can only move away from a strong start when
the teachers ask for it. Every ``eval_every`` steps, and before the first, the head is measured on the
held-out pseudo-queries (KL to the teachers at each mixing weight); the best checkpoint is kept, the
start included, so a run whose steps do not generalise returns its starting model rather than a
worse one (learning-rate history: ``encoders/default_model/README.md``, History).
The mixing weight of the learned channel is chosen on the same held-out pseudo-queries (never on
test queries) and an unfitted two-channel model is saved.

The step count is fixed by ``max_steps`` (``minutes`` is only a safety cap), so a run with the same
config and seed gives the same model.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparsearch.corpus import iter_corpus
from sparsearch.encoders.semantic import SemanticChannelEncoder, VocabularyHead
from sparsearch.errors import UsageError, require
from sparsearch.training.config import ProgressCallback, TrainConfig, TrainReport
from sparsearch.training.teachers import TeacherExample, ensemble_targets
from sparsearch.types import Document

log = logging.getLogger(__name__)


@dataclass
class CorpusData:
    """One training corpus with its cached teacher scores and embeddings.

    Attributes:
        documents: the documents (possibly a seeded sample of the corpus).
        train: training examples; heldout: held-out examples (split by document).
        window_embeddings: float32 (n_windows, 384), every window of every document.
        window_owner: int64 (n_windows,), the document row of each window.
        positive_embeddings: float32 (n_examples, 384), each example's positive text, aligned with
            ``train + heldout``.
        encoder: the semantic channel fitted on these documents (its IDF is the query side).
    """

    name: str
    documents: list[Document]
    train: list[TeacherExample]
    heldout: list[TeacherExample]
    window_embeddings: np.ndarray
    window_owner: np.ndarray
    positive_embeddings: np.ndarray
    encoder: SemanticChannelEncoder

    @functools.cached_property
    def windows_of(self) -> list[list[int]]:
        """Document row -> its window rows."""
        out: list[list[int]] = [[] for _ in self.documents]
        for window, owner in enumerate(self.window_owner.tolist()):
            out[owner].append(window)
        return out

    @functools.cached_property
    def row_of(self) -> dict[str, int]:
        """Document id -> its row in ``documents``."""
        return {d.doc_id: i for i, d in enumerate(self.documents)}

    @functools.cached_property
    def examples(self) -> list[TeacherExample]:
        """``train + heldout``: the order of ``positive_embeddings``."""
        return self.train + self.heldout


def load_documents(data: Path, max_documents: int | None, seed: int) -> list[Document]:
    """The corpus's documents, or a seeded sample of ``max_documents`` of them (documents without
    text stay: they yield no pseudo-queries and an empty learned vector)."""
    documents = list(iter_corpus(data))
    if max_documents is not None and len(documents) > max_documents:
        chosen = sorted(random.Random(seed).sample(range(len(documents)), max_documents))
        documents = [documents[i] for i in chosen]
    return documents


def prepare_corpus(data: Path, cache_dir: Path, config: Any, encoder_template: SemanticChannelEncoder) -> CorpusData:
    """Pseudo-queries, teacher scores and embeddings of one corpus, cached in ``cache_dir``."""
    from sparsearch.encoders.dense import embed, embed_windows
    from sparsearch.training.teachers import prepare_examples

    documents = load_documents(data, config.max_documents, config.seed)
    if not any(d.full_text.strip() for d in documents):
        raise UsageError(f"{data}: no documents with text to train on")
    examples = prepare_examples(config, documents, cache_dir / "teachers.jsonl")
    embeddings_file = cache_dir / "embeddings.npz"
    if embeddings_file.is_file():
        cached = np.load(embeddings_file)
        windows, owners, positives = cached["windows"], cached["owners"], cached["positives"]
    else:
        windows, owners = embed_windows([d.full_text for d in documents])
        positives = embed([e.query.positive_text for e in examples])
        np.savez(embeddings_file, windows=windows, owners=owners, positives=positives)
    encoder = SemanticChannelEncoder(top_k=encoder_template.top_k, candidate_tokens=encoder_template.candidate_tokens)
    encoder.fit(d.full_text for d in documents)
    train = [e for e in examples if e.query.split == "train"]
    heldout = [e for e in examples if e.query.split == "heldout"]
    order = {id(e): i for i, e in enumerate(examples)}
    # in CorpusData.examples order (train, then held out)
    positives = positives[[order[id(e)] for e in train + heldout]] if examples else positives
    return CorpusData(data.name, documents, train, heldout, windows, owners, positives, encoder)


class HeadStudent:
    """The trainable head in torch: embeddings (n, 384) -> document weights (n_docs, n_tokens)."""

    def __init__(self, head: VocabularyHead, token_matrix: np.ndarray, top_k: int, device: str = "cpu") -> None:
        self.torch = torch = require("torch", "train")
        self.device = device
        self.projection = torch.nn.Parameter(torch.tensor(head.projection, device=device))
        self.scale = torch.nn.Parameter(torch.tensor(head.scale, device=device))
        self.bias = torch.nn.Parameter(torch.tensor(head.bias, device=device))
        self.tokens = torch.tensor(token_matrix, device=device)
        self.top_k = top_k

    def parameters(self) -> list[Any]:
        return [self.projection, self.scale, self.bias]

    def document_weights(self, embeddings: Any, owners: Any, n_documents: int) -> Any:
        """Windows (n_windows, 384) with their document rows -> (n_documents, n_tokens) weights:
        max over each document's windows, then ``max(0, ·)`` and the top-k (as at indexing time).

        The full (windows x tokens) matrix is computed without gradient only to choose each
        document's top-k tokens; the weights of those k tokens are then recomputed with gradient.
        Top-k and max pooling pass gradient to the chosen entries alone, so this is the gradient of
        the dense computation at a fraction of its cost.
        """
        torch, device = self.torch, self.device
        embeddings, owners = embeddings.to(device), owners.to(device)
        mapped = torch.nn.functional.normalize(embeddings @ self.projection.T, dim=-1)  # with gradient
        with torch.no_grad():
            scores = self.scale * (mapped @ self.tokens.T) - self.bias  # (n_windows, n_tokens)
            pooled = torch.full((n_documents, scores.shape[1]), -1e4, device=device).scatter_reduce(
                0, owners[:, None].expand_as(scores), scores, reduce="amax", include_self=True
            )
            columns = pooled.topk(min(self.top_k, pooled.shape[1]), dim=1).indices  # (n_documents, k)
        chosen = columns[owners]  # (n_windows, k): each window's document's tokens
        values = self.scale[chosen] * torch.einsum("wd,wkd->wk", mapped, self.tokens[chosen]) - self.bias[chosen]
        best = torch.full(columns.shape, -1e4, device=device).scatter_reduce(
            0, owners[:, None].expand_as(values), values, reduce="amax", include_self=True
        )
        return torch.zeros(pooled.shape, device=device).scatter(1, columns, torch.relu(best))

    def to_head(self) -> VocabularyHead:
        arrays = [p.detach().cpu().numpy().copy() for p in self.parameters()]
        return VocabularyHead(*arrays)


def training_device(requested: str) -> str:
    """``"auto"`` -> a GPU when torch sees one, else the CPU; ``"cuda"`` without a GPU is refused."""
    from sparsearch.encoders.dense import torch_device

    available = torch_device()
    if requested == "auto":
        return available
    if requested == "cuda" and available != "cuda":
        raise UsageError('device = "cuda", but torch sees no GPU here: use device = "auto" or "cpu"')
    return requested


def query_vector(encoder: SemanticChannelEncoder, columns: dict[str, int], text: str) -> np.ndarray:
    """float32 (n_tokens,) the query's IDF weights on the candidate-token columns (others dropped:
    no document can carry them)."""
    vector = np.zeros(len(columns), dtype=np.float32)
    for token, weight in encoder.encode_query(text).weights.items():
        column = columns.get(token)
        if column is not None:
            vector[column] = weight
    return vector


def initial_head(init_model: Path | None, n_tokens: int, threshold: float, mixing_weight: float) -> VocabularyHead:
    """Where training starts: the head of ``init_model`` (a semantic or two-channel model directory),
    else the training-free channel, with the model's mixing weight folded into the head.

    The student's score is ``BM25 + Σ_t IDF_t · w_t(d)`` with no separate mixing weight, so the
    start is made to score exactly as the starting model does: ``a · max(0, s·c − b) =
    max(0, a·s·c − a·b)`` for a > 0, with ``a`` the two-channel model's learned weight (or
    ``mixing_weight`` for the training-free start).
    """
    head, weight = VocabularyHead.identity(n_tokens, threshold), mixing_weight
    if init_model is not None:
        from sparsearch.encoders.registry import load_encoder
        from sparsearch.encoders.two_channel import TwoChannelEncoder

        model = load_encoder(init_model)
        channel: object = model.learned if isinstance(model, TwoChannelEncoder) else model
        weight = float(model.learned_weight) if isinstance(model, TwoChannelEncoder) else 1.0
        if not isinstance(channel, SemanticChannelEncoder):
            raise UsageError(f"{init_model}: init_model must be a semantic or two-channel (semantic) model")
        if channel.head is not None:
            head = channel.head
        if head.scale.shape != (n_tokens,):
            raise UsageError(f"{init_model}: its head covers {head.scale.shape[0]} tokens, not {n_tokens}")
    if weight <= 0:
        raise UsageError(f"the starting model's learned weight is {weight}: training needs it above 0")
    return VocabularyHead(head.projection.copy(), head.scale * weight, head.bias * weight)


def _step_batch(corpus: CorpusData, batch: Sequence[int], config: Any, columns: dict, device: str):  # noqa: ANN202
    """Tensors on ``device`` for a batch of examples (rows of ``corpus.examples``): the candidate
    documents' windows, the positives, the queries, the lexical scores and the teacher targets."""
    torch = require("torch", "train")
    row = corpus.row_of
    examples = [corpus.examples[i] for i in batch]
    needed = sorted({row[c] for e in examples for c in e.candidates[1:]})
    local = {d: i for i, d in enumerate(needed)}
    windows = [w for d in needed for w in corpus.windows_of[d]]
    owners = torch.tensor([local[int(corpus.window_owner[w])] for w in windows], dtype=torch.long, device=device)
    width = max(len(e.candidates) for e in examples)
    # candidate -> row of the step's document matrix; positives come after the mined documents
    index = np.zeros((len(examples), width), dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=bool)
    lexical = np.zeros((len(examples), width), dtype=np.float32)
    targets = np.zeros((len(examples), width), dtype=np.float32)
    for b, example in enumerate(examples):
        n = len(example.candidates)
        index[b, 0] = len(needed) + b
        index[b, 1:n] = [local[row[c]] for c in example.candidates[1:]]
        mask[b, :n] = True
        lexical[b, :n] = example.scores["bm25"]
        scores = {name: np.asarray(values) for name, values in example.scores.items() if name in config.teacher_weights}
        targets[b, :n] = ensemble_targets(scores, config.teacher_weights, config.teacher_scale)
    queries = np.stack([query_vector(corpus.encoder, columns, e.query.text) for e in examples])
    arrays = {
        "windows": corpus.window_embeddings[windows],
        "positives": corpus.positive_embeddings[list(batch)],
        "index": index,
        "mask": mask,
        "lexical": lexical,
        "targets": targets,
        "queries": queries,
    }
    return {"owners": owners, "n_documents": len(needed)} | {
        name: torch.tensor(array, device=device) for name, array in arrays.items()
    }


def _batch_documents(student: HeadStudent, tensors: dict):  # noqa: ANN202
    """(n_documents + n_queries, n_tokens) weights of a batch from :func:`_step_batch`: the mined
    documents, then each query's positive."""
    torch = student.torch
    n_queries = tensors["positives"].shape[0]
    return student.document_weights(
        torch.cat([tensors["windows"], tensors["positives"]]),
        torch.cat([tensors["owners"], tensors["n_documents"] + torch.arange(n_queries, device=student.device)]),
        tensors["n_documents"] + n_queries,
    )


def _batch_scores(tensors: dict, documents: Any, residual_weight: float, learned_weight: float = 1.0):  # noqa: ANN202
    """(student scores, targets) over each query's candidates; padding candidates get -1e4 on both
    sides (no probability mass)."""
    learned = (tensors["queries"] @ documents.T).gather(1, tensors["index"])
    scores = (residual_weight * tensors["lexical"] + learned_weight * learned).masked_fill(~tensors["mask"], -1e4)
    return scores, tensors["targets"].masked_fill(~tensors["mask"], -1e4)


@dataclass
class Checkpoint:
    """A head measured on the held-out pseudo-queries: its KL per mixing weight and the best of them."""

    step: int
    head: VocabularyHead
    kl_by_weight: dict[str, float]

    @property
    def weight(self) -> float:
        """The mixing weight with the lowest held-out KL."""
        return _lowest(self.kl_by_weight)

    @property
    def kl(self) -> float:
        return self.kl_by_weight[str(self.weight)]

    def record(self) -> dict[str, Any]:
        """The line written to ``metrics.jsonl``."""
        return {"eval_step": self.step, "heldout_kl": self.kl, "best_weight": self.weight,
                "heldout_kl_by_weight": self.kl_by_weight}  # fmt: skip


def _lowest(kl_by_weight: dict[str, float]) -> float:
    """The mixing weight with the lowest held-out KL, the smallest on ties."""
    return float(min(kl_by_weight, key=lambda w: (kl_by_weight[w], float(w))))


def train_head(config: TrainConfig, on_progress: ProgressCallback | None = None) -> TrainReport:
    """Run the recipe in the module docstring for a ``TrainConfig`` with ``student = "semantic-head"``."""
    torch = require("torch", "train")
    from sparsearch.training.heldout import best_weight
    from sparsearch.training.losses import training_loss

    if config.loss != "kl":
        # padded candidates carry -1e4 on both sides: harmless for KL, not for margins
        raise UsageError('the semantic-head student trains with loss = "kl"; margin_mse is for student = "splade"')

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = training_device(config.device)  # refused before any work when no GPU is there
    run_dir = config.resolved_run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")
    started = time.monotonic()

    template = SemanticChannelEncoder(top_k=config.top_k, candidate_tokens=config.candidate_tokens)
    corpora = [
        prepare_corpus(data, run_dir / f"corpus-{i}-{data.name}", config, template)
        for i, data in enumerate(config.all_data)
    ]
    corpora = [c for c in corpora if c.train]
    if not corpora:
        raise UsageError(f"{config.data}: no usable pseudo-queries (is the corpus empty or too short?)")
    columns = {token: i for i, token in enumerate(template.tokens)}
    head = initial_head(config.init_model, len(template.tokens), template.threshold, config.initial_mixing_weight)
    student = HeadStudent(head, template.token_matrix(), config.top_k, device)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.head_learning_rate)
    # corpora are drawn in proportion to their training queries, or to config.corpus_weights
    draws = np.asarray(config.corpus_weights or [len(c.train) for c in corpora], dtype=np.float64)
    if len(draws) != len(corpora):
        raise UsageError(f"corpus_weights has {len(draws)} entries for {len(corpora)} corpora (data + extra_data)")
    draws /= draws.sum()
    rng = np.random.default_rng(config.seed)
    total = config.max_steps
    ramp = int(config.regularizer_ramp_fraction * total)
    budget = config.minutes * 60 if config.minutes else math.inf
    step, record = 0, {"loss": float("nan"), "active_terms": 0.0}
    best: Checkpoint | None = None
    evaluated = -1  # the last step measured on the held-out queries
    with (run_dir / "metrics.jsonl").open("w", encoding="utf-8") as metrics_file:

        def evaluate() -> None:
            nonlocal best, evaluated
            checkpoint = Checkpoint(step, student.to_head(), _heldout_kl(corpora, student, config, columns))
            evaluated = step
            metrics_file.write(json.dumps(checkpoint.record()) + "\n")
            metrics_file.flush()
            if best is None or checkpoint.kl < best.kl:
                best = checkpoint

        if config.eval_every:
            evaluate()  # the start is a candidate: training must beat it on held-out queries to be kept
        while step < total:
            if time.monotonic() - started > budget:
                log.warning("time budget of %.1f min reached after %d of %d steps", config.minutes, step, total)
                break
            t0 = time.monotonic()
            which = int(rng.choice(len(corpora), p=draws))
            corpus = corpora[which]
            batch = rng.choice(len(corpus.train), size=min(config.batch_queries, len(corpus.train)), replace=False)
            tensors = _step_batch(corpus, batch.tolist(), config, columns, device)
            documents = _batch_documents(student, tensors)
            scores, targets = _batch_scores(tensors, documents, config.residual_weight)
            loss, ranking, flops, lam = training_loss(scores, targets, documents, config, step, ramp)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            record = {
                "step": step,
                "corpus": corpus.name,
                "loss": loss.item(),
                "ranking_loss": ranking.item(),
                "flops": flops.item(),
                "lambda": lam,
                "active_terms": float((documents > 0).sum(1).float().mean()),
                "seconds": time.monotonic() - t0,
            }
            metrics_file.write(json.dumps(record) + "\n")
            if on_progress is not None:
                on_progress(step, total, record)
            if config.eval_every and (step % config.eval_every == 0 or step == total):
                evaluate()
        if config.eval_every and evaluated != step:
            evaluate()  # stopped early by the time budget: the last head is a candidate too

    if best is not None:
        student = HeadStudent(best.head, template.token_matrix(), config.top_k, device)
    trained = student.to_head()
    by_weight, avg_terms = _choose_weight(corpora, student, config, columns)
    kl_by_weight = best.kl_by_weight if best is not None else _heldout_kl(corpora, student, config, columns)
    if config.heldout_selection == "kl":
        chosen = _lowest(kl_by_weight)
    else:
        chosen = best_weight(by_weight)
    _save_model(config, trained, chosen)
    report = TrainReport(
        steps=step,
        seconds=time.monotonic() - started,
        train_queries=sum(len(c.train) for c in corpora),
        heldout_queries=sum(len(c.heldout) for c in corpora),
        final_loss=record["loss"],
        avg_learned_terms=avg_terms,
        heldout_ndcg_by_weight=by_weight,
        chosen_weight=chosen,
        output=str(config.output),
        heldout_kl_by_weight=kl_by_weight,
        checkpoint_step=best.step if best is not None else None,
    )
    (run_dir / "report.json").write_text(json.dumps(report.__dict__, indent=2), encoding="utf-8")
    return report


def _heldout_kl(corpora: Sequence[CorpusData], student: HeadStudent, config: Any, columns: dict) -> dict[str, float]:
    """The training objective (KL to the teacher ensemble over the mined candidates) on held-out
    pseudo-queries, per mixing weight of the learned channel; mean over all held-out queries."""
    from sparsearch.training.losses import distillation_kl

    torch = student.torch
    totals = dict.fromkeys(map(str, config.mixing_weights), 0.0)
    count = 0
    for corpus in corpora:
        rows = list(range(len(corpus.train), len(corpus.examples)))
        for start in range(0, len(rows), 64):
            chunk = rows[start : start + 64]
            tensors = _step_batch(corpus, chunk, config, columns, student.device)
            with torch.no_grad():
                documents = _batch_documents(student, tensors)  # once per chunk, for every weight
                for weight in config.mixing_weights:
                    scores, targets = _batch_scores(tensors, documents, config.residual_weight, weight)
                    totals[str(weight)] += distillation_kl(scores, targets, config.temperature).item() * len(chunk)
            count += len(chunk)
    return {w: (v / count if count else 0.0) for w, v in totals.items()}


def _choose_weight(
    corpora: Sequence[CorpusData], student: HeadStudent, config: Any, columns: dict[str, int]
) -> tuple[dict[str, float], float]:
    """Held-out nDCG@10 per mixing weight (averaged over held-out queries of every corpus) and the
    learned channel's average terms per document."""
    from sparsearch.training.heldout import heldout_ndcg, heldout_qrels, lexical_scores

    torch = student.torch
    totals = dict.fromkeys(map(str, config.mixing_weights), 0.0)
    terms, n_docs, n_queries = 0.0, 0, 0
    for corpus in corpora:
        texts = [d.full_text for d in corpus.documents]
        with torch.no_grad():
            weights = (
                student.document_weights(
                    torch.tensor(corpus.window_embeddings), torch.tensor(corpus.window_owner), len(texts)
                )
                .cpu()
                .numpy()
            )
        learned_docs = scipy_csr(weights)
        terms += float((weights > 0).sum())
        n_docs += len(texts)
        if not corpus.heldout:
            continue
        texts_q = [e.query.text for e in corpus.heldout]
        learned_queries = scipy_csr(np.stack([query_vector(corpus.encoder, columns, t) for t in texts_q]))
        scores = heldout_ndcg(
            corpus.documents,
            corpus.heldout,
            lexical_scores(texts, texts_q),
            (learned_queries @ learned_docs.T).toarray(),
            config.mixing_weights,
            heldout_qrels(corpus.heldout, config),
        )
        for weight, value in scores.items():
            totals[weight] += value * len(corpus.heldout)
        n_queries += len(corpus.heldout)
    by_weight = {w: (v / n_queries if n_queries else 0.0) for w, v in totals.items()}
    return by_weight, terms / max(n_docs, 1)


def scipy_csr(dense: np.ndarray):  # noqa: ANN201 - scipy.sparse.csr_matrix
    import scipy.sparse

    return scipy.sparse.csr_matrix(dense.astype(np.float64))


def _save_model(config: Any, head: VocabularyHead, learned_weight: float) -> None:
    """An unfitted two-channel model: `sparsearch index` fits BM25 and IDF on the corpus it indexes."""
    from sparsearch.encoders.two_channel import TwoChannelEncoder, lexical_channel

    learned = SemanticChannelEncoder(
        top_k=config.top_k, candidate_tokens=config.candidate_tokens, head=head, name="semantic-head"
    )
    TwoChannelEncoder(lexical_channel(), learned, learned_weight=learned_weight, name=config.output.name).save(
        config.output
    )
