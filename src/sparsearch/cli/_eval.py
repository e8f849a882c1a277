"""``sparsearch eval``: score a model and engine on a BEIR collection."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import (
    BackendOption,
    ModelKindOption,
    ModeOption,
    RefitIdfOption,
    UrlOption,
    app,
    build_index_with_progress,
    check_mode,
    check_url_option,
    index_engine_with_progress,
    model_description,
    progress_bar,
    stderr,
    stdout,
    user_errors,
)
from sparsearch.errors import UsageError

if TYPE_CHECKING:
    from sparsearch.eval.metrics import Measure

# -- eval ----------------------------------------------------------------------------------------------
DEFAULT_METRICS_TEXT = "ndcg@10 recall@100 recall@1000 mrr@10 map"  # eval.metrics.DEFAULT_METRICS (not imported:
# importing sparsearch.eval loads numpy and the backends, which `sparsearch --help` must not wait for)
IGNORE_IDENTICAL_IDS_HELP = (
    "Drop every hit whose doc id equals its query id before scoring (BEIR's ignore_identical_ids). "
    "Needed for ArguAna and Quora, where each query is also a document of the corpus; collections whose "
    "query ids are unrelated to doc ids are unaffected. BEIR applies it by default, so its numbers differ "
    "slightly where ids collide by chance (cranfield's numeric ids: nDCG@10 0.3727 with it, 0.3730 without)."
)


@app.command("eval", context_settings={"allow_extra_args": True})  # names after --metrics, unquoted
def evaluate(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv (searches an index)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model to build a fresh index with (default: the shipped trained model)."),
    ] = None,
    model_kind: ModelKindOption = None,
    refit_idf: RefitIdfOption = False,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="Evaluate this existing index instead of building one (engines: the alias, built from --data "
            "when it does not exist yet).",
        ),
    ] = None,
    backend: BackendOption = "embedded",
    url: UrlOption = None,
    output: Annotated[Path | None, typer.Option("--output", help="Write the report as JSON here.")] = None,
    run_file: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="With --data: write the TREC run here. With --qrels: the TREC run to score (no index, no model).",
        ),
    ] = None,
    qrels: Annotated[
        Path | None,
        typer.Option(
            "--qrels",
            help="Score the existing run given by --run against these judgements: BEIR qrels "
            "(query-id corpus-id score, tab-separated, header) or TREC qrels (qid iteration docid grade), "
            "detected; a BEIR folder means its qrels/<split>.tsv.",
        ),
    ] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metrics",
            "-m",
            metavar="<names>",
            help="Metrics by their ir_measures or trec_eval names, space- or comma-separated or repeated: "
            "--metrics 'nDCG@10 R@100 RR@10 AP P@10', -m ndcg_cut.10 -m recall.100 -m map "
            f"(default: {DEFAULT_METRICS_TEXT}).",
        ),
    ] = None,
    per_query: Annotated[
        Path | None,
        typer.Option(
            "--per-query",
            help="Write each judged query's value of each metric here, like trec_eval -q: "
            "a TSV (query_id, metric, value), or JSON lines when the name ends in .jsonl.",
        ),
    ] = None,
    ignore_identical_ids: Annotated[
        bool, typer.Option("--ignore-identical-ids", help=IGNORE_IDENTICAL_IDS_HELP)
    ] = False,
    depth: Annotated[int, typer.Option("--depth", min=1, max=10000, help="Results retrieved per query.")] = 1000,
    split: Annotated[str, typer.Option("--split", help="Qrels split to evaluate.")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 256,
    mode: ModeOption = "sparse",
    candidates: Annotated[
        str | None,
        typer.Option(
            "--candidates",
            help="With --mode hybrid on an embedded index: 'sparse' (the sparse top 100, the default) or "
            "'union' (and the exact dense top 100).",
        ),
    ] = None,
) -> None:
    """Evaluate a model and engine on a BEIR collection (nDCG@10, recall@100/1000, MRR@10, MAP, latency),
    or score an existing TREC run against qrels (--run FILE --qrels FILE)."""
    with user_errors():
        from sparsearch.eval.metrics import DEFAULT_METRICS, parse_metrics

        more_metrics = list(ctx.args)  # `--metrics nDCG@10 R@100`: click leaves R@100 over
        if more_metrics and not metrics:
            raise UsageError(f"unexpected argument {more_metrics[0]!r}: metric names go after --metrics")
        names = [
            name for value in [*(metrics or []), *(more_metrics or [])] for name in value.replace(",", " ").split()
        ]
        measures = parse_metrics(names) if metrics else parse_metrics(DEFAULT_METRICS)
        check_mode(mode, backend, candidates)
        if candidates is not None and mode != "hybrid":
            raise UsageError("--candidates goes with --mode hybrid")
        if qrels is not None:
            if mode != "sparse":
                raise UsageError("--mode goes with --data (searching an index); --qrels scores an existing run")
            if data is not None or index is not None or model is not None or backend != "embedded" or url:
                raise UsageError(
                    "--qrels scores the existing run given by --run: it takes no --data, --index, --model, "
                    "--backend or --url (to search an index, give --data and leave out --qrels)"
                )
            if run_file is None:
                raise UsageError("--qrels needs --run FILE: the TREC run to score")
            _score_run(run_file, qrels, split, measures, per_query, output, ignore_identical_ids)
            return
        if data is None:
            raise UsageError(
                "give --data DIR (a BEIR folder: search an index and score it) or --run FILE --qrels FILE "
                "(score an existing TREC run)"
            )
        _evaluate_index(
            data,
            model,
            model_kind,
            refit_idf,
            index,
            backend,
            url,
            output,
            run_file,
            measures,
            per_query,
            ignore_identical_ids,
            depth,
            split,
            batch_size,
            mode,
            candidates,
        )


def _evaluate_index(  # noqa: PLR0913 - the eval command's options
    data: Path,
    model: str | None,
    model_kind: str | None,
    refit_idf: bool,
    index: str | None,
    backend: str,
    url: str | None,
    output: Path | None,
    run_file: Path | None,
    measures: list[Measure],
    per_query: Path | None,
    ignore_identical_ids: bool,
    depth: int,
    split: str,
    batch_size: int,
    mode: str = "sparse",
    candidates: str | None = None,
) -> None:
    """``eval --data``: search the judged queries in an index (built first without ``--index``, with dense
    vectors in hybrid mode) and score them."""
    from sparsearch._files import directory_bytes
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.eval.beir_data import load_beir_topics
    from sparsearch.eval.checks import check_run_against_qrels
    from sparsearch.eval.metrics import per_query_metrics, write_per_query
    from sparsearch.eval.runner import evaluate as run_evaluation
    from sparsearch.eval.trec import write_trec_run
    from sparsearch.hybrid import HybridBackend
    from sparsearch.jobs.build_embedded import fit_if_needed
    from sparsearch.search import Searcher

    check_url_option(backend, url)
    topics = load_beir_topics(data, split)
    qrels_file = data / "qrels" / f"{split}.tsv"
    with contextlib.ExitStack() as stack:
        if backend not in ("embedded", "lucene"):
            if index is None:
                raise UsageError(f"--backend {backend} needs --index NAME (the alias to evaluate or to build)")
            opened, encoder, index_stats = _open_engine(
                data,
                index,
                backend,
                url,
                model,
                batch_size,
                model_kind=model_kind,
                refit_idf=refit_idf,
                dense=mode == "hybrid",
            )
            stack.callback(opened.close)
        elif index is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sparsearch-eval-")))
            opened, _, encoder = build_index_with_progress(
                data,
                tmp / "index",
                model,
                batch_size,
                overwrite=False,
                model_kind=model_kind,
                refit_idf=refit_idf,
                dense=mode == "hybrid",
            )
            if backend == "lucene":  # its vectors through pyserini's Lucene indexer
                from sparsearch.jobs.build_lucene import build_lucene_index

                with stderr.status("indexing with pyserini (Lucene)"):
                    opened, _ = build_lucene_index(opened.path, tmp / "lucene")
                stack.callback(opened.close)
        else:
            searcher = stack.enter_context(Searcher.open(index, backend=backend))
            opened, encoder = searcher.backend, searcher.encoder
            if model is not None:  # an explicit model must be the one the index was built with
                requested = load_encoder(model, kind=model_kind, refit_idf=refit_idf)
                fit_if_needed(requested, data)
                opened.fingerprint.check_compatible(requested.fingerprint, where=f"index {index}")
        if backend == "embedded":
            stats = opened.stats()
            index_stats = {
                "postings": stats["nnz"],
                "avg_terms_per_doc": stats["avg_terms_per_doc"],
                "bytes": directory_bytes(opened.path),
            }
        elif backend == "lucene":
            manifest = opened.stats()
            index_stats = {
                "postings": manifest["postings"],
                "avg_terms_per_doc": manifest["avg_terms_per_doc"],
                "bytes": directory_bytes(opened.path),
                "doc_scale": manifest["doc_scale"],
                "query_max_impact": manifest["query_max_impact"],
                "engine_version": f"pyserini {manifest['pyserini_version']} (Java {manifest['java_version']})",
            }
        _check_judged_documents(opened, topics, qrels=qrels_file)
        searched = HybridBackend(opened, candidate_set=candidates) if mode == "hybrid" else opened

        def check(run: dict[str, dict[str, float]]) -> None:
            where = f"index {index}" if index is not None else "the index built from --data"
            for line in check_run_against_qrels(
                topics.qrels, run, qrels_name=str(qrels_file), run_name=where, check_documents=False
            ):
                _warn(line)

        with progress_bar("queries") as progress:
            task = progress.add_task("querying", total=len(topics.queries))
            report, run = run_evaluation(
                searched,
                encoder,
                topics,
                dataset=data.name,
                model=opened.fingerprint.name,
                index_stats=index_stats,
                depth=depth,
                metrics=measures,
                ignore_identical_ids=ignore_identical_ids,
                on_progress=lambda n: progress.advance(task, n),
                check=check,
                mode=mode,
            )
    table = Table(
        title=f"{report.dataset} · {report.model} · {report.backend} · {report.mode} · "
        f"{report.queries} queries · {report.docs:,} docs"
        + (" · identical ids ignored" if ignore_identical_ids else "")
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.metrics.items():
        table.add_row(name, f"{value:.4f}")
    for name, value in report.latency_ms.items():
        table.add_row(f"{name} (ms)", f"{value:.3f}")
    if report.first_query_ms is not None:  # one-time costs, kept out of the warm figures above
        table.add_row("first query, cold (ms)", f"{report.first_query_ms:.3f}")
    if report.postings_touched_per_query is not None:
        table.add_row("postings touched / query", f"{report.postings_touched_per_query:,.0f}")
    if "avg_terms_per_doc" in report.index:
        table.add_row("avg terms / document", f"{report.index['avg_terms_per_doc']:.1f}")
    if "engine_version" in report.index:
        table.add_row("engine version", str(report.index["engine_version"]))
    if description := model_description(encoder):
        table.add_row("model kind", description)
    stdout.print(table)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    if run_file is not None:
        write_trec_run(run, run_file, tag=report.model)
    if per_query is not None:
        write_per_query(per_query_metrics(topics.qrels, run, measures), per_query)


def _score_run(  # noqa: PLR0913 - the eval command's options
    run_file: Path,
    qrels: Path,
    split: str,
    measures: list[Measure],
    per_query: Path | None,
    output: Path | None,
    ignore_identical_ids: bool,
) -> None:
    """``eval --run FILE --qrels FILE``: score an existing TREC run (no index, no model)."""
    from sparsearch.eval.beir_data import load_qrels, resolve_qrels_path
    from sparsearch.eval.checks import check_run_against_qrels
    from sparsearch.eval.metrics import drop_identical_ids, mean_metrics, per_query_metrics, write_per_query
    from sparsearch.eval.trec import read_trec_run

    qrels_file = resolve_qrels_path(qrels, split)
    judgements = load_qrels(qrels_file)
    run = read_trec_run(run_file)
    if ignore_identical_ids:
        run = drop_identical_ids(run)
    for line in check_run_against_qrels(judgements, run, qrels_name=str(qrels_file), run_name=f"the run in {run_file}"):
        _warn(line)
    values = per_query_metrics(judgements, run, measures)
    means = mean_metrics(values)
    table = Table(
        title=f"{run_file.name} · {qrels_file} · {len(judgements)} queries"
        + (" · identical ids ignored" if ignore_identical_ids else "")
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in means.items():
        table.add_row(name, f"{value:.4f}")
    stdout.print(table)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "run": str(run_file),
            "qrels": str(qrels_file),
            "queries": len(judgements),
            "ignore_identical_ids": ignore_identical_ids,
            "metrics": means,
        }
        output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if per_query is not None:
        write_per_query(values, per_query)


def _warn(line: str) -> None:
    stderr.print(f"[yellow]warning:[/] {line}", highlight=False)


def _check_judged_documents(backend, topics, qrels: Path, chunk: int = 500) -> None:  # noqa: ANN001
    """Stop when the index holds none of the judged documents; warn when it lacks some.

    No judged document in the index means the qrels belong to another collection (every metric would
    be 0.0000); a few missing ones count as misses for every system, which a warning line names.

    Args:
        backend: the opened index (any backend with ``get_documents``).
        topics: the queries and qrels being evaluated.
        qrels: the qrels file, named in the messages.
        chunk: document ids per ``get_documents`` call (one engine request each).

    Raises:
        SparsearchError: no judged document is in the index.
    """
    from sparsearch.errors import SparsearchError

    judged = sorted({doc_id for judgements in topics.qrels.values() for doc_id in judgements})
    missing = [
        doc_id
        for start in range(0, len(judged), chunk)
        for doc_id, document in zip(
            judged[start : start + chunk], backend.get_documents(judged[start : start + chunk]), strict=True
        )
        if document is None
    ]
    if not missing:
        return
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    if len(missing) == len(judged):
        raise SparsearchError(
            f"none of the {len(judged):,} documents judged in {qrels} is in the index (e.g. {shown}): the "
            "qrels and the indexed corpus come from different collections"
        )
    stderr.print(
        f"[yellow]warning:[/] {len(missing):,} of the {len(judged):,} documents judged in {qrels} are not in the "
        f"index and count as misses: {shown}",
        highlight=False,
    )


def _open_engine(  # noqa: ANN202 - (backend, encoder, stats)
    data: Path,
    alias: str,
    backend_kind: str,
    url: str | None,
    model: str | None,
    batch_size: int,
    model_kind: str | None = None,
    refit_idf: bool = False,
    dense: bool = False,
):
    """Open the engine alias (building it from ``data`` first when it does not exist, with dense vectors
    when ``dense``); returns ``(backend, encoder, index_stats)``."""
    from sparsearch.backends.factory import open_engine
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.jobs.build_embedded import fit_if_needed
    from sparsearch.search import Searcher

    opened = open_engine(backend_kind, alias=alias, url=url)
    if opened.live_indexes():
        encoder = Searcher(opened).encoder  # the encoder stored with the index
        if model is not None:  # an explicit model must be the one the index was built with
            requested = load_encoder(model, kind=model_kind, refit_idf=refit_idf)
            fit_if_needed(requested, data)
            opened.fingerprint.check_compatible(requested.fingerprint, where=f"{backend_kind} index {alias}")
    else:
        summary, encoder = index_engine_with_progress(
            data, opened, model, model_kind=model_kind, refit_idf=refit_idf, batch_size=batch_size, dense=dense
        )
        if summary.failures:
            raise UsageError(
                f"{len(summary.failures)} documents failed to index (see {summary.failures_file}); fix them and rerun"
            )
    stats = opened.index_stats()
    return opened, encoder, stats
