"""Metrics by ir_measures / trec_eval name, BEIR's identical-id rule, qrels and topics readers, run checks."""

from __future__ import annotations

import json

import pytest

from sparsearch.encoders.registry import load_encoder
from sparsearch.errors import CorpusFormatError, UsageError
from sparsearch.eval.beir_data import load_beir_topics, load_qrels, read_topics
from sparsearch.eval.checks import RunQrelsMismatchError, check_run_against_qrels
from sparsearch.eval.metrics import (
    DEFAULT_METRICS,
    aggregate_metrics,
    drop_identical_ids,
    parse_metric,
    parse_metrics,
    per_query_metrics,
    write_per_query,
)
from sparsearch.eval.runner import evaluate
from sparsearch.eval.trec import read_trec_run
from sparsearch.jobs.build_embedded import build_embedded_index
from tests.conftest import bundled_collection

QRELS = {"q1": {"d1": 2, "d2": 1, "d5": 0}, "q2": {"d3": 1}, "q3": {"d4": 1, "d6": 1}}
RUN = {
    "q1": {"d2": 9.0, "d9": 8.0, "d1": 7.0, "d5": 6.0, **{f"x{i}": 5.0 - i / 10 for i in range(12)}},
    "q2": {f"y{i}": 10.0 - i for i in range(10)} | {"d3": 0.5},  # relevant at rank 11
    "q3": {"d6": 3.0},
}


@pytest.mark.parametrize(
    ("name", "trec_measure", "depth"),
    [
        ("nDCG@10", "ndcg_cut.10", None),
        ("ndcg@10", "ndcg_cut.10", None),
        ("ndcg_cut.10", "ndcg_cut.10", None),
        ("ndcg_cut_10", "ndcg_cut.10", None),
        ("R@100", "recall.100", None),
        ("recall.100", "recall.100", None),
        ("RR@10", "recip_rank", 10),
        ("MRR@10", "recip_rank", 10),
        ("RR", "recip_rank", None),
        ("recip_rank", "recip_rank", None),
        ("AP", "map", None),
        ("map", "map", None),
        ("AP@100", "map_cut.100", None),
        ("P@10", "P.10", None),
        ("P.10", "P.10", None),
        ("Success@5", "success.5", None),
        ("Rprec", "Rprec", None),
        ("Bpref", "bpref", None),
        ("nDCG", "ndcg", None),
    ],
)
def test_metric_names_of_ir_measures_and_trec_eval(name: str, trec_measure: str, depth: int | None) -> None:
    measure = parse_metric(name)
    assert (measure.name, measure.trec_measure, measure.depth) == (name, trec_measure, depth)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("foo", "unknown metric 'foo'"),
        ("nDCG@ten", "cut-off 'ten' is not a positive integer"),
        ("P@0", "cut-off '0' is not a positive integer"),
        ("P", "needs a cut-off"),
        ("R", "needs a cut-off, e.g. R@10"),
        ("recall", "needs a cut-off, e.g. recall.10"),
        ("Rprec@10", "unknown metric"),
        ("P(rel=2)@10", "(rel=2) are not supported"),
        ("iprec_at_recall", "gives 11 values"),
    ],
)
def test_unknown_or_incomplete_metric_names_say_what_is_valid(name: str, message: str) -> None:
    with pytest.raises(UsageError, match=r"nDCG@10") as raised:
        parse_metric(name)
    assert message in str(raised.value)


def test_metrics_equal_pytrec_eval_called_directly() -> None:
    import pytrec_eval

    names = ["nDCG@10", "R@100", "AP", "P@10", "ndcg_cut.5", "Rprec", "bpref", "recip_rank"]
    ours = per_query_metrics(QRELS, RUN, names)
    measures = {"ndcg_cut.10", "ndcg_cut.5", "recall.100", "map", "P.10", "Rprec", "bpref", "recip_rank"}
    reference = pytrec_eval.RelevanceEvaluator(QRELS, measures).evaluate(RUN)
    keys = {
        "nDCG@10": "ndcg_cut_10",
        "R@100": "recall_100",
        "AP": "map",
        "P@10": "P_10",
        "ndcg_cut.5": "ndcg_cut_5",
        "Rprec": "Rprec",
        "bpref": "bpref",
        "recip_rank": "recip_rank",
    }
    for name, key in keys.items():
        for query_id in QRELS:
            assert ours[name][query_id] == pytest.approx(reference[query_id][key]), (name, query_id)
    # RR@10 = recip_rank over the run cut at 10: q2's only relevant document is at rank 11
    rr10 = per_query_metrics(QRELS, RUN, ["RR@10"])["RR@10"]
    assert rr10 == {"q1": pytest.approx(1.0), "q2": 0.0, "q3": pytest.approx(1.0)}
    assert reference["q2"]["recip_rank"] == pytest.approx(1 / 11)


def test_default_metrics_keep_their_names() -> None:
    assert list(aggregate_metrics(QRELS, RUN)) == list(DEFAULT_METRICS)
    assert [m.name for m in parse_metrics(["nDCG@10", "AP", "nDCG@10"])] == ["nDCG@10", "AP"]
    with pytest.raises(UsageError, match="no metric given"):
        parse_metrics([])


def test_identical_ids_are_dropped() -> None:
    run = {"q1": {"q1": 5.0, "d1": 4.0}, "d1": {"d1": 1.0, "q1": 0.5}}
    assert drop_identical_ids(run) == {"q1": {"d1": 4.0}, "d1": {"q1": 0.5}}
    qrels = {"q1": {"d1": 1}}
    assert aggregate_metrics(qrels, run, ["RR"])["RR"] == pytest.approx(0.5)
    assert aggregate_metrics(qrels, drop_identical_ids(run), ["RR"])["RR"] == pytest.approx(1.0)


def test_cranfield_with_identical_ids_ignored_gives_beirs_number(tmp_path) -> None:
    """BEIR (ignore_identical_ids=True, its default) reports 0.37274 nDCG@10 for BM25 on cranfield,
    whose numeric query ids collide with doc ids; without the rule it is 0.37298."""
    data = bundled_collection("cranfield")
    topics = load_beir_topics(data)
    encoder = load_encoder("bm25")
    index, _ = build_embedded_index(data, tmp_path / "index", encoder)
    scores = {}
    for ignore in (False, True):
        report, run = evaluate(
            index, encoder, topics, dataset="cranfield", model="bm25", index_stats={}, ignore_identical_ids=ignore
        )
        scores[ignore] = report.metrics["ndcg@10"]
        assert report.ignore_identical_ids is ignore
        assert max(len(docs) for docs in run.values()) == 1000  # one hit deeper, then cut back
    assert scores[False] == pytest.approx(0.37298, abs=5e-6)
    assert scores[True] == pytest.approx(0.37274, abs=5e-6)
    assert not any(query_id in docs for query_id, docs in run.items())


def test_qrels_in_beir_and_trec_format(tmp_path) -> None:
    beir = tmp_path / "beir.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td3\t1\n")
    trec = tmp_path / "qrels.trec"
    trec.write_text("q1 0 d1 2\nq1 0 d2 0\nq2\t0\td3\t1\n")
    expected = {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}
    assert load_qrels(beir) == expected == load_qrels(trec)
    (tmp_path / "folder" / "qrels").mkdir(parents=True)
    (tmp_path / "folder" / "qrels" / "dev.tsv").write_text(beir.read_text())
    assert load_qrels(tmp_path / "folder", split="dev") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 d1 1 2 3\n", "neither BEIR qrels"),
        ("q1 0 d1 2\nq1 0 d2\n", "qrels.txt:2: expected 4 fields"),
        ("q1 0 d1 high\n", "qrels.txt:1: grade 'high' is not an integer"),
        ("\n", "holds no judgements"),
    ],
)
def test_malformed_qrels_name_file_and_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text(text)
    with pytest.raises(CorpusFormatError, match=message):
        load_qrels(path)


def test_topics_as_beir_jsonl_or_pyserini_tsv(tmp_path) -> None:
    jsonl = tmp_path / "queries.jsonl"
    jsonl.write_text('{"_id": "q1", "text": "wing lift"}\n{"_id": 7, "text": "heat"}\n')
    tsv = tmp_path / "topics.tsv"
    tsv.write_text("q1\twing lift\n7\theat\n")
    assert read_topics(jsonl) == {"q1": "wing lift", "7": "heat"} == read_topics(tsv)
    assert read_topics(tmp_path) == read_topics(jsonl)  # a BEIR folder: its queries.jsonl
    tsv.write_text("q1\twing\nq1\theat\n")
    with pytest.raises(CorpusFormatError, match=r"topics.tsv:2: duplicate query id 'q1' \(first on line 1\)"):
        read_topics(tsv)
    tsv.write_text("q1 wing\n")
    with pytest.raises(CorpusFormatError, match="topics.tsv:1: expected qid<TAB>text"):
        read_topics(tsv)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 Q0 d1 1 2.0\n", "run.trec:1: expected 6 fields"),
        ("q1 Q0 d1 1 high t\n", "run.trec:1: score 'high' is not a number"),
        ("q1 Q0 d1 1 2 t\nq1 Q0 d1 2 1 t\n", "run.trec:2: document 'd1' listed twice for query 'q1'"),
    ],
)
def test_malformed_runs_name_file_and_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "run.trec"
    path.write_text(text)
    with pytest.raises(CorpusFormatError, match=message):
        read_trec_run(path)


def test_run_checks_refuse_what_cannot_match() -> None:
    qrels = {"1": {"d1": 1}, "2": {"d2": 1}}
    check = check_run_against_qrels
    with pytest.raises(RunQrelsMismatchError, match="none of the 2 queries in qrels.tsv appear in run.trec"):
        check(qrels, {"q1": {"d1": 1.0}}, qrels_name="qrels.tsv", run_name="run.trec")
    with pytest.raises(RunQrelsMismatchError, match="share none with the 2 documents .* is this the right index"):
        check(qrels, {"1": {"x": 1.0}}, qrels_name="qrels.tsv", run_name="run.trec")
    with pytest.raises(RunQrelsMismatchError, match="run.trec holds no hits"):
        check(qrels, {"1": {}}, qrels_name="qrels.tsv", run_name="run.trec")
    assert check(qrels, {"1": {"x": 1.0}}, qrels_name="q", run_name="r", check_documents=False) == [
        "1 of the 2 queries in q have no hit in r and count as 0 (2)"
    ]
    assert check(qrels, {"1": {"d1": 1.0}, "2": {"d2": 1.0}, "3": {"d2": 1.0}}, qrels_name="q", run_name="r") == [
        "1 queries of r are not judged in q and are ignored (3)"
    ]


def test_per_query_output_as_tsv_and_jsonl(tmp_path) -> None:
    values = per_query_metrics(QRELS, RUN, ["nDCG@10", "RR@10"])
    write_per_query(values, tmp_path / "pq.tsv")
    lines = (tmp_path / "pq.tsv").read_text().splitlines()
    assert lines[0] == "query_id\tmetric\tvalue"
    assert lines[1:3] == [f"q1\tnDCG@10\t{values['nDCG@10']['q1']:.6f}", "q1\tRR@10\t1.000000"]
    assert len(lines) == 1 + 3 * 2
    write_per_query(values, tmp_path / "pq.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "pq.jsonl").read_text().splitlines()]
    assert rows[2] == {"query_id": "q2", "metric": "nDCG@10", "value": values["nDCG@10"]["q2"]}
    assert len(rows) == 6
