"""The benchmark suite: one command regenerates every table and plot of bench/README.md.

    .venv/bin/python bench/run.py            # real collections + synthetic 10k/100k (~15 min on 2 cores)
    .venv/bin/python bench/run.py --full     # + 1M documents on four profiles, 10M on the first (~2 h)
    .venv/bin/python bench/run.py --full --resume   # continue an interrupted run of the same command

1. describe the machine (CPU, cores, memory, load average) and create the peers' virtualenv
   (bench/peers/env.py: PISA, Seismic, Lucene/pyserini, splade-index; never the project's env),
2. quality: ``sparsearch eval`` of every model kind on the development collections bundled in data/
   (cranfield, cisi), with sparsity (terms per document) and query cost (postings per query) next to nDCG@10 and R@100;
   bench/bm25_parity.py adds bm25s on the same text,
   the four development collections (cranfield, cisi, cacm, npl): bm25, the default model, its
   ``sparsearch adapt`` version and the hybrid mode against the dense and ensemble references
   (bench/references.py), with the mean of the four,
   indexing cost (bench/indexing.py): documents per second by model and runtime, the int8 ONNX
   runtime's nDCG@10 cost on the four collections, one process against a local Ray cluster and a Ray
   load into OpenSearch, projected to 1M and 10M documents,
3. engines on the real collections: the benchmark model's vectors (documents and queries) go to
   every engine; exact top-10, recall against it, nDCG@10 from each engine's own top-10,
4. engines at scale: synthetic corpora fitted to the model's vectors on one collection per profile
   (``--profiles``; the first collection, all four with --full): document frequency per token, terms per
   document, weight distribution; queries of 5-15 tokens weighted by IDF; 10k and 100k documents (1M with
   --full, and 10M on its first profile; above 2M the corpus is streamed: regenerated chunk by chunk,
   never stored); bench.json is written after every row, so ``--resume`` continues a cut run,
5. write bench/results/bench.json, the PNG plots and bench/README.md (bench/report.py).

Every engine runs in fresh processes (build, then query) with the same timing protocol
(bench/peers/harness.py); a peer that cannot be installed or run gets its exact error in the report.
The model is a parameter (``--model``); by default the project's default model, or the best
training-free learned model (hybrid-semantic) while the default is plain BM25.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sparsearch.eval.synthetic import CorpusProfile

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
sys.path.insert(0, str(PEERS))

SIZES = [10_000, 100_000]
FULL_SIZES = [10_000, 100_000, 1_000_000]
"""``--full``: the synthetic corpus sizes of every profile."""
LARGEST = 10_000_000
"""``--full``: the size the first profile also runs at (a streamed corpus). ~50 min on 2 cores with PISA
(whose build alone takes ~26 min), so on one profile: four would take longer than the rest of the run."""
FIRST_PROFILE_ONLY = {
    "lucene-impact": (
        1_000_000,
        "with --full, run from 1M documents on the first profile only: its build takes ~835 s per 1M documents "
        "(JSONL, then Anserini's indexer), ~14 min a profile with its queries",
    )
}
"""engine -> (size, reason): ``--full`` runs the engine from that size on the first profile only."""
ADAPTED = "adapted"
"""In ``QUALITY_MODELS``: the model ``sparsearch adapt`` makes from each collection's documents."""
QUALITY_MODELS = [
    "bm25",
    "bm25-wordpiece",
    "semantic",
    "hybrid-semantic",
    "minilm-splade-untrained",  # inference-free SPLADE, untrained MiniLM base
    "minilm-splade-siamese-untrained",  # the same base, siamese: queries through the MLM too
    ADAPTED,
]
SAME_DOCUMENTS = {"minilm-splade-siamese-untrained": "minilm-splade-untrained"}
"""model -> a model with the same document encoder: its cached document vectors are reused, not re-encoded."""
K = 10
SECTIONS = ("quality", "collections", "indexing", "real", "scale")
OPENSEARCH_PORT = 9400
SPARSEARCH = Path(sys.executable).parent / "sparsearch"  # the project's CLI
_REENCODED: set[str] = set()

# engine -> (adapter script, interpreter: "project" or "peers")
ENGINES: dict[str, tuple[str, str]] = {
    "sparsearch-embedded": ("adapter_embedded.py", "project"),
    "numpy-csc": ("adapter_csc_numpy.py", "project"),
    "pisa": ("adapter_pisa.py", "peers"),
    "seismic": ("adapter_seismic.py", "peers"),
    "lucene-impact": ("adapter_lucene.py", "peers"),
    "splade-index": ("adapter_splade_index.py", "peers"),
    "opensearch": ("adapter_opensearch.py", "project"),
    "bm25s": ("adapter_bm25s_text.py", "project"),
}
PEER_OF = {"pisa": "pisa", "seismic": "seismic", "lucene-impact": "lucene", "splade-index": "splade-index"}
APPROXIMATE = {"seismic"}
# Engines not run above a corpus size, with the reason written to the report. Above STREAM_ABOVE (2M)
# documents the corpus is streamed: an engine that needs the whole document arrays cannot read it.
_IN_MEMORY_CSC = (
    "its build converts the whole CSR matrix to CSC in memory (scipy tocsc): two ~12 GB copies at 10M documents "
    "on a 24 GB machine (and a streamed corpus has no whole document arrays to convert)"
)
MAX_DOCS = {
    "opensearch": (100_000, "bulk indexing 1M documents into one 2-core JVM takes longer than the run budget"),
    "bm25s": (100_000, "bm25s indexes Python token lists: ~120M strings for 1M documents do not fit the budget"),
    "numpy-csc": (1_000_000, _IN_MEMORY_CSC),
    "splade-index": (1_000_000, _IN_MEMORY_CSC),
    "seismic": (
        1_000_000,
        "Seismic builds from whole in-memory arrays (add_documents_by_id): ~12 GB of documents at 10M plus an "
        "index of ~2 GB per 1M documents (2.06 GB, 2.2 GB peak RSS at 1M) do not fit a 24 GB machine",
    ),
}
BUILD_S_PER_MILLION = {"pisa": 89.7, "lucene-impact": 835.2}
"""Build seconds per 1M documents of the peers whose build is slow (bench.json's 1M row, cisi profile:
pyterrier-pisa takes one Python dict per document on one thread, pyserini writes JSONL and runs a JVM
indexer). :func:`run_engines` skips such an engine when the estimate for the corpus (plus
:data:`REGENERATE_S_PER_MILLION` for a streamed one) passes the ``--timeout`` budget of one step (3600 s
by default): PISA at 10M (~21 min) runs, Lucene (~2.4 h) does not."""
REGENERATE_S_PER_MILLION = 40.0
"""Seconds per 1M documents a build spends regenerating a streamed corpus (``iter_generated_rows``:
3.4-4.2 s per 100k documents of the cisi profile on 2 cores)."""


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, object]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def cache_dir() -> Path:
    """The project's cache (``$SPARSEARCH_CACHE``, default ``~/.cache/sparsearch``)."""
    from sparsearch._cache import cache_root

    return cache_root()


# The collections the committed quality tables cover; data/ bundles more (cacm, npl) for --data.
DEV_COLLECTIONS = ("cisi", "cranfield")


def bundled_collections() -> list[Path]:
    """The development collections bundled in the repository's data/, in name order."""
    return [ROOT / "data" / name for name in DEV_COLLECTIONS]


def default_model() -> str:
    from sparsearch.encoders.registry import DEFAULT_MODEL

    return "hybrid-semantic" if DEFAULT_MODEL in ("bm25", "bm25-wordpiece") else DEFAULT_MODEL


def model_stamp(model: str) -> str:
    """sha256 of the model's ``config.json`` (a model directory, or the shipped default's directory
    for its built-in name; the config carries the digests of the weight files), "" for models defined
    in code. Keys the caches, so retraining the default re-encodes and re-adapts."""
    from sparsearch.encoders.registry import SHIPPED_MODEL, default_model_dir

    directory = default_model_dir() if model == SHIPPED_MODEL else Path(model)
    config = directory / "config.json" if directory is not None else None
    return hashlib.sha256(config.read_bytes()).hexdigest() if config is not None and config.is_file() else ""


def cached_index(
    model: str, data: Path, work: Path, reencode: bool = False, name: str | None = None, dense: bool = False
) -> Path:
    """The embedded index of ``data`` encoded by ``model``, built with ``sparsearch index`` once per
    (model, collection file): encoding is the slow part of a run (minutes for the semantic models on
    2 cores), not what is measured. ``--reencode`` rebuilds it after an encoder change. A model in
    :data:`SAME_DOCUMENTS` takes the document vectors of its partner's cached index (encoded once).
    ``name`` names the cache entry (default: the model's name); the model's ``config.json``
    content is part of the key (:func:`model_stamp`), so a re-made model is re-encoded, and so is
    the corpus file's content (not its path or time: a fresh clone reuses the cache). ``dense``
    also stores the dense windows (``sparsearch index --dense``) for the hybrid mode."""
    corpus = hashlib.sha256((data / "corpus.jsonl").read_bytes()).hexdigest()
    identity = f"{model}|{model_stamp(model)}|{data.name}|{corpus}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    path = work / "indexes" / f"{name or Path(model).name}{'-dense' if dense else ''}-{data.name}-{key}"
    if reencode and path.name not in _REENCODED:
        shutil.rmtree(path, ignore_errors=True)
        _REENCODED.add(path.name)
    if not (path / "manifest.json").is_file():
        partner = SAME_DOCUMENTS.get(model)
        if partner is not None and index_with_documents_of(cached_index(partner, data, work, reencode), model, path):
            return path
        log(f"encoding {data.name} with {model} (cached for later runs)")
        subprocess.run([str(SPARSEARCH), "index", "--data", str(data), "--index", str(path), "--model", model,
                        "--overwrite", *(["--dense"] if dense else [])], check=True, capture_output=True,
                       text=True)  # fmt: skip
    return path


def index_with_documents_of(source: Path, model: str, target: Path) -> bool:
    """Index ``model`` at ``target`` over the document vectors stored in the index at ``source`` (no
    model call), when both encoders have the same document side: same MLM parameters (sha256 digest)
    and the same encoding options. Returns False, writing nothing, when they differ."""
    from sparsearch.backends.embedded.index import EmbeddedIndex
    from sparsearch.backends.embedded.writer import IndexWriter
    from sparsearch.encoders.registry import load_encoder

    index = EmbeddedIndex.open(source)
    origin, encoder = load_encoder(index.encoder_dir), load_encoder(model)
    if not (hasattr(origin, "document_digest") and hasattr(encoder, "document_digest")):
        return False
    if origin.options != encoder.options or origin.document_digest() != encoder.document_digest():
        log(f"{model}: document encoder differs from {source.name}'s; encoding instead")
        return False
    log(f"indexing {model} over the document vectors of {source.name} (same document encoder)")
    p = index.postings
    terms, docs, weights = p.to_coo()
    order = np.lexsort((terms, docs))  # row-major, as IndexWriter.add_csr takes them
    indptr = np.zeros(p.n_docs + 1, dtype=np.int64)
    np.cumsum(np.bincount(docs, minlength=p.n_docs), out=indptr[1:])
    documents = index.get_documents(index.doc_ids)
    with IndexWriter(target, encoder.fingerprint, overwrite=True) as writer:
        encoder.save(writer.encoder_dir)
        writer.add_csr(documents, indptr, terms[order], weights[order], p.vocab)
    return True


def run_adapt(data: Path, output: Path, minutes: float, seed: int) -> str | None:
    """``sparsearch adapt`` on one collection; the error text (stderr tail) when it fails, else None."""
    command = [str(SPARSEARCH), "adapt", "--data", str(data), "--output", str(output),
               "--minutes", str(minutes), "--seed", str(seed)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit status {done.returncode}")[-500:]


def adapted_model(data: Path, work: Path, minutes: float, seed: int, reencode: bool = False) -> Path:
    """``work/adapted/<collection>-<stamp>``: made by ``sparsearch adapt`` when missing (or with
    ``--reencode``); the stamp is the shipped default's (adapt starts from it), so a retrained default
    is adapted again.

    Raises:
        RuntimeError: adapt failed (its stderr tail).
    """
    from sparsearch.encoders.registry import SHIPPED_MODEL

    output = work / "adapted" / f"{data.name}-{model_stamp(SHIPPED_MODEL)[:12]}"
    if reencode and output.name not in _REENCODED:
        shutil.rmtree(output, ignore_errors=True)
        _REENCODED.add(output.name)
    if not (output / "config.json").is_file():
        shutil.rmtree(output, ignore_errors=True)  # an unfinished run's leftovers
        output.parent.mkdir(parents=True, exist_ok=True)
        log(f"sparsearch adapt on {data.name} ({minutes:g} min budget, cached for later runs)")
        error = run_adapt(data, output, minutes, seed)
        if error is not None:
            raise RuntimeError(f"sparsearch adapt failed: {error}")
    return output


# -- 2. quality ------------------------------------------------------------------------------------
def quality_rows(
    collections: list[Path], models: list[str], work: Path, reencode: bool = False, adapt_minutes: float = 30.0,
    adapt_seed: int = 13, hybrid: tuple[str, ...] = (),
) -> list[dict]:  # fmt: skip
    """One ``sparsearch eval`` row per (collection, model); :data:`ADAPTED` stands for the collection's
    own adapted model (labelled ``adapted (<collection>)``). A model named in ``hybrid`` is indexed
    with its dense windows and gets a second row, ``<model> hybrid`` (``--mode hybrid``). A failure
    becomes ``{"error": ...}``."""
    rows = []
    for data in collections:
        for model in models:
            for mode in ("sparse", "hybrid") if model in hybrid else ("sparse",):
                rows.append(_quality_row(data, model, work, reencode, adapt_minutes, adapt_seed, mode, model in hybrid))
    return rows


def _quality_row(
    data: Path, model: str, work: Path, reencode: bool, adapt_minutes: float, adapt_seed: int, mode: str,
    dense: bool,
) -> dict:  # fmt: skip
    """One ``sparsearch eval`` row of :func:`quality_rows`."""
    label, spec, name = model, model, None
    if model == ADAPTED:
        label, name = f"adapted ({data.name})", "adapted"
        try:
            spec = str(adapted_model(data, work, adapt_minutes, adapt_seed, reencode))
        except RuntimeError as error:
            return {"model": label, "collection": data.name, "error": str(error)}
    if mode == "hybrid":
        label = f"{label} hybrid"
    out = work / "eval" / f"{name or Path(model).name}-{mode}-{data.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    index = cached_index(spec, data, work, reencode, name=name, dense=dense)
    log(f"sparsearch eval {label} on {data.name}")
    done = subprocess.run(
        [str(SPARSEARCH), "eval", "--data", str(data), "--index", str(index), "--mode", mode,
         "--output", str(out)], capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        return {"model": label, "collection": data.name, "error": done.stderr.strip()[-500:]}
    report = json.loads(out.read_text())
    return {
        "model": label,
        "collection": data.name,
        "ndcg@10": report["metrics"]["ndcg@10"],
        "recall@100": report["metrics"]["recall@100"],
        "avg_terms_per_doc": report["index"]["avg_terms_per_doc"],
        "postings_per_query": report["postings_touched_per_query"],
        "search_p50_ms": report["latency_ms"]["search_p50"],
        "query_encode_p50_ms": report["latency_ms"]["query_encode_p50"],
        "index_bytes": report["index"]["bytes"],
        "kind": encoder_kind(index),
        "command": f"sparsearch eval --data {data} --index INDEX --mode {mode}  (INDEX = sparsearch "
        f"index --model {spec}{' --dense' if dense else ''})",
    }


def encoder_kind(index: Path) -> str:
    """The model kind saved in the index's encoder config (SPLADE's ``kind``, else the model ``type``)."""
    config = json.loads((index / "encoder" / "config.json").read_text(encoding="utf-8"))
    return str(config.get("kind") or config.get("type") or "?")


def quality(
    collections: list[Path], models: list[str], work: Path, reencode: bool = False, adapt_minutes: float = 30.0,
    adapt_seed: int = 13,
) -> dict:  # fmt: skip
    rows = quality_rows(collections, models, work, reencode, adapt_minutes, adapt_seed)
    log("bench/bm25_parity.py (bm25s on the same text)")
    parity_file = work / "bm25_parity.json"  # not bench/results/bm25_parity.json: that one is the script's own
    parity_args = [sys.executable, str(BENCH / "bm25_parity.py"), "--data", *map(str, collections)]
    done = subprocess.run([*parity_args, "--output", str(parity_file)], capture_output=True, text=True, cwd=ROOT)
    parity = json.loads(parity_file.read_text()) if done.returncode == 0 else None
    return {"rows": rows, "bm25_parity": parity, "bm25_parity_error": None if parity else done.stderr[-500:]}


# -- 2b. the four development collections ------------------------------------------------------------
FOUR_COLLECTIONS = ("cranfield", "cisi", "cacm", "npl")
"""The generalization table: every choice of a model is made on documents or pseudo-queries; these
collections' queries only measure (docs/method.md#held-out-selection-rules)."""


def collections_quality(
    collections: list[Path], model: str, work: Path, reencode: bool = False, adapt_minutes: float = 30.0,
    adapt_seed: int = 13, adapt: bool = True,
) -> dict:  # fmt: skip
    """BM25, the default model in sparse and hybrid mode and its adapted version (``sparsearch eval``; no
    adapted rows without ``adapt``), plus the dense and ensemble references (``bench/references.py``), on
    each collection."""
    from references import reference_runs

    models = ["bm25", model, *([ADAPTED] if adapt else [])]
    rows = quality_rows(collections, models, work, reencode, adapt_minutes, adapt_seed, hybrid=(model,))
    for data in collections:
        log(f"dense and ensemble references on {data.name}")
        for reference in reference_runs(data, work)["rows"]:
            rows.append(
                {
                    "model": reference["model"],
                    "collection": data.name,
                    "ndcg@10": reference["metrics"]["ndcg@10"],
                    "recall@100": reference["metrics"]["recall@100"],
                    "query_encode_p50_ms": reference["query_encode_p50_ms"],
                    "kind": "reference",
                    "command": f"bench/references.py --data {data}",
                }
            )
    return {"rows": rows, "collections": [c.name for c in collections], "adapted": adapt}


# -- corpora ---------------------------------------------------------------------------------------
def _save_csr(path: Path, rows: list[tuple[np.ndarray, np.ndarray]], weight_dtype) -> None:
    lengths = np.array([len(t) for t, _ in rows], dtype=np.int64)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    terms = np.concatenate([t for t, _ in rows]).astype(np.int32) if rows else np.zeros(0, np.int32)
    weights = np.concatenate([w for _, w in rows]).astype(weight_dtype) if rows else np.zeros(0, weight_dtype)
    np.savez(path, indptr=indptr, term_ids=terms, weights=weights)


def real_corpus(index_path: Path, data: Path, out: Path) -> dict:
    """Export an encoded collection: documents (CSR from the index), queries encoded by its encoder,
    texts for bm25s. Returns ``{"doc_ids": [...], "query_ids": [...], "qrels": ...}``."""
    from sparsearch.backends.embedded.index import EmbeddedIndex
    from sparsearch.corpus import iter_corpus
    from sparsearch.encoders.registry import load_encoder
    from sparsearch.eval.beir_data import load_beir_topics

    index = EmbeddedIndex.open(index_path)
    encoder = load_encoder(index.encoder_dir)
    p = index.postings
    terms, docs, weights = p.to_coo()
    order = np.lexsort((terms, docs))  # row-major, term ids ascending within a row
    terms, docs, weights = terms[order], docs[order], weights[order]
    out.mkdir(parents=True, exist_ok=True)
    indptr = np.zeros(p.n_docs + 1, dtype=np.int64)
    np.cumsum(np.bincount(docs, minlength=p.n_docs), out=indptr[1:])
    np.savez(out / "docs.npz", indptr=indptr, term_ids=terms.astype(np.int32), weights=weights.astype(np.float32))
    (out / "vocab.json").write_text(json.dumps(p.vocab, ensure_ascii=False), encoding="utf-8")
    topics = load_beir_topics(data)
    query_ids = list(topics.queries)
    rows = []
    for qid in query_ids:
        pairs = sorted(
            (index.term_index[t], w) for t, w in encoder.encode_query(topics.queries[qid]).weights.items()
            if t in index.term_index and w > 0
        )  # fmt: skip
        rows.append((np.array([t for t, _ in pairs], dtype=np.int32), np.array([w for _, w in pairs])))
    _save_csr(out / "queries.npz", rows, np.float64)
    texts = {d.doc_id: d.full_text for d in iter_corpus(data)}
    with (out / "texts.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id in index.doc_ids:
            handle.write(json.dumps({"text": texts[doc_id]}, ensure_ascii=False) + "\n")
    (out / "query_texts.json").write_text(json.dumps([topics.queries[q] for q in query_ids]), encoding="utf-8")
    return {"doc_ids": index.doc_ids, "query_ids": query_ids, "qrels": topics.qrels}


STREAM_ABOVE = 2_000_000
"""Synthetic corpora larger than this many documents are streamed: the folder holds the profile and a
descriptor, not docs.npz (8 bytes a posting: 12 GB at 10M documents, more than the index)."""
GENERATOR_CHUNK = 50_000
"""Rows per chunk of ``iter_generated_rows``: part of a corpus's identity (the random stream is drawn
chunk by chunk), so a streamed corpus records it."""


def load_profile(profile_index: Path) -> CorpusProfile:
    """The :class:`~sparsearch.eval.synthetic.CorpusProfile` of the embedded index at ``profile_index``."""
    from sparsearch.backends.embedded.index import EmbeddedIndex
    from sparsearch.eval.synthetic import CorpusProfile

    return CorpusProfile.from_postings(EmbeddedIndex.open(profile_index).postings)


def synthetic_corpus(
    profile: CorpusProfile, n_docs: int, n_queries: int, out: Path, with_text: bool, streamed: bool | None = None,
    chunk: int = GENERATOR_CHUNK,
) -> dict:  # fmt: skip
    """A corpus of ``n_docs`` documents drawn from ``profile`` (a ``CorpusProfile``; see
    sparsearch.eval.synthetic) with seed ``n_docs``, and ``n_queries`` queries, written to ``out`` in
    the harness's corpus format (bench/peers/harness.py).

    Both kinds make one pass over the generated rows, which counts the document frequencies the queries
    are drawn from (the IDF of the whole corpus), the postings and the largest weight. A materialised
    corpus also keeps the rows (docs.npz); a streamed one (``streamed``, default: more than
    :data:`STREAM_ABOVE` documents) writes only profile.npz and generated.json, and
    ``Corpus.iter_rows`` regenerates the same rows later. The pass costs ~3.5-4 s per 100k documents of
    the cisi profile on 2 cores (~6-7 min at 10M), as much as one regeneration: exact statistics
    (terms per document, CSC bytes) and queries identical to a materialised corpus of the same size
    were judged worth it, against drawing the queries from the IDF of a prefix.

    Returns:
        The row's corpus fields: docs, avg_terms_per_doc, avg_terms_per_query, csc_bytes, csc_dtypes,
        corpus_kind ("materialised" or "streamed") and corpus_bytes (the folder on disk).
    """
    from harness import GENERATED, chunk_digest

    from sparsearch.backends.embedded.postings import Postings
    from sparsearch.eval.synthetic import generate_queries, iter_generated_rows

    streamed = n_docs > STREAM_ABOVE if streamed is None else streamed
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = len(profile.vocab)
    (out / "vocab.json").write_text(json.dumps(profile.vocab, ensure_ascii=False), encoding="utf-8")
    # 1. one pass over the rows: document frequencies, postings, largest weight (and the rows themselves)
    df = np.zeros(vocab_size, dtype=np.int64)
    nnz, max_weight, first_digest, chunks = 0, 0.0, "", []
    texts = (out / "texts.jsonl").open("w") if with_text else None  # bm25s reads text: token ids as words
    for indptr, terms, weights in iter_generated_rows(profile, n_docs, seed=n_docs, chunk=chunk):
        indptr, terms, weights = indptr.astype(np.int64), terms.astype(np.int32), weights.astype(np.float32)
        first_digest = first_digest or chunk_digest(indptr, terms, weights)
        df += np.bincount(terms, minlength=vocab_size)
        nnz += len(terms)
        max_weight = max(max_weight, float(weights.max(initial=0.0)))
        if not streamed:
            chunks.append((indptr, terms, weights))
        if texts is not None:
            for s, e in zip(indptr[:-1], indptr[1:], strict=True):
                texts.write(json.dumps({"text": " ".join(f"t{t}" for t in terms[s:e])}) + "\n")
    if texts is not None:
        texts.close()
    # 2. the documents: the rows, or what regenerates them
    if streamed:
        np.savez(out / "profile.npz", df_fraction=profile.df_fraction, doc_lengths=profile.doc_lengths,
                 weights=profile.weights)  # fmt: skip
        descriptor = {"n_docs": n_docs, "seed": n_docs, "chunk": chunk, "nnz": nnz, "max_weight": max_weight,
                      "first_chunk_sha256": first_digest}  # fmt: skip
        (out / GENERATED).write_text(json.dumps(descriptor, indent=1) + "\n")
    else:
        offsets = np.cumsum([0] + [int(c[0][-1]) for c in chunks])
        indptr = np.concatenate([[0]] + [c[0][1:] + offsets[i] for i, c in enumerate(chunks)]).astype(np.int64)
        terms = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.int32)
        weights = np.concatenate([c[2] for c in chunks]) if chunks else np.zeros(0, np.float32)
        del chunks
        np.savez(out / "docs.npz", indptr=indptr, term_ids=terms, weights=weights)
        del indptr, terms, weights
    # 3. queries, weighted by the whole corpus's IDF
    term_indptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df, out=term_indptr[1:])
    shape_only = Postings(profile.vocab, term_indptr, np.zeros(0, np.int32), np.zeros(0, np.float32), n_docs)
    term_index = {t: i for i, t in enumerate(profile.vocab)}
    rows = []
    for query in generate_queries(shape_only, n_queries, seed=7):
        pairs = sorted((term_index[t], w) for t, w in query.items())
        rows.append((np.array([t for t, _ in pairs], dtype=np.int32), np.array([w for _, w in pairs])))
    _save_csr(out / "queries.npz", rows, np.float64)
    if with_text:
        (out / "query_texts.json").write_text(json.dumps([" ".join(f"t{t}" for t in r[0]) for r in rows]))
    return {
        "docs": n_docs,
        "avg_terms_per_doc": float(nnz / n_docs),
        "avg_terms_per_query": float(np.mean([len(r[0]) for r in rows])),
        **csc_size(vocab_size, n_docs, nnz),
        "corpus_kind": "streamed" if streamed else "materialised",
        "corpus_bytes": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
    }


def csc_size(n_terms: int, n_docs: int, nnz: int) -> dict:
    """Bytes of the plain CSC arrays (indptr, indices, data) of an (n_docs x n_terms) float32 matrix at
    the widths scipy.sparse picks for it: int32 indices and indptr while nnz and the shape fit in
    int32, else int64 (``scipy.sparse._sputils.get_index_dtype``). Array payload only, no file header."""
    index = np.dtype(np.int32) if max(nnz, n_docs, n_terms) < 2**31 else np.dtype(np.int64)
    return {
        "csc_bytes": int((n_terms + 1) * index.itemsize + nnz * index.itemsize + nnz * 4),
        "csc_dtypes": {"indptr": index.name, "indices": index.name, "data": "float32"},
    }


# -- engines ---------------------------------------------------------------------------------------
def run_engine(
    engine: str, corpus: Path, work: Path, options: dict, interpreters: dict, repeats: int, timeout: int
) -> dict:
    """Build then query ``engine`` in fresh processes; any failure becomes ``{"error": ...}``."""
    script, kind = ENGINES[engine]
    python = interpreters.get(kind)
    if python is None:
        return {"engine": engine, "error": interpreters.get(f"{kind}-error", "interpreter unavailable")}
    index_dir = work / f"index-{engine}"
    shutil.rmtree(index_dir, ignore_errors=True)
    job = {"corpus": str(corpus), "index_dir": str(index_dir), "k": K, "repeats": repeats, "options": options}
    job_file = work / f"job-{engine}.json"
    job_file.write_text(json.dumps(job))
    result: dict = {"engine": engine}
    env = {**os.environ, "PYTHONPATH": str(PEERS), "TQDM_DISABLE": "1", "DISABLE_TQDM": "1"}
    for step in ("build", "query"):
        out_file = work / f"{step}-{engine}.json"
        out_file.unlink(missing_ok=True)
        try:
            done = subprocess.run(
                [str(python), str(PEERS / script), step, str(job_file), str(out_file)],
                capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            result["error"] = f"{step} did not finish within {timeout} s"
            break
        if done.returncode != 0 or not out_file.exists():
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            result["error"] = f"{step} failed: " + " | ".join(lines[-4:])
            break
        result.update(json.loads(out_file.read_text()))
    shutil.rmtree(index_dir, ignore_errors=True)
    return result


def recall_at_k(found: list[list[int]], exact: list[list[int]]) -> float:
    values = [len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True) if e]
    return float(np.mean(values)) if values else 1.0


def summarise(result: dict, exact: list[list[int]] | None, qrels_of=None) -> None:
    """Add recall (and nDCG) to every variant, pick the reported one, drop the raw top-k lists."""
    if "variants" not in result:
        return
    for variant in result["variants"]:
        if exact is not None and result["engine"] != "bm25s":
            variant["recall@10"] = recall_at_k(variant["top_k"], exact)
        if qrels_of is not None:
            variant["ndcg@10"] = qrels_of(variant["top_k"])
        del variant["top_k"]
    variants = result["variants"]
    fastest = min(variants, key=lambda v: v["latency"]["p50_ms"])
    if result["engine"] in APPROXIMATE:  # the fastest setting at recall@10 >= 0.99, else the most accurate
        good = [v for v in variants if v.get("recall@10", 1.0) >= 0.99]
        fastest = (
            min(good, key=lambda v: v["latency"]["p50_ms"]) if good else max(variants, key=lambda v: v["recall@10"])
        )
    result["reported"] = fastest


def run_engines(
    corpus: Path, work: Path, engines: list[str], options: dict, interpreters: dict, repeats: int, n_docs: int,
    timeout: int, qrels_of=None, skip: dict[str, str] | None = None,
) -> list[dict]:  # fmt: skip
    """Every engine built and queried on ``corpus`` (``n_docs`` documents), in order; an engine over its
    size limit, its estimated build time or named in ``skip`` (engine -> reason) gets a skipped entry."""
    results = []
    exact = None
    for engine in engines:
        limit, reason = MAX_DOCS.get(engine, (10**12, ""))
        if n_docs > limit:
            results.append({"engine": engine, "skipped": reason})
            continue
        if skip and engine in skip:
            results.append({"engine": engine, "skipped": skip[engine]})
            continue
        rate = BUILD_S_PER_MILLION.get(engine, 0.0)
        estimate = (rate + (REGENERATE_S_PER_MILLION if n_docs > STREAM_ABOVE else 0.0)) * n_docs / 1e6
        if rate and estimate > timeout:
            reason = (
                f"estimated build {estimate / 3600:.1f} h ({rate:.0f} s per 1M documents measured at 1M, plus "
                f"regenerating a streamed corpus) exceeds the {timeout} s budget of one step (--timeout)"
            )
            results.append({"engine": engine, "skipped": reason})
            continue
        log(f"  {engine} ({n_docs:,} docs) load {load_average()}")
        started = load_average()
        result = run_engine(engine, corpus, work, options.get(engine, {}), interpreters, repeats, timeout)
        result["load_average_start"], result["load_average_end"] = started, load_average()
        if engine == "sparsearch-embedded" and "variants" in result:
            exact = result["variants"][0]["top_k"]
        summarise(result, exact, qrels_of)
        if "error" in result:
            log(f"    {engine}: {result['error'][:300]}")
        results.append(result)
    return results


def quantisation_options(corpus: Path, opensearch: dict) -> dict:
    from harness import Corpus

    queries = np.load(corpus / "queries.npz")
    doc_scale = 255.0 / Corpus.load(corpus).max_doc_weight()  # 8-bit impacts
    query_scale = 255.0 / float(queries["weights"].max())
    return {
        "pisa": {"doc_scale": doc_scale, "query_scale": query_scale},
        "lucene-impact": {"doc_scale": doc_scale, "query_scale": query_scale, "threads": os.cpu_count()},
        "seismic": {"threads": os.cpu_count()},
        "opensearch": opensearch,
    }


class ScalePlan(NamedTuple):
    """What the scale section runs on one profile."""

    data: Path
    """The collection the synthetic corpora are fitted to."""
    sizes: list[int]
    """Corpus sizes, in documents, in running order."""
    first_only: dict[str, tuple[int, str]]
    """engine -> (size, reason): not run from that size on this profile (``--full``, profiles after the first)."""


def scale_plan(args: argparse.Namespace, collections: list[Path]) -> list[ScalePlan]:
    """The profiles and sizes of the scale section, the first profile first: ``--profiles`` (or the
    first ``--data`` collection) at ``--sizes`` (or 10k and 100k); with ``--full``, the four profiles,
    the first ``--data`` collection first, at 10k, 100k and 1M, and the first profile also at 10M
    (``LARGEST``), with ``FIRST_PROFILE_ONLY``'s engines at their large sizes on it alone."""
    if args.profiles:
        names = list(dict.fromkeys(args.profiles))
    elif args.full:
        names = list(dict.fromkeys([collections[0].name, *FOUR_COLLECTIONS]))
    else:
        names = [collections[0].name]
    plans = []
    for i, name in enumerate(names):
        data = next((c for c in collections if c.name == name), ROOT / "data" / name)
        if args.sizes:
            plans.append(ScalePlan(data, list(args.sizes), {}))
        elif args.full:
            plans.append(ScalePlan(data, FULL_SIZES + [LARGEST] * (i == 0), {} if i == 0 else FIRST_PROFILE_ONLY))
        else:
            plans.append(ScalePlan(data, list(SIZES), {}))
    return plans


def scale_rows(
    profile: CorpusProfile, plan: ScalePlan, args: argparse.Namespace, engines: list[str], opensearch: dict,
    interpreters: dict, run_at: str, done: dict[int, dict],
) -> Iterator[dict]:  # fmt: skip
    """One row per size of ``plan``: a synthetic corpus drawn from ``profile`` (the ``CorpusProfile`` of
    ``plan.data``), every engine built and queried on it, the corpus folder removed afterwards. A size
    in ``done`` (size -> row: rows an interrupted run of the same command finished) yields that row."""
    name = plan.data.name
    for size in plan.sizes:
        if size in done:
            log(f"{size:,} documents fitted to {name}: kept from the interrupted run (--resume)")
            yield done[size]
            continue
        corpus = args.work / "corpora" / f"synthetic-{name}-{size}"
        shutil.rmtree(corpus, ignore_errors=True)
        log(f"generating {size:,} documents fitted to {name}{' (streamed)' if size > STREAM_ABOVE else ''}")
        meta = synthetic_corpus(profile, size, args.queries, corpus, with_text=size <= MAX_DOCS["bm25s"][0])
        options = quantisation_options(corpus, opensearch)
        skip = {engine: reason for engine, (limit, reason) in plan.first_only.items() if size >= limit}
        engine_rows = run_engines(
            corpus, args.work, engines, options, interpreters, args.repeats, size, args.timeout, skip=skip
        )
        shutil.rmtree(corpus, ignore_errors=True)
        yield {**meta, "engines": engine_rows, "run_at": run_at}


def opensearch_server(action: str, heap: str) -> dict:
    env = {**os.environ, "SPARSEARCH_OS_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}"}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "opensearch"), action, "--port", str(OPENSEARCH_PORT)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": f"scripts/opensearch {action} failed: {done.stderr.strip()[-400:]}"}
    return {
        "url": f"http://127.0.0.1:{OPENSEARCH_PORT}",
        "pid_file": str(cache_dir() / "opensearch" / str(OPENSEARCH_PORT) / "pid"),
        "heap": heap,
    }


def scale_section(profiles: dict[str, dict], install_errors: dict) -> dict:
    """The scale section of bench.json: ``profiles`` (name -> {"profile", "rows"}) in the order of
    ``FOUR_COLLECTIONS``, then any other."""
    order = {name: i for i, name in enumerate(FOUR_COLLECTIONS)}
    ranked = sorted(profiles.items(), key=lambda item: order.get(item[0], len(order)))
    return {"profiles": dict(ranked), "install_errors": install_errors}


def write_result(result: dict, output: Path, started: float, partial: bool) -> None:
    """Write bench.json: after every scale row with ``partial`` (what ``--resume`` continues), and once
    at the end without it. ``started``: the run's ``time.perf_counter()`` at its start."""
    result["load_average_end"] = load_average()
    result["wall_s"] = time.perf_counter() - started + result.get("resumed_after_s", 0.0)
    from sparsearch._files import write_json_atomic

    result.pop("partial", None)
    if partial:
        result["partial"] = True
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, result)  # a run killed while writing leaves the last checkpoint whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--full",
        action="store_true",
        help="the four profiles at 10k, 100k and 1M documents, and the first profile at 10M too (~2 h on 2 cores)",
    )
    parser.add_argument("--model", default=None, help="model whose vectors the engines index (default: see above)")
    parser.add_argument("--queries", type=int, default=300, help="synthetic queries per corpus")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per engine (medians reported)")
    parser.add_argument("--sizes", type=int, nargs="*", help="synthetic corpus sizes (overrides the defaults)")
    parser.add_argument(
        "--profiles",
        nargs="+",
        choices=FOUR_COLLECTIONS,
        help="collections whose encoded documents the synthetic corpora are fitted to, one scale table each "
        "(default: the first --data collection; with --full, all four). With --profiles or --sizes, the "
        "profiles and sizes of the last run that this run leaves out are kept",
    )
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument(
        "--sections",
        nargs="*",
        default=list(SECTIONS),
        choices=list(SECTIONS),
    )
    parser.add_argument("--data", type=Path, nargs="*", help="BEIR collections (default: data/cisi and data/cranfield)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per engine step")
    parser.add_argument("--opensearch-heap", default="2g")
    parser.add_argument(
        "--reencode", action="store_true", help="re-encode the collections and re-run adapt (after a model change)"
    )
    parser.add_argument(
        "--adapt-minutes",
        type=float,
        default=30.0,
        help="sparsearch adapt --minutes (a safety cap; the step count is fixed)",
    )
    parser.add_argument("--adapt-seed", type=int, default=13, help="sparsearch adapt --seed for the adapted rows")
    parser.add_argument(
        "--no-adapt", action="store_true", help="leave out the adapted rows (sparsearch adapt: minutes per collection)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run of the same command (--output holds it): its scale rows are kept",
    )
    parser.add_argument("--work", type=Path, default=cache_dir() / "bench-work")
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "bench.json")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops OpenSearch
    started = time.perf_counter()
    model = args.model or default_model()
    collections = args.data or bundled_collections()
    plans = scale_plan(args, collections)
    sizes = sorted({size for plan in plans for size in plan.sizes})
    args.work.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.output.read_text()) if args.output.exists() else {}
    command = " ".join(["bench/run.py", *(a for a in sys.argv[1:] if a != "--resume")])
    if args.resume and not (previous.get("partial") and previous.get("command") == command):
        found = f"an interrupted run of `{previous['command']}`" if previous.get("partial") else "no interrupted run"
        parser.error(f"--resume: {args.output} holds {found}; run without --resume to start anew")
    result: dict = {
        "created_at": previous["created_at"] if args.resume else datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "load_average_start": load_average(),
        "model": model,
        "k": K,
        "repeats": args.repeats,
        "sections": {},
    }
    if args.resume:  # the wall time so far, and when each part started
        result["resumed_after_s"] = previous["wall_s"]
        result["resumed_at"] = [*previous.get("resumed_at", []), datetime.now(UTC).isoformat(timespec="seconds")]
    for section in SECTIONS:  # sections not rerun keep their last results
        if section not in args.sections and section in previous.get("sections", {}):
            result["sections"][section] = previous["sections"][section]

    # 1. the peers' virtualenv
    from env import ensure_env

    peers_asked = any(ENGINES[e][1] == "peers" for e in args.engines)
    if ("real" in args.sections or "scale" in args.sections) and peers_asked:
        peer_python, peer_status = ensure_env(log=log)
    else:  # quality sections, or project engines only: no peers' venv; the kept sections keep their install record
        peer_python, peer_status = Path(sys.executable), previous.get("peer_install", {})
    interpreters = {"project": Path(sys.executable), "peers": peer_python}
    result["peer_install"] = peer_status
    engines = [e for e in args.engines if e not in PEER_OF or peer_status.get(PEER_OF[e]) == "ok"]
    failed_installs = {e: peer_status[PEER_OF[e]] for e in args.engines if e in PEER_OF and e not in engines}

    opensearch: dict = {}
    needs_server = (
        "real" in args.sections
        or "indexing" in args.sections
        or ("scale" in args.sections and min(sizes) <= MAX_DOCS["opensearch"][0])
    )
    if "opensearch" in engines and needs_server:
        log("starting OpenSearch")
        opensearch = opensearch_server("start", args.opensearch_heap)
        if "error" in opensearch:
            failed_installs["opensearch"] = opensearch["error"]
            engines.remove("opensearch")
    try:
        # 2. quality
        if "quality" in args.sections:
            models = [m for m in dict.fromkeys([*QUALITY_MODELS, model]) if not (args.no_adapt and m == ADAPTED)]
            section_start = load_average()
            result["sections"]["quality"] = quality(
                collections, models, args.work, args.reencode, args.adapt_minutes, args.adapt_seed
            )
            result["sections"]["quality"]["load_average"] = [section_start, load_average()]
            result["sections"]["quality"]["adapt_minutes"] = args.adapt_minutes
            result["sections"]["quality"]["run_at"] = result["created_at"]

        # 2b. the four development collections
        if "collections" in args.sections:
            four = [ROOT / "data" / name for name in FOUR_COLLECTIONS]
            section_start = load_average()
            result["sections"]["collections"] = collections_quality(
                four, model, args.work, args.reencode, args.adapt_minutes, args.adapt_seed, adapt=not args.no_adapt
            )
            result["sections"]["collections"]["load_average"] = [section_start, load_average()]
            result["sections"]["collections"]["run_at"] = result["created_at"]

        # 2c. indexing cost
        if "indexing" in args.sections:
            from indexing import indexing

            four = [ROOT / "data" / name for name in FOUR_COLLECTIONS]
            section_start = load_average()
            result["sections"]["indexing"] = indexing(four, args.work / "indexing", SPARSEARCH, opensearch.get("url"))
            result["sections"]["indexing"]["load_average"] = [section_start, load_average()]
            result["sections"]["indexing"]["run_at"] = result["created_at"]
            if "opensearch" not in engines or "error" in opensearch:
                result["sections"]["indexing"]["opensearch_error"] = failed_installs.get("opensearch", "not run")

        # 3. real collections
        if "real" in args.sections:
            from sparsearch.eval.metrics import aggregate_metrics

            rows = []
            for data in collections:
                corpus = args.work / "corpora" / f"{data.name}-{Path(model).name}"
                shutil.rmtree(corpus, ignore_errors=True)
                meta = real_corpus(cached_index(model, data, args.work, args.reencode), data, corpus)

                def ndcg(top_k, meta=meta):
                    run = {
                        qid: {meta["doc_ids"][d]: float(K - r) for r, d in enumerate(top)}
                        for qid, top in zip(meta["query_ids"], top_k, strict=True)
                    }
                    return aggregate_metrics(meta["qrels"], run)["ndcg@10"]

                options = quantisation_options(corpus, opensearch)
                options["bm25s"] = {"analyzer": "words"}
                log(f"engines on {data.name} ({len(meta['doc_ids'])} docs, model {model})")
                engine_rows = run_engines(
                    corpus, args.work, engines, options, interpreters, args.repeats, len(meta["doc_ids"]),
                    args.timeout, qrels_of=ndcg,
                )  # fmt: skip
                rows.append({"collection": data.name, "docs": len(meta["doc_ids"]), "engines": engine_rows})
            result["sections"]["real"] = {"rows": rows, "install_errors": failed_installs}
            result["sections"]["real"]["run_at"] = result["created_at"]

        # 4. scale, per profile; the results so far are written after every row (a checkpoint for --resume)
        if "scale" in args.sections:
            from report import scale_profiles

            kept = scale_profiles(previous.get("sections", {}).get("scale") or {})
            partial = bool(args.sizes or args.profiles)  # a partial run keeps the profiles and sizes it leaves out
            profiles: dict[str, dict] = dict(kept) if partial else {}
            for plan in plans:
                name = plan.data.name
                old = kept.get(name, {}).get("rows", [])
                done = {r["docs"]: r for r in old if args.resume and r.get("run_at") == result["created_at"]}
                others = [r for r in old if r["docs"] not in plan.sizes] if args.sizes else []
                profile = load_profile(cached_index(model, plan.data, args.work, args.reencode))
                rows: list[dict] = []
                for row in scale_rows(
                    profile, plan, args, engines, opensearch, interpreters, result["created_at"], done
                ):  # fmt: skip
                    rows.append(row)
                    merged = sorted(others + rows, key=lambda r: r["docs"])
                    profiles[name] = {"profile": f"{model} on {name}", "rows": merged}
                    result["sections"]["scale"] = scale_section(profiles, failed_installs)
                    write_result(result, args.output, started, partial=True)
            result["sections"]["scale"] = scale_section(profiles, failed_installs)
    finally:
        if opensearch and "error" not in opensearch:
            log("stopping OpenSearch")
            opensearch_server("stop", args.opensearch_heap)

    write_result(result, args.output, started, partial=False)
    log(f"wrote {args.output} ({result['wall_s'] / 60:.1f} min)")

    # 5. report
    from report import write_report

    write_report(result, BENCH)
    log(f"wrote {BENCH / 'README.md'}")


if __name__ == "__main__":
    main()
