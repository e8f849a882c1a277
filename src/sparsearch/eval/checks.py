"""Catch a run and qrels that do not belong together before they are scored as 0.0000.

Scoring a run against the qrels of another collection (or with query ids spelled differently) gives
every metric 0 without any error in trec_eval or pytrec_eval; :func:`check_run_against_qrels` turns
those cases into an error that says what does not match.
"""

from __future__ import annotations

from collections.abc import Iterable

from sparsearch.errors import SparsearchError
from sparsearch.eval.metrics import Qrels, Run


class RunQrelsMismatchError(SparsearchError):
    """The run and the qrels share no query or no document: every metric would be 0."""


def _examples(ids: Iterable[str], limit: int = 3) -> str:
    shown = sorted(ids)[: limit + 1]
    return ", ".join(shown[:limit]) + (", ..." if len(shown) > limit else "")


def check_run_against_qrels(
    qrels: Qrels, run: Run, *, qrels_name: str, run_name: str, check_documents: bool = True
) -> list[str]:
    """Refuse a run that cannot score above 0 for reasons of ids; return warnings for partial matches.

    Args:
        qrels: ``query_id -> {doc_id: grade}``.
        run: ``query_id -> {doc_id: score}``.
        qrels_name: how messages name the qrels (its file).
        run_name: how messages name the run (``the run in run.trec``, ``the run of index indexes/x``).
        check_documents: refuse a run none of whose documents is judged (off where the index was
            already checked to hold judged documents: then it is a genuine score of 0).

    Returns:
        Warning lines: judged queries the run lacks (they count as 0), run queries the qrels do not
        judge (ignored).

    Raises:
        RunQrelsMismatchError: the run holds no hit; none of the qrels' queries has a hit in it; or
            none of its documents is judged.
    """
    answered = {query_id for query_id, docs in run.items() if docs}
    if not answered:
        raise RunQrelsMismatchError(f"{run_name} holds no hits: no query retrieved any document")
    scored = answered & set(qrels)
    if not scored:
        raise RunQrelsMismatchError(
            f"none of the {len(qrels):,} queries in {qrels_name} appear in {run_name} "
            f"(qrels: {_examples(qrels)}; run: {_examples(answered)}): do the query ids match?"
        )
    judged = {doc_id for docs in qrels.values() for doc_id in docs}
    retrieved = {doc_id for query_id in scored for doc_id in run[query_id]}
    if check_documents and not judged & retrieved:
        raise RunQrelsMismatchError(
            f"the doc ids of {run_name} share none with the {len(judged):,} documents judged in {qrels_name} "
            f"(run: {_examples(retrieved)}; qrels: {_examples(judged)}): is this the right index?"
        )
    warnings = []
    if missing := [query_id for query_id in qrels if query_id not in answered]:
        warnings.append(
            f"{len(missing):,} of the {len(qrels):,} queries in {qrels_name} have no hit in {run_name} and "
            f"count as 0 ({_examples(missing)})"
        )
    if unjudged := answered - set(qrels):
        warnings.append(
            f"{len(unjudged):,} queries of {run_name} are not judged in {qrels_name} and are ignored "
            f"({_examples(unjudged)})"
        )
    return warnings
