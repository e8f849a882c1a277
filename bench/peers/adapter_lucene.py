"""Lucene impact search through pyserini (Anserini's ``SimpleImpactSearcher``).

Lucene stores impacts as integer term frequencies, so document weights are scaled by ``doc_scale``
and rounded (weights that round to 0 are dropped); query weights are scaled by ``query_scale`` and
rounded, as pyserini's own impact search does. Indexed with ``pyserini.index.lucene
--collection JsonVectorCollection --impact --pretokenized`` (a JVM subprocess). Needs Java 21+
(``JAVA_HOME``); pyserini builds an OpenAI client on import, so a placeholder key is set.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

from harness import Engine, main, vm_hwm_mb

os.environ.setdefault("OPENAI_API_KEY", "placeholder-not-used")
os.environ.setdefault("JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64")


class Lucene(Engine):
    name = "lucene-impact"

    def build(self) -> None:
        c = self.corpus
        scale = self.options["doc_scale"]
        source = self.index_dir.parent / (self.index_dir.name + "-jsonl")
        source.mkdir(parents=True, exist_ok=True)
        with (source / "docs.jsonl").open("w", encoding="utf-8") as handle:
            row = 0
            for indptr, terms, weights in c.iter_rows(100_000):  # chunks: a streamed corpus is never whole
                for s, e in zip(indptr[:-1], indptr[1:], strict=True):
                    pairs = zip(terms[s:e], weights[s:e], strict=True)
                    vector = {c.vocab[t]: int(round(float(w) * scale)) for t, w in pairs}
                    vector = {t: w for t, w in vector.items() if w > 0}
                    handle.write(json.dumps({"id": str(row), "contents": "", "vector": vector}) + "\n")
                    row += 1
        command = [
            sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonVectorCollection",
            "--input", str(source), "--index", str(self.index_dir), "--generator", "DefaultLuceneDocumentGenerator",
            "--threads", str(self.options.get("threads", 2)), "--impact", "--pretokenized", "--optimize",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pyserini indexing failed: {done.stderr[-2000:]}")
        for f in source.iterdir():
            f.unlink()
        source.rmdir()

    def peak_rss_mb(self) -> float:
        # the indexing JVM is a child process (forked from this small one, so its ru_maxrss is its own)
        return max(vm_hwm_mb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)

    def open(self) -> None:
        from pyserini.pyclass import autoclass

        self.searcher = autoclass("io.anserini.search.SimpleImpactSearcher")(str(self.index_dir))

    def prepare_queries(self) -> list:
        from pyserini.pyclass import JHashMap, JInt

        scale = self.options["query_scale"]
        queries = []
        for query in self.corpus.query_dicts():
            jquery = JHashMap()
            for token, weight in query.items():
                value = int(round(weight * scale))
                if value > 0:
                    jquery.put(token, JInt(value))
            queries.append(jquery)
        return queries

    def search(self, query, k: int) -> list[int]:
        return [int(hit.docid) for hit in self.searcher.search(query, k)]

    def search_batch(self, queries: list, k: int, threads: int) -> list[list[int]]:
        from pyserini.pyclass import JArrayList

        query_list, ids = JArrayList(), JArrayList()
        for i, query in enumerate(queries):
            query_list.add(query)
            ids.add(str(i))
        results = self.searcher.batch_search(query_list, ids, int(k), int(threads))
        by_id = {entry.getKey(): entry.getValue() for entry in results.entrySet().toArray()}
        return [[int(hit.docid) for hit in by_id[str(i)]] for i in range(len(queries))]

    def describe(self) -> dict:
        from importlib.metadata import version

        return {
            "version": version("pyserini"),
            "doc_scale": self.options["doc_scale"],
            "query_scale": self.options["query_scale"],
            "quantisation": "round(weight x scale) for documents and queries",
            "java_home": os.environ["JAVA_HOME"],
        }


if __name__ == "__main__":
    main(Lucene)
