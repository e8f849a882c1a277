"""bench/README.md and its plots from bench/results/bench.json (called by bench/run.py at the end).

Usage (to rewrite the report from the committed results only): .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

EXACT_ENGINES = ("sparsearch-embedded", "numpy-csc", "splade-index")
LABELS = {
    "sparsearch-embedded": "sparsearch embedded (exact)",
    "numpy-csc": "numpy/scipy CSC accumulation (exact)",
    "pisa": "PISA (pyterrier-pisa, 8-bit impacts)",
    "seismic": "Seismic (approximate)",
    "lucene-impact": "Lucene impact search (pyserini, 8-bit impacts)",
    "splade-index": "splade-index (numba, exact float32)",
    "opensearch": "OpenSearch 3 (rank_features, 9-bit weights)",
    "bm25s": "bm25s on the same text (own BM25 scores)",
}


def _fmt(value, spec: str = ".2f", missing: str = "–") -> str:
    if value is None:
        return missing
    return format(value, spec)


def _settings(result: dict) -> str:
    variant = (result.get("reported") or {}).get("variant") or {}
    parts = [f"{k}={v}" for k, v in variant.items()]
    settings = result.get("settings") or {}
    for key in ("doc_scale", "query_scale"):
        if key in settings:
            parts.append(f"{key}={settings[key]:.1f}")
    return ", ".join(parts)


def postings_bytes(settings: dict | None) -> int | None:
    """Bytes of the arrays the embedded engine's kernels scan (``describe()``'s array bytes, without
    ``.npy`` headers, like the CSC side; file bytes for rows measured before those were recorded)."""
    settings = settings or {}
    value = settings.get("postings_array_bytes", settings.get("postings_bytes"))
    return int(value) if value else None


def engine_table(engines: list[dict], with_ndcg: bool, csc_bytes: int | None = None) -> list[str]:
    """One row per engine; with ``csc_bytes`` (the scale tables) a column of the embedded engine's
    postings bytes and their ratio to the plain CSC arrays."""
    base = next((e for e in engines if e["engine"] == "sparsearch-embedded" and "reported" in e), None)
    base_p50 = base["reported"]["latency"]["p50_ms"] if base else None
    base_qps = base["reported"]["qps"] if base else None
    header = [
        "engine", "build s", "index MB", *(["postings MB (/ CSC)"] if csc_bytes else []), "load s", "peak RSS MB",
        "p50 ms", "p95 ms", "p99 ms", "p50 / embedded", "QPS all cores", "QPS / embedded", "recall@10 vs exact",
    ]  # fmt: skip
    if with_ndcg:
        header.append("nDCG@10")
    header.append("settings")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in engines:
        name = LABELS.get(e["engine"], e["engine"])
        if "reported" not in e:
            reason = e.get("skipped") or e.get("error", "no result")
            lines.append(f"| {name} | " + " | ".join(["–"] * (len(header) - 2)) + f" | not run: {reason} |")
            continue
        r = e["reported"]
        lat = r["latency"]
        row = [name, _fmt(e.get("build_s"), ".1f"), _fmt(e.get("index_bytes", 0) / 2**20, ".1f")]
        if csc_bytes:
            postings = postings_bytes(e.get("settings"))
            row.append(f"{postings / 2**20:.1f} ({postings / csc_bytes:.2f}x)" if postings else "–")
        row += [
            _fmt(e.get("load_s"), ".3f"),
            _fmt(e.get("peak_rss_mb"), ".0f") if e.get("rss_method") else "n/a¹",
            _fmt(lat["p50_ms"], ".3f"),
            _fmt(lat["p95_ms"], ".3f"),
            _fmt(lat["p99_ms"], ".3f"),
            _fmt(lat["p50_ms"] / base_p50 if base_p50 else None, ".2f") + "x",
            _fmt(r["qps"], ".0f"),
            _fmt(r["qps"] / base_qps if base_qps else None, ".2f") + "x",
            _fmt(r.get("recall@10"), ".4f", "n/a (own scores)"),
        ]
        if with_ndcg:
            row.append(_fmt(r.get("ndcg@10"), ".4f"))
        row.append(_settings(e))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def variants_table(engines: list[dict]) -> list[str]:
    lines = []
    for e in engines:
        if len(e.get("variants", [])) > 1:
            lines.append(f"{LABELS.get(e['engine'], e['engine'])}:")
            lines.append("")
            lines.append("| setting | p50 ms | p95 ms | QPS all cores | recall@10 |")
            lines.append("|---|---|---|---|---|")
            for v in e["variants"]:
                setting = ", ".join(f"{k}={val}" for k, val in v["variant"].items())
                lines.append(
                    f"| {setting} | {v['latency']['p50_ms']:.3f} | {v['latency']['p95_ms']:.3f} | {v['qps']:.0f} | "
                    f"{_fmt(v.get('recall@10'), '.4f', 'n/a')} |"
                )
            lines.append("")
    return lines


def plot_latency(profiles: dict[str, dict], path: Path) -> None:
    """Single-thread p50 against corpus size, one panel per profile (:func:`scale_profiles`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(len(profiles), 2)
    panels = -(-len(profiles) // columns)
    fig, axes = plt.subplots(panels, columns, figsize=(7 * columns, 4.5 * panels), squeeze=False)
    for ax, section in zip(axes.flat, profiles.values(), strict=False):
        engines = dict.fromkeys(e["engine"] for row in section["rows"] for e in row["engines"])
        for engine in engines:
            xs, ys = [], []
            for row in section["rows"]:
                for e in row["engines"]:
                    if e["engine"] == engine and "reported" in e:
                        xs.append(row["docs"])
                        ys.append(e["reported"]["latency"]["p50_ms"])
            if xs:
                style = "-o" if engine == "sparsearch-embedded" else "--o"
                ax.plot(xs, ys, style, label=LABELS.get(engine, engine), linewidth=2.5 if "embedded" in engine else 1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"documents (synthetic, fitted to {section['profile']})")
        ax.set_ylabel("single-query latency p50, one thread (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(profiles) :]:
        ax.set_visible(False)
    fig.suptitle("Top-10 latency against corpus size (exact and approximate engines)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scale_profiles(scale: dict) -> dict[str, dict]:
    """The scale section's profiles: collection name -> ``{"profile": "<model> on <collection>", "rows":
    [...]}``. A bench.json written before there were several profiles (``{"profile", "rows"}``) reads as
    one profile named by its collection; ``{}`` when there are no rows."""
    if "profiles" in scale:
        return dict(scale["profiles"])
    if not scale.get("rows"):
        return {}
    label = scale.get("profile", "an unnamed profile")
    return {label.rsplit(" on ", 1)[-1]: {"profile": label, "rows": scale["rows"]}}


REFERENCE_ORDER = ("bm25", "dense (reference)", "ensemble (reference)")


def collections_lines(section: dict, result: dict) -> list[str]:
    """The generalization table: nDCG@10 per (model, collection) with the mean of the collections, then
    each row's cost (postings per query, search and query-encoding p50)."""
    rows = [r for r in section["rows"] if "error" not in r]
    collections = section["collections"]
    lines = ["## Quality on the four development collections", ""]
    lines += earlier_run_note(section.get("run_at"), result, KEPT_SECTION)
    lines.append(
        "nDCG@10 of `sparsearch eval` (embedded engine, all judged queries). Every choice inside a model "
        "(mixing weight, steps, fusion) was made on documents or held-out pseudo-queries; these queries only "
        "measure. `adapted` is `sparsearch adapt` on each collection's own documents. The references are not "
        "sparsearch models (`bench/references.py`): dense all-MiniLM-L6-v2 (best 160-word window) and the "
        "min-max ensemble of word BM25 and dense over their top-100 (equal weights)."
        + ("" if section.get("adapted", True) else " This run left out the adapted rows (`--no-adapt`).")
    )
    lines.append("")

    def label(model: str) -> str:
        return "adapted" if model.startswith("adapted") else model

    models = list(dict.fromkeys(label(r["model"]) for r in rows))
    models.sort(key=lambda m: REFERENCE_ORDER.index(m) if m in REFERENCE_ORDER else len(REFERENCE_ORDER))
    score = {(label(r["model"]), r["collection"]): r for r in rows}
    lines.append("| model | " + " | ".join(collections) + " | mean |")
    lines.append("|---|" + "---|" * (len(collections) + 1))
    for model in models:
        values = [score.get((model, c), {}).get("ndcg@10") for c in collections]
        cells = [f"{v:.4f}" if v is not None else "–" for v in values]
        mean = f"{sum(values) / len(values):.4f}" if all(v is not None for v in values) else "–"
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {mean} |")
    lines += ["", "Cost of each row (postings per query: the postings of the query's terms, the cost of "
              "exhaustive scoring; p50 on one thread):", ""]  # fmt: skip
    lines.append("| collection | model | R@100 | terms/doc | postings/query | search p50 ms | query encode p50 ms |")
    lines.append("|---|---|---|---|---|---|---|")
    for r in rows:
        terms = f"{r['avg_terms_per_doc']:.1f}" if "avg_terms_per_doc" in r else "–"
        postings = f"{r['postings_per_query']:,.0f}" if "postings_per_query" in r else "–"
        search = f"{r['search_p50_ms']:.3f}" if "search_p50_ms" in r else "–"
        lines.append(
            f"| {r['collection']} | {label(r['model'])} | {r['recall@100']:.4f} | {terms} | {postings} | {search} | "
            f"{r.get('query_encode_p50_ms', 0):.3f} |"
        )
    for r in section["rows"]:
        if "error" in r:
            lines.append(f"\n{r['model']} on {r['collection']} failed: `{r['error'][:300]}`")
    return [*lines, ""]


SPEED_GOAL = 30.0
"""Documents per second of the default model on cranfield with 2 CPU cores (issue 18)."""
QUALITY_TOLERANCE = 0.005
"""The most nDCG@10 the faster runtime may lose on any collection."""
PROJECTED = [(1_000_000, 1), (1_000_000, 10), (10_000_000, 10), (10_000_000, 100)]
"""(documents, machines) of the projection table."""


def _hours(documents: int, machines: int, rate: float) -> str:
    hours = documents / (rate * machines) / 3600
    if hours >= 1:
        return f"{hours:,.1f} h"
    return f"{hours * 60:,.0f} min" if hours * 60 >= 1 else f"{hours * 3600:,.0f} s"


def indexing_lines(section: dict, result: dict) -> list[str]:
    """Indexing cost: in-process documents/s by model, the runtimes on whole collections (speed and
    nDCG@10, with the goal check), one process against a local Ray cluster, and the projection."""
    lines = ["## Indexing cost", ""]
    lines += earlier_run_note(section.get("run_at"), result, KEPT_SECTION)
    throughput = section["throughput"]
    lines += [
        f"Documents per second of each model's document encoder in one process ({section['cores']} cores, first "
        f"{throughput['docs']} {throughput['data']} documents, best of {throughput['rounds']} interleaved rounds, "
        "corpus statistics fitted first; `bench/indexing.py`):",
        "",
        "| model | docs/s (best) | docs/s (median) | load (1 min) after each round |",
        "|---|---|---|---|",
    ]
    for r in throughput["rows"]:
        loads = ", ".join(f"{x:.1f}" for x in r["load_average_1min"])
        lines.append(f"| {r['model']} | {r['docs_per_second']:,.1f} | {r['docs_per_second_median']:,.1f} | {loads} |")

    runtimes = {(r["collection"], r["runtime"]): r for r in section["runtimes"]}
    collections = list(dict.fromkeys(r["collection"] for r in section["runtimes"]))
    lines += [
        "",
        "The default model on whole collections, exact torch path against the int8 ONNX runtime (the CPU default): "
        "`SPARSEARCH_ENCODER_RUNTIME=R sparsearch index --model default` timed end to end (model load and IDF "
        "included, the one-off caches already built), then `sparsearch eval`:",
        "",
        "| collection | docs | torch docs/s | ONNX docs/s | speed-up | nDCG@10 torch | nDCG@10 ONNX | difference "
        "| load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    losses = []
    for name in collections:
        torch, onnx = runtimes.get((name, "torch"), {}), runtimes.get((name, "onnx"), {})
        if "error" in torch or "error" in onnx or not torch or not onnx:
            lines.append(f"| {name} | failed: `{(torch.get('error') or onnx.get('error') or 'missing')[:200]}` |")
            continue
        difference = onnx["ndcg@10"] - torch["ndcg@10"]
        losses.append((name, difference))
        lines.append(
            f"| {name} | {torch['docs']:,} | {torch['docs_per_second']:.1f} | {onnx['docs_per_second']:.1f} | "
            f"×{onnx['docs_per_second'] / torch['docs_per_second']:.2f} | {torch['ndcg@10']:.4f} | "
            f"{onnx['ndcg@10']:.4f} | {difference:+.4f} | {torch['load_before']:.1f}–{onnx['load_after']:.1f} |"
        )
    cranfield = runtimes.get(("cranfield", "onnx"), {})
    if "docs_per_second" in cranfield and losses:
        rate, worst = cranfield["docs_per_second"], min(losses, key=lambda item: item[1])
        speed = "met" if rate >= SPEED_GOAL else "missed"
        quality = "met" if worst[1] >= -QUALITY_TOLERANCE else "missed"
        lines += [
            "",
            f"Goal check: at least {SPEED_GOAL:.0f} documents/s for the default model on cranfield: **{speed}** "
            f"({rate:.1f}); at most {QUALITY_TOLERANCE} nDCG@10 lost on each collection: **{quality}** (largest "
            f"change {worst[1]:+.4f}, {worst[0]}).",
        ]

    cluster = section["cluster"]
    lines += [
        "",
        f"One process against a local Ray cluster on this machine (`ray start --head`, {cluster['workers']} CPU "
        f"actors of one core each; {cluster['data']}, `sparsearch encode` and `sparsearch index --ray auto` timed "
        "end to end, model load and corpus statistics included):",
        "",
        "| run | docs | seconds | docs/s | load | documents in the engine |",
        "|---|---|---|---|---|---|",
    ]
    for r in cluster["rows"]:
        if "error" in r:
            lines.append(f"| {r['run']} | failed: `{r['error'][:300]}` | | | | |")
            continue
        count = r.get("engine_count")
        check = "–" if count is None else f"{count:,} ({'exact' if count == r['docs'] else 'MISMATCH'})"
        lines.append(
            f"| {r['run']} | {r['docs']:,} | {r['seconds']:.1f} | {r['docs_per_second']:.1f} | "
            f"{r['load_before']:.1f}–{r['load_after']:.1f} | {check} |"
        )
    if section.get("opensearch_error"):
        lines.append(f"\nOpenSearch did not run: `{section['opensearch_error'][:300]}`")

    rates = [(r["model"], r["docs_per_second"]) for r in throughput["rows"]]
    if "docs_per_second" in cranfield:
        rates.append(("default (int8 ONNX), whole `sparsearch index` of cranfield", cranfield["docs_per_second"]))
    header = " | ".join(f"{d / 1e6:g}M docs on {m} machine{'s' if m > 1 else ''}" for d, m in PROJECTED)
    lines += [
        "",
        f"Projected encoding time: a projection, not a measurement. Each machine is assumed to be like this one "
        f"({section['cores']} cores) and to encode at the rate above (documents like {throughput['data']}'s), the "
        "machines sharing the corpus without loss (the Ray table shows the overhead on one machine); engine "
        "loading is not included. No GPU was lent to this run (`bench/gpu_encode.py` measures one).",
        "",
        f"| model | docs/s per machine | {header} |",
        "|---|---|" + "---|" * len(PROJECTED),
    ]
    for model, rate in rates:
        cells = " | ".join(_hours(d, m, rate) for d, m in PROJECTED)
        lines.append(f"| {model} | {rate:,.1f} | {cells} |")
    return [*lines, ""]


def plot_quality(quality: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = "osD^vP*X"
    models = list(dict.fromkeys(r["model"] for r in quality["rows"] if "error" not in r))
    collections = list(dict.fromkeys(r["collection"] for r in quality["rows"]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row in quality["rows"]:
        if "error" in row:
            continue
        m = models.index(row["model"])
        c = collections.index(row["collection"])
        ax.scatter(row["avg_terms_per_doc"], row["ndcg@10"], marker=markers[m % len(markers)], s=60,
                   color=colors[c % len(colors)])  # fmt: skip
        ax.annotate(row["model"], (row["avg_terms_per_doc"], row["ndcg@10"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")  # fmt: skip
    for c, name in enumerate(collections):
        ax.scatter([], [], color=colors[c % len(colors)], label=name)
    ax.set_xlabel("sparsity: average terms per document")
    ax.set_ylabel("nDCG@10")
    ax.set_title("Quality against sparsity (sparsearch eval)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def goal_lines(scale: dict) -> list[str]:
    rows = [r for r in scale.get("rows", []) if any("reported" in e for e in r["engines"])]
    if not rows:
        return ["No scale results."]
    row = rows[-1]
    by = {e["engine"]: e for e in row["engines"]}
    ours = by.get("sparsearch-embedded", {}).get("reported")
    lines = [f"Largest synthetic corpus measured in this run: **{row['docs']:,} documents** "
             f"({row['avg_terms_per_doc']:.0f} terms per document, {row['avg_terms_per_query']:.1f} per query)."]  # fmt: skip  # noqa: E501
    if row["docs"] < 1_000_000:
        lines.append("The goal is stated at 1M documents; that corpus runs with `--full` (see the scale table for "
                     "whether its figures are from this run).")  # fmt: skip
    if not ours:
        return lines + ["The embedded engine has no result at this size."]
    p50 = ours["latency"]["p50_ms"]
    lines.append("")
    lines.append("| goal | peer p50 ms | embedded p50 ms | embedded is | met |")
    lines.append("|---|---|---|---|---|")
    for engine, cond in (("pisa", None), ("lucene-impact", None), ("seismic", 0.99)):
        e = by.get(engine)
        if not e or "reported" not in e:
            lines.append(f"| ahead of {engine} | not run | {p50:.3f} | – | – |")
            continue
        peer = e["reported"]
        if cond is not None and peer.get("recall@10", 0) < cond:
            lines.append(f"| ahead of {engine} at recall@10 >= {cond} | no setting reached {cond} "
                         f"(best {peer.get('recall@10', 0):.4f} at {peer['latency']['p50_ms']:.3f}) | {p50:.3f} | – | – |")  # fmt: skip  # noqa: E501
            continue
        ratio = peer["latency"]["p50_ms"] / p50
        label = f"ahead of {engine}" + (f" at recall@10 >= {cond}" if cond else "")
        lines.append(f"| {label} | {peer['latency']['p50_ms']:.3f} | {p50:.3f} | "
                     f"{ratio:.2f}x {'faster' if ratio >= 1 else 'slower'} | {'yes' if ratio >= 1 else 'no'} |")  # fmt: skip  # noqa: E501
    lines += index_size_lines(row, by["sparsearch-embedded"])
    lines += ["", *peers_ahead_lines(scale["rows"], lambda r: f"{r['docs']:,} synthetic documents")]
    return lines


EMBEDDED = "sparsearch-embedded"
GOAL_DOCS = 1_000_000
"""The corpus size of the postings and latency goals (issue 19)."""
POSTINGS_GOAL = 0.5
"""At most this fraction of the plain CSC arrays' bytes for the embedded engine's postings at 1M documents."""
LATENCY_GOAL = 0.5
"""At most this fraction of the fastest peer's single-thread p50 for the embedded engine at 1M documents."""
QPS_SIZES = (10_000, 100_000, 1_000_000)
"""Sizes at which the embedded engine must serve at least as many queries per second as every peer."""
LARGEST_DOCS = 10_000_000
"""The size at which the embedded engine must simply run (streamed corpus): on one profile, the first of
a ``--full`` run (four would take longer than the rest of the run)."""


LARGEST_GOAL = f"runs at {LARGEST_DOCS / 1e6:g}M documents (streamed corpus)"


def _size_row(rows: list[dict], docs: int) -> dict | None:
    return next((r for r in rows if r["docs"] == docs), None)


def _embedded_result(row: dict | None, docs: int) -> tuple[dict | None, tuple[str, str]]:
    """The embedded engine's entry of ``row`` (the row of ``docs`` documents) when it has a result, else
    ``(None, (result, figure))``: "not measured" without the row or without the engine in it, "missed"
    (with the reason) when it failed or was skipped."""
    entry = next((e for e in row["engines"] if e["engine"] == EMBEDDED), None) if row else None
    if entry is None:
        return None, ("not measured", f"no {docs:,}-document row" if row is None else "not run in the row")
    if "reported" not in entry:
        reason = (entry.get("error") or entry.get("skipped") or "no result")[:200].replace("|", "/")
        return None, ("**missed**", f"no result: {reason}")
    return entry, ("", "")


def _peer_results(row: dict) -> list[tuple[str, dict]]:
    """(engine, reported setting) of every other engine with a result in ``row`` (approximate engines:
    the setting the table reports, the fastest at recall@10 >= 0.99)."""
    return [(e["engine"], e["reported"]) for e in row["engines"] if e["engine"] != EMBEDDED and "reported" in e]


def _goal(met: bool) -> str:
    return "**met**" if met else "**missed**"


def embedded_goals(rows: list[dict]) -> list[tuple[str, str, str]]:
    """The embedded engine's goals on one profile's scale rows.

    Returns:
        ``(goal, result, figure)`` per goal: result is "**met**", "**missed**" or "not measured" (no row
        of that size, or the embedded engine not in it). The 10M goal only where the rows have a 10M row:
        it is checked on one profile (:func:`embedded_goal_lines` says when none has one).
    """
    goals: list[tuple[str, str, str]] = []
    at_goal = _size_row(rows, GOAL_DOCS)
    ours, failure = _embedded_result(at_goal, GOAL_DOCS)
    size = f"{GOAL_DOCS / 1e6:g}M"

    # a. postings at most half the CSC arrays
    goal = f"postings <= {POSTINGS_GOAL:g}x the plain CSC arrays at {size} documents"
    postings = postings_bytes(ours.get("settings")) if ours else None
    if ours is None:
        goals.append((goal, *failure))
    elif postings is None:
        goals.append((goal, "not measured", "the row predates postings bytes in the embedded settings"))
    else:
        ratio = postings / at_goal["csc_bytes"]
        figure = f"postings {postings / 2**20:.1f} MB = {ratio:.3f}x CSC {at_goal['csc_bytes'] / 2**20:.1f} MB"
        goals.append((goal, _goal(ratio <= POSTINGS_GOAL), figure))

    # b. single-thread p50 at most half the fastest peer's
    goal = f"exact top-10 p50 (one thread) <= {LATENCY_GOAL:g}x the fastest peer's at {size} documents"
    peers = _peer_results(at_goal) if at_goal else []
    if ours is None:
        goals.append((goal, *failure))
    elif not peers:
        goals.append((goal, "not measured", "no peer has a result in the row"))
    else:
        peer, best = min(peers, key=lambda item: item[1]["latency"]["p50_ms"])
        mine, theirs = ours["reported"]["latency"]["p50_ms"], best["latency"]["p50_ms"]
        figure = (
            f"embedded (exact: the recall reference) {mine:.3f} ms, fastest peer {peer} {theirs:.3f} ms "
            f"({mine / theirs:.4f}x its p50)"
        )
        goals.append((goal, _goal(mine <= LATENCY_GOAL * theirs), figure))

    # c. QPS on all cores at least every peer's
    for docs in QPS_SIZES:
        goal = f"QPS (all cores) >= every peer's at {docs:,} documents"
        row = _size_row(rows, docs)
        entry, failure = _embedded_result(row, docs)
        peers = _peer_results(row) if row else []
        if entry is None:
            goals.append((goal, *failure))
        elif not peers:
            goals.append((goal, "not measured", "no peer has a result in the row"))
        else:
            peer, best = max(peers, key=lambda item: item[1]["qps"])
            mine = entry["reported"]["qps"]
            figure = f"embedded {mine:,.0f} QPS, best peer {peer} {best['qps']:,.0f} ({mine / best['qps']:.2f}x)"
            goals.append((goal, _goal(mine >= best["qps"]), figure))

    # d. 10M documents: runs, with its figures
    row = _size_row(rows, LARGEST_DOCS)
    if row is None:
        return goals
    entry, failure = _embedded_result(row, LARGEST_DOCS)
    if entry is None:
        goals.append((LARGEST_GOAL, *failure))
    else:
        latency, postings = entry["reported"]["latency"], postings_bytes(entry.get("settings"))
        figure = (
            f"p50 {latency['p50_ms']:.3f} ms, p99 {latency['p99_ms']:.3f} ms, {entry['reported']['qps']:,.0f} QPS, "
            f"build {_fmt(entry.get('build_s'), ',.0f')} s, peak RSS {_fmt(entry.get('peak_rss_mb'), ',.0f')} MB, "
            f"index {entry.get('index_bytes', 0) / 2**30:.2f} GB"
            + (f" (postings {postings / 2**30:.2f} GB)" if postings else "")
            + (f", corpus on disk {row['corpus_bytes'] / 2**20:.1f} MB" if "corpus_bytes" in row else "")
        )
        goals.append((LARGEST_GOAL, _goal(True), figure))
    return goals


def embedded_goal_lines(scale: dict) -> list[str]:
    """The embedded engine's goal check (issue 19) as Markdown lines: one table row per (profile, goal)
    of :func:`embedded_goals`. ``scale`` is the scale section, either shape (:func:`scale_profiles`)."""
    profiles = scale_profiles(scale)
    if not profiles:
        return ["No scale results: the embedded engine's goals are not measured."]
    lines = [
        f"The embedded engine against its goals on each profile: postings at most {POSTINGS_GOAL:g}x the plain CSC "
        f"arrays and single-thread p50 at most {LATENCY_GOAL:g}x the fastest peer's (any other engine with a "
        f"result; approximate ones at their reported setting) at {GOAL_DOCS:,} documents, QPS on all cores at "
        f"least every peer's at {', '.join(f'{d:,}' for d in QPS_SIZES)} documents, and a run at "
        f"{LARGEST_DOCS:,} documents on one profile (`--full`: the first). The embedded engine is exact: it is the "
        "reference the others' recall@10 is measured against.",
        "",
        "| profile | goal | result | figure |",
        "|---|---|---|---|",
    ]
    for section in profiles.values():
        for goal, result, figure in embedded_goals(section["rows"]):
            lines.append(f"| {section['profile']} | {goal} | {result} | {figure} |")
    if not any(_size_row(section["rows"], LARGEST_DOCS) for section in profiles.values()):
        lines.append(f"| any | {LARGEST_GOAL} | not measured | no {LARGEST_DOCS:,}-document row (`--full`) |")
    return lines


def peers_ahead_lines(rows: list[dict], label) -> list[str]:
    """Lines per corpus where an engine answered faster than the embedded engine (p50, one thread) or
    served more queries per second (all cores), at recall@10 >= 0.99 against exact search or with its
    own BM25 scores (bm25s): the peers that win, under an introduction."""
    lines = []
    for row in rows:
        by = {e["engine"]: e.get("reported") for e in row["engines"]}
        ours = by.get("sparsearch-embedded")
        if not ours:
            continue
        ours_ms, ours_qps = ours["latency"]["p50_ms"], ours.get("qps")
        ahead, more_qps = [], []
        for engine, peer in by.items():
            if engine == "sparsearch-embedded" or not peer:
                continue
            recall, peer_ms, peer_qps = peer.get("recall@10"), peer["latency"]["p50_ms"], peer.get("qps")
            if recall is not None and recall < 0.99:
                continue
            if peer_ms < ours_ms:
                ahead.append(f"{engine} {peer_ms:.3f} ms ({ours_ms / peer_ms:.2f}x faster)")
            if ours_qps and peer_qps and peer_qps > ours_qps:
                more_qps.append(f"{engine} {peer_qps:,.0f} ({peer_qps / ours_qps:.2f}x)")
        if ahead:
            lines.append(f"- {label(row)}: embedded {ours_ms:.3f} ms; faster: {', '.join(ahead)}")
        if more_qps:
            lines.append(f"- {label(row)}: embedded {ours_qps:,.0f} QPS on all cores; more: {', '.join(more_qps)}")
    if not lines:
        return ["No peer answered faster, or served more queries per second, than the embedded engine at "
                "recall@10 >= 0.99."]  # fmt: skip
    intro = (
        "Where a peer is ahead (p50 with one thread, or QPS with all cores; recall@10 >= 0.99 against exact "
        "search; bm25s ranks by its own BM25 scores, so its speed is a reference, not a competitor on these "
        "vectors):"
    )
    return [intro, "", *lines]


HOW_ENGINES_SCORE = (
    "How the exact engines score: splade-index adds every posting of every query term into a float32 array "
    "over all documents, then takes the top k in one pass. The embedded engine scans compressed postings "
    "(uint16 document offsets in windows of 65,536 documents, 8-bit impacts: 3 bytes a posting) window by "
    "window into a float32 accumulator that stays in L2 cache, skips the postings of terms too light to lift "
    "a document into the top k (MaxScore at window granularity; a common light term also stores its largest "
    "impact in each block of 16 documents, so it is probed only for the documents whose partial score plus "
    "their block's bound can still make it), and rescores the few candidates from the exact float32 weights "
    "stored apart (`sparsearch.backends.embedded.kernels`), so its results equal exact scoring. The Python call around "
    "the kernel (query dicts to term ids, hits with external ids) is part of every embedded figure, while "
    "the splade-index adapter hands its kernel term-id arrays prepared before the clock starts. Batch "
    "search: splade-index runs all queries in one compiled parallel loop; the embedded engine flattens the "
    "batch, maps its tokens to term ids in one pass per segment and searches chunks of 32 queries on kept "
    "threads, one compiled call each, so one thread's Python part overlaps another's kernel."
)


def index_size_lines(row: dict, embedded: dict) -> list[str]:
    """The "index no larger than the plain CSC arrays" goal row, then what each side counts."""
    settings = embedded.get("settings") or {}
    files = settings.get("postings_bytes")
    if not files:
        return []
    arrays = settings.get("postings_array_bytes")  # absent in rows measured before it was recorded
    csc = row["csc_bytes"]
    ours = arrays if arrays is not None else files
    widths = row.get("csc_dtypes")
    csc_text = (
        f"at the widths scipy picks for it ({widths['indptr']}, {widths['indices']}, {widths['data']})"
        if widths
        else "with int64 `indptr`, int32 `indices`, float32 `data` (a row measured before the CSC side took scipy's "
        "own widths, int32 `indptr` at this size)"
    )
    stored = settings.get("postings_dtypes") or {}
    stored_text = ", ".join(f"{f.removesuffix('.npy')} {d}" for f, d in stored.items()) or "see bench.json"
    met = ours <= csc
    lines = [
        f"| index no larger than the plain CSC arrays | CSC {csc / 2**20:.1f} MB ({csc:,} bytes) | "
        f"postings {ours / 2**20:.1f} MB ({ours:,} bytes) | {ours / csc:.6f}x CSC | {'yes' if met else 'no'} |",
        "",
        f"Index size at {row['docs']:,} documents, compared like for like. CSC side: scipy's `indptr` + `indices` + "
        f"`data` of the (documents x terms) matrix {csc_text}, array bytes only; it has no token strings, doc ids "
        "or text (term ids and row numbers only). Embedded side: every array the search kernels read "
        f"({stored_text}; " + ("array bytes, without the 128-byte `.npy` headers" if arrays is not None else
                               "file bytes, `.npy` headers included: a row measured before array bytes were recorded")
        + f"; {files:,} bytes as files). Not counted on either side: the token list (`vocab.json`), external doc "
        "ids and their sort order for tie-breaks (`doc_ids.json`, `doc_id_rank.npy`), the stored text and the "
        f"manifest: the whole index directory is {embedded['index_bytes'] / 2**20:.1f} MB.",
    ]  # fmt: skip
    if settings.get("rescoring_bytes"):
        rescoring = settings.get("rescoring_array_bytes", settings["rescoring_bytes"])
        lines[-1] += (
            f" Not counted either: the exact float32 weights (`weights.npy`, {rescoring / 2**20:.1f} MB), stored apart "
            "and read only to rescore the few candidates that can reach the top k."
        )
    if "max_weight.npy" in (settings.get("postings_files") or {}):
        lines.append("")
        lines.append("This row predates index format 2: int64 offsets and a stored `max_weight.npy` (4 bytes a term).")
    return lines


SERVICE_SECTION = (
    "## The REST service under concurrency and hostile load",
    "",
    "`bench/service_scenarios.py` (not part of `bench/run.py`; its report is "
    "[results/service_scenarios.md](results/service_scenarios.md), raw figures in `results/service_scenarios.json`) "
    "starts real `sparsearch serve` processes on free ports over BM25 indexes of Cranfield and checks, from client "
    "threads: (a) searches + 1-document upserts/deletes + a loop of `sparsearch index --overwrite` on the served "
    "directory, with 1 and 2 workers: no 5xx, no acknowledged upsert lost or delete undone (over HTTP and in a "
    "fresh process), the index still opens; (b) plain-search p99 next to slow explained batches (sent at the "
    "largest size the cost limit accepts) and updates, against idle (goal <= 5x); (c) term count and bytes after "
    "upsert/delete churn and after a force-merge, against a fresh build of the same documents; (d) `/metrics` "
    "under made-up long HTTP methods, and slowloris connections after the header timeout. Every goal is in the "
    "report's first table; the exit status is 1 when one is missed.",
    "",
    "```bash",
    ".venv/bin/python bench/service_scenarios.py                                   # ~3-5 min on 2 cores: the report",
    ".venv/bin/python bench/service_scenarios.py --short --output /tmp/scenarios   # ~2 min (exit 1 on a miss)",
    ".venv/bin/python bench/service_scenarios.py --scenarios a --workers 2         # one scenario",
    "```",
    "",
    "[results/service_scenarios_31a0889.md](results/service_scenarios_31a0889.md) is the same run on the code "
    "before segments and request limits (commit `31a0889`): 5xx during overwrites with 1 and 2 workers "
    "(`FileNotFoundError` on a removed generation), plain-search p99 1069x idle next to a 100 x 1000 explained "
    "batch (66 s), 2,110 terms too many after churn (no merge to run), `/metrics` growing ~21 KB per made-up "
    "method, and every slowloris connection still open. `tests/test_service_scenarios.py` (integration, in CI) "
    "runs the short scenarios a (2 workers), b and c and asserts the behaviour only (no 5xx, nothing lost, the "
    "index opens, a fresh build's term count after the merge).",
    "",
)
"""The service section of bench/README.md (its figures are in its own report, not in bench.json)."""
KEPT_SECTION = "this run's `--sections` left this section out."
KEPT_SIZE = (
    "this run did not measure this size (`--sections` or `--sizes` left it out), so its corpus follows that run's "
    "model."
)


def scale_lines(profiles: dict[str, dict], result: dict, plots: Path) -> list[str]:
    """The scale section: the latency plot (one panel per profile), then per profile and size the corpus
    (with its bytes on disk) and the engine table with the embedded engine's postings against CSC."""
    lines = ["## Engines at scale (synthetic corpora)", ""]
    lines.append(
        f"Corpora drawn from the profile of {', '.join(p['profile'] for p in profiles.values())} (document frequency "
        "per token, terms per document, weight distribution; `sparsearch.eval.synthetic`; `--profiles` picks the "
        "collections); queries of 5-15 tokens drawn by document frequency and weighted by IDF. Above "
        "2M documents the corpus is streamed: its folder holds the profile and a descriptor, and every build "
        "regenerates the same rows chunk by chunk (the build time includes that), so the corpus takes no disk next "
        "to the index."
    )
    lines.append("")
    plot_latency(profiles, plots / "latency_vs_size.png")
    lines += ["![latency against corpus size](results/latency_vs_size.png)", ""]
    for section in profiles.values():
        for row in section["rows"]:
            widths = row.get("csc_dtypes", {}).get("indptr", "int64")
            disk = ""
            if "corpus_bytes" in row:
                kind = " streamed" if row.get("corpus_kind") == "streamed" else ""
                disk = f", corpus on disk {row['corpus_bytes'] / 2**20:.1f} MB{kind}"
            lines.append(
                f"### {section['profile']}: {row['docs']:,} documents ({row['avg_terms_per_doc']:.1f} terms/doc, "
                f"{row['avg_terms_per_query']:.1f} terms/query, plain CSC arrays {row['csc_bytes'] / 2**20:.1f} MB "
                f"with {widths} offsets{disk})"
            )
            lines.append("")
            if row.get("run_at"):  # rows from before sizes were dated say nothing
                lines += earlier_run_note(row["run_at"], result, KEPT_SIZE)
            lines += [*engine_table(row["engines"], with_ndcg=False, csc_bytes=row["csc_bytes"]), ""]
            lines += [*postings_note(row), *variants_table(row["engines"])]
    return lines


def postings_note(row: dict) -> list[str]:
    """``[line, ""]`` under a scale table: what the embedded engine's postings column counts, that its exact
    weights are stored apart (compressed format), and the build time spent regenerating a streamed corpus."""
    entry = next((e for e in row["engines"] if e["engine"] == EMBEDDED and "reported" in e), None)
    if entry is None:
        return []
    settings = entry.get("settings") or {}
    files = ", ".join(f"`{name}`" for name in settings.get("postings_files") or {}) or "see bench.json"
    text = f"Embedded postings: the arrays its kernels scan ({files}), array bytes as for the CSC arrays."
    if settings.get("rescoring_bytes"):
        text += (
            f" The exact float32 weights are stored apart (`weights.npy`, "
            f"{settings.get('rescoring_array_bytes', settings['rescoring_bytes']) / 2**20:.1f} MB, not in the "
            "postings figure) and read only to rescore the few candidates that can reach the top k."
        )
    if row.get("corpus_kind") == "streamed" and entry.get("corpus_read_s"):
        text += f" Its build time includes {entry['corpus_read_s']:,.0f} s regenerating the streamed corpus."
    return [text, ""]


def earlier_run_note(run_at: str | None, result: dict, why: str) -> list[str]:
    """``[line, ""]`` saying that a section or size was measured by an earlier run (at ``run_at``) and
    kept, and ``why``; ``[]`` when this run measured it."""
    if run_at == result["created_at"]:
        return []
    return [f"Measured by an earlier run ({run_at or 'a run before sections were dated'}) and kept: {why}", ""]


def write_report(result: dict, bench: Path) -> None:
    out = bench / "README.md"
    plots = bench / "results"
    plots.mkdir(parents=True, exist_ok=True)
    sections = result["sections"]
    m = result["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `.venv/bin/python bench/run.py` (add `--full` for four profiles up to 1M documents and 10M on "
        "the first); do not edit by hand. Raw figures: `bench/results/bench.json`.",
        "",
        f"Last run: `{result['command']}` at {result['created_at']}, {result['wall_s'] / 60:.1f} min, "
        f"model **{result['model']}** (its document and query vectors go to every engine), top-{result['k']}, "
        f"timings are medians of {result['repeats']} passes.",
        "",
        "## Machine",
        "",
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, {m['os']}, Python {m['python']}, numpy {m['numpy']}.",  # noqa: E501
        "",
        f"The machine is shared with other engineers' builds, tests and a JVM while the benchmark runs: load average "
        f"(1/5/15 min) was {result['load_average_start']} at the start and {result['load_average_end']} at the end "
        "(2 cores, so a load above 2 means the benchmark had to share them). Each engine row below also records the "
        "load at its start and end in `bench.json`. Latencies are therefore noisy, p95/p99 most of all; the ratios "
        "compare engines measured minutes apart under similar load.",
        "",
        "Protocol (`bench/peers/harness.py`): every engine builds in a fresh process and is queried in another; "
        "load time = opening the built index; latency = one thread, one query at a time after a warm-up pass; "
        "QPS = the engine's own parallel batch search on all cores; peak RSS = `VmHWM` of the query process "
        "(the JVM's high-water mark for OpenSearch); recall@10 = overlap with the embedded engine's exact top-10.",
        "",
        "¹ Rows measured before the harness read `VmHWM` have no peak RSS: they used `ru_maxrss`, which Linux "
        "carries from the benchmark driver into every process it starts, so those figures were the driver's "
        "peak, not the engine's.",
        "",
    ]
    scale = sections.get("scale")
    profiles = scale_profiles(scale or {})
    if profiles:
        lines += ["## Goal check", "", *embedded_goal_lines(scale), ""]
        for section in profiles.values():
            lines += [f"### Against the peers, {section['profile']}", "", *goal_lines(section), ""]
        lines += [HOW_ENGINES_SCORE, ""]
        lines += scale_lines(profiles, result, plots)
    real = sections.get("real")
    if real:
        lines += ["## Engines on the real collections", ""]
        lines += earlier_run_note(real.get("run_at"), result, KEPT_SECTION)
        lines.append(
            f"The collections encoded by {result['model']}; nDCG@10 from each engine's own top-10 against the qrels."
        )
        lines.append("")
        lines += [*peers_ahead_lines(real["rows"], lambda r: r["collection"]), ""]
        for row in real["rows"]:
            lines += [f"### {row['collection']} ({row['docs']:,} documents)", ""]
            lines += [*engine_table(row["engines"], with_ndcg=True), "", *variants_table(row["engines"])]
    quality = sections.get("quality")
    if quality:
        lines += ["## Quality, sparsity and query cost of every model", ""]
        lines += earlier_run_note(quality.get("run_at"), result, KEPT_SECTION)
        lines.append(
            "`sparsearch eval` (embedded engine, all judged queries) for every model kind on every collection; "
            "terms/doc is the sparsity, postings/query the number of postings of the query's terms (the cost "
            "of exhaustive scoring; the embedded kernel skips light terms' postings). Kinds: `bm25` (BM25 in "
            "the scoring contract), `semantic` / `two-channel` (training-free channels), `inference-free` SPLADE "
            "(`minilm-splade-untrained`: MLM documents, IDF-weighted query tokens, no model call per query), "
            "`siamese` SPLADE (`minilm-splade-siamese-untrained`: the same MLM and the same document vectors, "
            "reused from the inference-free index, but queries go through the MLM too), and `adapted (<collection>)`: "
            "the model `sparsearch adapt --data <collection>` made from that collection's documents alone "
            f"(`--adapt-minutes {quality.get('adapt_minutes', '?')}`, cached in the work dir; `--reencode` remakes it)."
        )
        lines.append("")
        lines.append(
            "| collection | model | kind | nDCG@10 | R@100 | terms/doc | postings/query | search p50 ms | query encode p50 ms |"  # noqa: E501
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in quality["rows"]:
            if "error" in r:
                lines.append(f"| {r['collection']} | {r['model']} | | error: {r['error'][:200]} | | | | | |")
                continue
            lines.append(
                f"| {r['collection']} | {r['model']} | {r.get('kind') or '–'} | {r['ndcg@10']:.4f} | "
                f"{r['recall@100']:.4f} | {r['avg_terms_per_doc']:.1f} | {r['postings_per_query']:,.0f} | "
                f"{r['search_p50_ms']:.3f} | {r['query_encode_p50_ms']:.3f} |"
            )
        parity = quality.get("bm25_parity")
        for r in (parity or {}).get("rows", []):
            if str(r.get("system", "")).startswith("bm25s"):
                lines.append(
                    f"| {r['dataset']} | bm25s on the text (`bench/bm25_parity.py`) | bm25s | {r['ndcg@10']:.4f} | "
                    f"{r['recall@100']:.4f} | – | – | – | – |"
                )
        if not parity and quality.get("bm25_parity_error"):
            lines += ["", f"bench/bm25_parity.py failed: `{quality['bm25_parity_error'][-300:]}`"]
        lines.append("")
        plot_quality(quality, plots / "quality_vs_sparsity.png")
        lines += ["![quality against sparsity](results/quality_vs_sparsity.png)", ""]
    if sections.get("collections"):
        lines += collections_lines(sections["collections"], result)
    if sections.get("indexing"):
        lines += indexing_lines(sections["indexing"], result)
    installs = result.get("peer_install", {})
    lines += ["## Peers that could not run", ""]
    problems = [f"- {peer}: {status}" for peer, status in installs.items() if status != "ok"]
    for section in (real, scale):
        for peer, error in ((section or {}).get("install_errors") or {}).items():
            problems.append(f"- {peer}: {error}")
    lines += problems or ["All peers installed (`bench/peers/env.py`) and ran; per-size skips are in the tables."]
    lines += [
        "",
        "## Reproduce",
        "",
        "```bash",
        "bash scripts/bootstrap                      # the project environment",
        ".venv/bin/python bench/run.py               # creates the peers' venv on first use, then runs everything",
        ".venv/bin/python bench/run.py --full        # four profiles up to 1M documents, the first at 10M too",
        ".venv/bin/python bench/run.py --full --resume   # continues an interrupted run of the same command",
        ".venv/bin/python bench/run.py --sections scale --sizes 100000 --engines sparsearch-embedded pisa",
        ".venv/bin/python bench/run.py --sections scale --sizes 10000000 --profiles cisi --engines sparsearch-embedded",
        "```",
        "",
        "Encoded collections are cached under `${SPARSEARCH_CACHE:-~/.cache/sparsearch}/bench-work/indexes` "
        "(keyed by model and collection file; `--reencode` after an encoder change); the peers' virtualenv lives in "
        "`${SPARSEARCH_CACHE:-~/.cache/sparsearch}/bench-peers-<hash>`.",
        "",
        *SERVICE_SECTION,
    ]
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    bench = Path(__file__).resolve().parent
    write_report(json.loads((bench / "results" / "bench.json").read_text()), bench)
