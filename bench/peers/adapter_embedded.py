"""sparsearch's embedded engine (exact; MaxScore kernel), built from the corpus's CSR rows."""

from __future__ import annotations

from harness import Engine, main


class Embedded(Engine):
    name = "sparsearch-embedded"

    def build(self) -> None:
        from sparsearch.backends.embedded.writer import IndexWriter
        from sparsearch.types import Document, EncoderFingerprint

        fingerprint = EncoderFingerprint(name="bench", vocab_hash="bench", idf_hash="bench")
        c = self.corpus
        chunk = 100_000
        with IndexWriter(self.index_dir, fingerprint, overwrite=True) as writer:
            for start in range(0, c.n_docs, chunk):
                stop = min(start + chunk, c.n_docs)
                lo, hi = c.doc_indptr[start], c.doc_indptr[stop]
                documents = [Document(doc_id=f"{i:010d}", text="") for i in range(start, stop)]  # id order = row order
                writer.add_csr(
                    documents, c.doc_indptr[start : stop + 1] - lo, c.doc_terms[lo:hi], c.doc_weights[lo:hi], c.vocab
                )

    def open(self) -> None:
        from sparsearch.backends.embedded.index import EmbeddedIndex

        self.index = EmbeddedIndex.open(self.index_dir)

    def prepare_queries(self) -> list:
        from sparsearch.types import EncodedQuery

        return [EncodedQuery(q, self.index.fingerprint) for q in self.corpus.query_dicts()]

    def search(self, query, k: int) -> list[int]:
        return [int(h.doc_id) for h in self.index.search(query, k)]

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        return [[int(h.doc_id) for h in hits] for hits in self.index.search_batch(queries, k, threads=threads)]

    def index_bytes(self) -> int:
        return self.index_dir_bytes()

    def index_dir_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.index_dir.rglob("*") if f.is_file())

    def describe(self) -> dict:
        """Postings = the arrays the search kernels read (the size compared with the CSC arrays); the other
        files (token strings, external doc ids and their sort order, stored text, manifest) are listed apart."""
        import numpy as np

        data = self.index_dir / "seg-000001"
        names = [f for f in ("indptr.npy", "doc_idx.npy", "weights.npy", "max_weight.npy") if (data / f).is_file()]
        postings = {f: (data / f).stat().st_size for f in names}
        arrays = {f: int(np.load(data / f, mmap_mode="r").nbytes) for f in names}
        others = {
            str(f.relative_to(self.index_dir)): f.stat().st_size
            for f in sorted(self.index_dir.rglob("*"))
            if f.is_file() and f.name not in names
        }
        return {
            "exact": True,
            "postings_bytes": sum(postings.values()),
            "postings_array_bytes": sum(arrays.values()),
            "postings_files": postings,
            "postings_dtypes": {f: str(np.load(data / f, mmap_mode="r").dtype) for f in names},
            "other_files": others,
        }


if __name__ == "__main__":
    main(Embedded)
