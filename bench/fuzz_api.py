"""Fuzz the REST service's OpenAPI schema with the schemathesis CLI: no 5xx, responses as documented.

1. build an embedded index of the bundled Cranfield sample with the default model,
2. start ``sparsearch serve`` on it (a real server; the fuzzer adds and deletes documents),
3. run ``schemathesis run`` on its ``/openapi.json`` with every check (``--checks all``: server errors,
   status codes, content types, response headers and bodies against the schema, schema-valid data
   accepted, schema-violating data rejected, unsupported methods, missing headers...) in all phases
   (examples, coverage, fuzzing, stateful), ``bench/schemathesis.toml`` for the 413 size limit,
4. write the CLI's output to ``bench/results/schemathesis.txt``, its JUnit report next to it and a
   summary to ``bench/results/schemathesis.md``; exit with the CLI's status.

Usage (one command)::

    .venv/bin/python bench/fuzz_api.py                     # 300 examples per operation
    .venv/bin/python bench/fuzz_api.py --max-examples 50   # quicker
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from load_test import ROOT, build_index, describe_machine, start_service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cranfield")
    parser.add_argument("--max-examples", type=int, default=300, help="test cases per operation and phase")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "schemathesis")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sparsearch-fuzz-"))
    output_text = args.output.with_suffix(".txt")
    junit = args.output.parent / f"{args.output.name}-junit.xml"
    try:
        # 1. the index
        index = build_index(args.data, "bm25", workdir / "cranfield")
        # 2. the service
        process, url = start_service({"cranfield": workdir / "cranfield"}, 1, workdir / "serve.log")
        try:
            # 3. the fuzzer
            command = [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(ROOT / "bench" / "schemathesis.toml"),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(args.max_examples),
                "--seed",
                str(args.seed),
                "--workers",
                "1",
                "--report",
                "junit",
                "--report-junit-path",
                str(junit),
                "--suppress-health-check",
                "all",
            ]
            started = time.perf_counter()
            environment = dict(os.environ, NO_COLOR="1", COLUMNS="120")
            result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=workdir)
            seconds = time.perf_counter() - started
            server_log = (workdir / "serve.log").read_text()
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    # 4. the results
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).replace(url, "http://127.0.0.1:PORT")
    text = text.replace(f"{ROOT}/", "")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    output_text.write_text(text, encoding="utf-8")
    suite = ElementTree.parse(junit).getroot()
    cases = [case.get("name") for case in suite.iter("testcase")]
    failures = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suite.iter("testsuite"))
    server_errors = len(re.findall(r'" 5\d\d ', server_log))
    shown = " ".join(["python", *command[1:]]).replace(url, "http://127.0.0.1:PORT").replace(f"{ROOT}/", "")
    summary = [
        "# Schemathesis run against the REST service",
        "",
        f"`python bench/fuzz_api.py {' '.join(sys.argv[1:])}` ({time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
        f"{seconds:.0f} s on {describe_machine()['cpu']}, {os.cpu_count()} cores). The service served an "
        f"embedded index of `data/cranfield` ({index['documents']} documents, model {index['model']}); the CLI ran:",
        "",
        f"    {shown}",
        "",
        f"* exit status: {result.returncode} ({'passed' if result.returncode == 0 else 'FAILED'})",
        f"* JUnit test cases: {len(cases)}; failures and errors reported: {failures}",
        f"* responses with a 5xx status in the service's access log: {server_errors}",
        "",
        "The CLI's summary (full output in `schemathesis.txt`, JUnit report in `schemathesis-junit.xml`):",
        "",
        "```",
        *[line for line in text.splitlines()[-40:] if line.strip()],
        "```",
        "",
    ]
    args.output.with_suffix(".md").write_text("\n".join(summary), encoding="utf-8")
    print("\n".join(summary))
    sys.exit(result.returncode or (1 if server_errors else 0))


if __name__ == "__main__":
    main()
