"""The indexing section's report (bench/report.py): the goal check follows the measured figures (30
documents/s on cranfield, at most 0.005 nDCG@10 lost on every collection), the engine count is
checked against the corpus, failed steps are shown, and the projection is the measured rate's
arithmetic."""

from __future__ import annotations


def _runtime(collection: str, runtime: str, rate: float, ndcg: float) -> dict:
    return {"collection": collection, "runtime": runtime, "docs": 1000, "seconds": 1000 / rate,
            "docs_per_second": rate, "ndcg@10": ndcg, "recall@100": 0.5, "load_before": 1.0,
            "load_after": 1.5}  # fmt: skip


def _section(cranfield_onnx_rate: float, cisi_onnx_ndcg: float, engine_count: int) -> dict:
    throughput = {"model": "default (int8 ONNX)", "docs_per_second": 20.0, "docs_per_second_median": 19.0,
                  "seconds": [10.0], "load_average_1min": [1.0]}  # fmt: skip
    ray = {"run": "Ray, 2 CPU actors, into OpenSearch", "docs": 1000, "seconds": 100.0, "docs_per_second": 10.0,
           "load_before": 1.0, "load_after": 2.0, "engine_count": engine_count}  # fmt: skip
    return {
        "cores": 2,
        "run_at": "now",
        "throughput": {"data": "cranfield", "docs": 200, "rounds": 2, "rows": [throughput]},
        "runtimes": [
            _runtime("cranfield", "torch", 17.0, 0.3909),
            _runtime("cranfield", "onnx", cranfield_onnx_rate, 0.3931),
            _runtime("cisi", "torch", 17.0, 0.4241),
            _runtime("cisi", "onnx", 25.0, cisi_onnx_ndcg),
        ],
        "cluster": {
            "data": "cranfield",
            "model": "minilm-splade-untrained",
            "workers": 2,
            "rows": [ray, {"run": "local Ray cluster", "error": "ray start did not come up"}],
        },  # fmt: skip
    }


def test_goal_check_follows_the_figures(report_module) -> None:
    text = "\n".join(report_module.indexing_lines(_section(25.1, 0.4289, 1000), {"created_at": "now"}))
    assert "**missed** (25.1)" in text and "**met** (largest change +0.0022, cranfield)" in text
    assert "| cranfield | 1,000 | 17.0 | 25.1 | ×1.48 | 0.3909 | 0.3931 | +0.0022 |" in text

    text = "\n".join(report_module.indexing_lines(_section(31.0, 0.4181, 1000), {"created_at": "now"}))
    assert "**met** (31.0)" in text and "**missed** (largest change -0.0060, cisi)" in text


def test_engine_count_and_failures_are_shown(report_module) -> None:
    exact = "\n".join(report_module.indexing_lines(_section(25.0, 0.42, 1000), {"created_at": "now"}))
    assert "| 1,000 (exact) |" in exact and "ray start did not come up" in exact
    short = "\n".join(report_module.indexing_lines(_section(25.0, 0.42, 999), {"created_at": "now"}))
    assert "999 (MISMATCH)" in short


def test_projection_is_the_rate_arithmetic(report_module) -> None:
    text = "\n".join(report_module.indexing_lines(_section(25.0, 0.42, 1000), {"created_at": "now"}))
    # 20 documents/s: 1M documents = 13.9 h on one machine, 1.4 h on ten; 10M on a hundred = 1.4 h
    assert "| default (int8 ONNX) | 20.0 | 13.9 h | 1.4 h | 13.9 h | 1.4 h |" in text
    assert report_module._hours(1_000_000, 1, 10_000.0) == "2 min" and report_module._hours(1_000, 1, 10_000.0) == "0 s"
