"""Train an inference-free (or siamese) SPLADE on MS MARCO-style data with sentence-transformers.

The recipe of Geng et al. (2024, arXiv:2411.04403) on ``SparseEncoderTrainer``: ensemble distillation
from a dense and a lexical teacher inside ``SpladeLoss``, with the IDF-aware FLOPS document
regulariser (``sparsearch.training.st_recipe``; docs/models-and-training.md#training-with-sentence-transformers).

Inputs (MS MARCO's own formats for the first two):

* ``--collection``: ``pid<TAB>text`` per line (``collection.tsv``);
* ``--queries``: ``qid<TAB>text`` per line (``queries.train.tsv``);
* ``--candidates``: JSONL, one query per line,
  ``{"qid": "1185869", "pids": ["0", "7187158", ...], "scores": {"dense": [...], "bm25": [...]}}``,
  each score list aligned with ``pids``; ``pids[0]`` is kept in every example (put the judged
  positive there). Without ``"scores"``, ``--score-teachers`` computes them with sparsearch's
  teachers: word BM25 fitted on the collection and all-MiniLM-L6-v2 cosine.

Steps:

1. read the candidates, then stream the collection once to keep the texts they name (the IDF
   table of the inference-free query side is fitted on the whole collection in a second pass);
2. teacher scores, if asked (``--score-teachers``; cached next to the run as ``teachers.jsonl``);
3. build the student, the loss and the training arguments (bf16 on GPUs that support it);
4. train and save a ``SparseEncoder`` folder: ``SparseEncoder(OUTPUT)`` and
   ``sparsearch index --model OUTPUT`` both load it.

Usage (one GPU; several: ``accelerate launch scripts/train_splade_msmarco.py ...``)::

    .venv/bin/python scripts/train_splade_msmarco.py --collection msmarco/collection.tsv \\
        --queries msmarco/queries.train.tsv --candidates msmarco/candidates.jsonl --output models/splade-if
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from sparsearch.training.st_recipe import (
    RecipeConfig,
    build_dataset,
    build_student,
    fit_idf_weights,
    read_candidates,
    read_id_texts,
    resolve_base_model,
    score_candidates,
    select_texts,
    train,
)

log = logging.getLogger("train_splade_msmarco")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = RecipeConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", type=Path, required=True, help="pid<TAB>text per line")
    parser.add_argument("--queries", type=Path, required=True, help="qid<TAB>text per line")
    parser.add_argument("--candidates", type=Path, required=True, help="JSONL: qid, pids and (optionally) scores")
    parser.add_argument("--output", type=Path, required=True, help="where the trained SparseEncoder is saved")
    parser.add_argument("--run-dir", type=Path, help="checkpoints, trainer_state.json (default: OUTPUT.run)")
    parser.add_argument("--score-teachers", action="store_true", help="compute teacher scores (BM25 + MiniLM)")
    parser.add_argument("--kind", choices=["inference-free", "siamese"], default=defaults.kind)
    parser.add_argument("--base-model", type=Path, help="local *ForMaskedLM folder (default: minilm-splade-untrained)")
    parser.add_argument("--max-queries", type=int, help="train on the first N queries of the candidates file")
    for name in (
        "max_length",
        "candidates_per_query",
        "teacher_scale",
        "temperature",
        "document_regularizer_weight",
        "query_regularizer_weight",
        "l0_threshold",
        "regularizer_ramp_fraction",
        "batch_size",
        "learning_rate",
        "warmup_ratio",
        "epochs",
        "max_steps",
        "seed",
        "logging_steps",
        "save_steps",
    ):
        field = RecipeConfig.model_fields[name]
        kind = type(getattr(defaults, name)) if getattr(defaults, name) is not None else int
        parser.add_argument(
            "--" + name.replace("_", "-"), type=kind, default=getattr(defaults, name), help=field.description
        )
    parser.add_argument("--teacher-weights", type=json.loads, default=defaults.teacher_weights, help="JSON: w_k")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=defaults.precision)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    fields = {name: getattr(args, name) for name in RecipeConfig.model_fields if hasattr(args, name)}
    config = RecipeConfig(**fields)
    run_dir = args.run_dir or args.output.with_name(args.output.name + ".run")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")

    # 1. candidates, then the texts they name
    cache = run_dir / "teachers.jsonl"
    source = cache if args.score_teachers and cache.is_file() else args.candidates
    rows = read_candidates(source)[: args.max_queries]
    queries = select_texts(read_id_texts(args.queries), {r.qid for r in rows})
    passages = select_texts(read_id_texts(args.collection), {p for r in rows for p in r.pids})
    log.info("%d queries, %d distinct candidate passages", len(rows), len(passages))

    # 2. teacher scores
    if args.score_teachers and source is not cache:
        score_candidates(rows, queries, passages, (text for _, text in read_id_texts(args.collection)))
        with cache.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({"qid": row.qid, "pids": row.pids, "scores": row.scores}) + "\n")

    # 3. student, IDF, dataset
    mlm_dir = resolve_base_model(config)
    idf = None
    if config.kind == "inference-free":
        idf = fit_idf_weights(mlm_dir, (text for _, text in read_id_texts(args.collection)))
    model = build_student(mlm_dir, config.kind, idf, config.max_length)
    dataset = build_dataset(rows, queries, passages, config)

    # 4. train and save
    result = train(model, dataset, config, run_dir, args.output)
    log.info("%d steps, mean loss %.4f; model saved at %s", result.global_step, result.training_loss, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
