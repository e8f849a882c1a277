"""``sparsearch export``: an embedded index's vectors as Anserini's JsonVectorCollection (for pyserini)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sparsearch.cli._common import app, human_bytes, stderr, stdout, user_errors


@app.command()
def export(
    index: Annotated[Path, typer.Option("--index", help="The embedded index directory to export.")],
    output: Annotated[Path, typer.Option("--output", help="The export folder to create.")],
    export_format: Annotated[
        str, typer.Option("--format", help="Output format: jsonvector (Anserini's JsonVectorCollection).")
    ] = "jsonvector",
    scale: Annotated[
        float | None,
        typer.Option(
            "--scale", help="Multiply weights by this before rounding (default: the largest maps to --max-impact)."
        ),
    ] = None,
    max_impact: Annotated[
        int, typer.Option("--max-impact", min=1, help="The integer the largest weight maps to (without --scale).")
    ] = 1000,
    docs_per_file: Annotated[
        int, typer.Option("--docs-per-file", min=1, help="Documents per docs/part-NNNNN.jsonl file.")
    ] = 100_000,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output folder.")] = False,
) -> None:
    """Write an embedded index's documents and vectors as Anserini's JsonVectorCollection (integer weights),
    with a sidecar (scale, encoder) and the encoder, and print the pyserini command that builds a Lucene
    impact index from it. `sparsearch index --data OUTPUT` reads it back."""
    with user_errors():
        from sparsearch.errors import UsageError
        from sparsearch.jobs.export import export_jsonvector
        from sparsearch.jobs.jsonvector import DOCS_DIR

        if export_format != "jsonvector":
            raise UsageError(
                f"--format {export_format!r}: the one format is jsonvector (Anserini's JsonVectorCollection)"
            )
        with stderr.status("exporting"):
            summary = export_jsonvector(
                index, output, scale=scale, max_impact=max_impact, docs_per_file=docs_per_file, overwrite=overwrite
            )
        info = summary.info
        size = sum(f.stat().st_size for f in (output / DOCS_DIR).iterdir())
        table = Table(title=f"export {output}", show_header=False)
        table.add_row("model", info.encoder.name)
        table.add_row("documents", f"{info.documents:,} in {len(info.files)} files ({human_bytes(size)})")
        table.add_row("postings", f"{info.postings:,} ({info.dropped:,} weights rounded to 0, left out)")
        rule = f" (largest weight -> {info.max_impact})" if info.max_impact is not None else ""
        table.add_row("scale", f"{info.scale:.6g}{rule}; weight = impact / scale")
        table.add_row("seconds", f"{summary.seconds:.2f}")
        stdout.print(table)
        stdout.print(f"Build a Lucene impact index with pyserini (Java 21+ in JAVA_HOME):\n  {info.pyserini_command}")
