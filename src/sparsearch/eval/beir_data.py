"""Load BEIR-format collections (queries and qrels) with ``beir``'s GenericDataLoader."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from sparsearch.errors import CorpusFormatError, require


@dataclass
class BeirTopics:
    """Queries and relevance judgements of one split.

    Attributes:
        queries: ``query_id -> text``, only queries that have judgements.
        qrels: ``query_id -> {doc_id: grade}``.
    """

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir_topics(data_dir: str | Path, split: str = "test") -> BeirTopics:
    """Queries and qrels of ``data_dir`` (``queries.jsonl``, ``qrels/<split>.tsv``).

    Raises:
        CorpusFormatError: a file is missing or malformed, or qrels name a query that does not exist.
    """
    data_loader = require("beir.datasets.data_loader", "eval")
    data_dir = Path(data_dir)
    for required in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (data_dir / required).is_file():
            raise CorpusFormatError(
                data_dir / required,
                f"not found; a BEIR folder needs corpus.jsonl, queries.jsonl and qrels/{split}.tsv",
            )
    loader = data_loader.GenericDataLoader(data_folder=str(data_dir))
    try:
        # beir draws a tqdm bar while reading the corpus; keep stderr for our own progress.
        with contextlib.redirect_stderr(io.StringIO()):
            _, queries, qrels = loader.load(split=split)
    except KeyError as error:
        raise CorpusFormatError(
            data_dir / f"qrels/{split}.tsv", f"judges query {error} which queries.jsonl lacks"
        ) from None
    except (ValueError, IndexError) as error:
        raise CorpusFormatError(data_dir, f"malformed BEIR files ({error})") from None
    return BeirTopics(queries={str(k): str(v) for k, v in queries.items()}, qrels=qrels)
