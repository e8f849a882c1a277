"""sparsearch's embedded engine (exact; compressed postings, window kernel), built from the corpus's CSR
rows chunk by chunk (``Corpus.iter_rows``), so a streamed 10M-document corpus is never held whole.

Queries are ``EncodedQuery`` objects (token strings, as the encoders make them): the timed searches
include mapping tokens to term ids. One query goes through ``search`` (hits, as the REST API serves
them); a batch through ``search_batch_ids`` (doc ids and scores, as an evaluation run reads them)."""

from __future__ import annotations

from pathlib import Path

from harness import Engine, main

CHUNK = 100_000
"""Documents per ``IndexWriter.add_csr`` call."""
PLAIN_POSTINGS = ("indptr.npy", "doc_idx.npy", "weights.npy", "max_weight.npy")
"""Postings files of the plain format (index format 2 and older): all of them are scanned."""
COMPRESSED_POSTINGS = (
    "window_offsets.npy", "doc_low.npy", "impacts.npy", "impact_scale.npy", "block_rows.npy", "block_max.npy"
)  # fmt: skip
"""Postings files of the compressed segment format: the arrays the search kernels scan (the block maxima
included: the window kernel reads them instead of the light terms' postings)."""
RESCORING = ("weights.npy",)
"""Stored beside the compressed postings: the exact float32 weights, read only to rescore the few
candidates that can reach the top k (4 bytes a posting, not scanned)."""


class Embedded(Engine):
    name = "sparsearch-embedded"

    def build(self) -> None:
        from sparsearch.backends.embedded.writer import IndexWriter
        from sparsearch.types import Document, EncoderFingerprint

        fingerprint = EncoderFingerprint(name="bench", vocab_hash="bench", idf_hash="bench")
        vocab = self.corpus.vocab
        start = 0
        with IndexWriter(self.index_dir, fingerprint, overwrite=True) as writer:
            for indptr, terms, weights in self.corpus.iter_rows(CHUNK):
                stop = start + len(indptr) - 1
                documents = [Document(doc_id=f"{i:010d}", text="") for i in range(start, stop)]  # id order = row order
                writer.add_csr(documents, indptr, terms, weights, vocab)
                start = stop

    def open(self) -> None:
        from sparsearch.backends.embedded.index import EmbeddedIndex

        self.index = EmbeddedIndex.open(self.index_dir)

    def prepare_queries(self) -> list:
        from sparsearch.types import EncodedQuery

        return [EncodedQuery(q, self.index.fingerprint) for q in self.corpus.query_dicts()]

    def search(self, query, k: int) -> list[int]:
        return [int(h.doc_id) for h in self.index.search(query, k)]

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        ids, _ = self.index.search_batch_ids(queries, k, threads=threads)  # ids and scores, no Hit objects
        return [[int(doc_id) for doc_id in row] for row in ids]

    def index_bytes(self) -> int:
        return self.index_dir_bytes()

    def index_dir_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.index_dir.rglob("*") if f.is_file())

    def describe(self) -> dict:
        """The index's bytes by role, summed over every ``seg-*`` folder.

        Returns:
            ``postings_bytes`` / ``postings_array_bytes``: the arrays the search kernels scan (the size
            compared with the CSC arrays), as files and without the ``.npy`` headers; ``postings_files``
            and ``postings_dtypes`` per file name (bytes summed over segments); in the compressed
            format (a segment with ``doc_low.npy``) ``rescoring_bytes`` / ``rescoring_array_bytes`` for
            ``weights.npy``, the exact weights kept apart; ``other_files``: every other file (token
            strings, external doc ids and their sort order, stored text, manifest), by relative path.
        """
        import numpy as np

        segments = sorted(d for d in self.index_dir.glob("seg-*") if d.is_dir())
        compressed = [(d / "doc_low.npy").is_file() for d in segments]
        roles: dict[str, dict[str, dict[str, int]]] = {"postings": {}, "rescoring": {}}
        dtypes: dict[str, str] = {}
        counted: set[Path] = set()
        for segment, is_compressed in zip(segments, compressed, strict=True):
            layout = {"postings": COMPRESSED_POSTINGS, "rescoring": RESCORING} if is_compressed else {
                "postings": PLAIN_POSTINGS, "rescoring": ()}  # fmt: skip
            for role, names in layout.items():
                for name in names:
                    path = segment / name
                    if not path.is_file():
                        continue
                    array = np.load(path, mmap_mode="r")
                    sizes = roles[role].setdefault(name, {"file": 0, "array": 0})
                    sizes["file"] += path.stat().st_size
                    sizes["array"] += int(array.nbytes)
                    dtypes[name] = str(array.dtype)
                    counted.add(path)
        postings, rescoring = roles["postings"], roles["rescoring"]
        out: dict = {
            "exact": True,
            "format": "compressed" if all(compressed) and segments else "plain" if not any(compressed) else "mixed",
            "segments": len(segments),
            "postings_bytes": sum(s["file"] for s in postings.values()),
            "postings_array_bytes": sum(s["array"] for s in postings.values()),
            "postings_files": {name: s["file"] for name, s in postings.items()},
            "postings_dtypes": {name: dtypes[name] for name in postings},
        }
        if any(compressed):
            out["rescoring_bytes"] = sum(s["file"] for s in rescoring.values())
            out["rescoring_array_bytes"] = sum(s["array"] for s in rescoring.values())
            out["rescoring_files"] = {name: s["file"] for name, s in rescoring.items()}
        out["other_files"] = {
            str(f.relative_to(self.index_dir)): f.stat().st_size
            for f in sorted(self.index_dir.rglob("*"))
            if f.is_file() and f not in counted
        }
        return out


if __name__ == "__main__":
    main(Embedded)
