"""bm25s on the same text (the floor every user knows): its own BM25 over whitespace tokens of the
corpus text (real collections: sparsearch's word analyzer, as bench/bm25_parity.py; synthetic
corpora: the documents' token ids as words). Scores are bm25s's own, so recall against the
learned model's exact top-10 is not comparable and not reported; the quality table compares it."""

from __future__ import annotations

from harness import Engine, main


class Bm25s(Engine):
    name = "bm25s"

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        if self.options.get("analyzer") == "words":
            from sparsearch.encoders.analyzers import WordAnalyzer

            analyzer = WordAnalyzer()
            return [analyzer.tokenize(t) for t in texts]
        return [t.split() for t in texts]

    def build(self) -> None:
        import bm25s

        retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75, backend="numba")
        retriever.index(self._tokenize(self.corpus.texts()), show_progress=False)
        retriever.save(str(self.index_dir))

    def open(self) -> None:
        import bm25s

        self.retriever = bm25s.BM25.load(str(self.index_dir))
        self.retriever.backend = "numba"

    def prepare_queries(self) -> list:
        vocab = self.retriever.vocab_dict
        return [[t for t in tokens if t in vocab] for tokens in self._tokenize(self.corpus.query_texts())]

    def _retrieve(self, queries: list, k: int, threads: int) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in queries]
        kept = [i for i, q in enumerate(queries) if q]
        if not kept:
            return out
        docs, scores = self.retriever.retrieve(
            [queries[i] for i in kept], k=k, show_progress=False, n_threads=threads, backend_selection="numba"
        )
        for row, i in enumerate(kept):
            out[i] = [int(d) for d, s in zip(docs[row], scores[row], strict=True) if s > 0]
        return out

    def search(self, query, k: int) -> list[int]:
        return self._retrieve([query], k, 1)[0] if query else []

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        return self._retrieve(queries, k, threads)

    def describe(self) -> dict:
        import bm25s

        return {
            "version": bm25s.__version__,
            "method": "lucene",
            "k1": 1.5,
            "b": 0.75,
            "backend": "numba",
            "analyzer": self.options.get("analyzer", "whitespace"),
        }


if __name__ == "__main__":
    main(Bm25s)
