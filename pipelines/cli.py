"""The lareturns command. Each command is a thin shell over library code; errors become one clear line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.ingest import FileProblem
from pipelines.synthetic.generate import DEFAULT_ACADEMIC_YEAR, generate as generate_county
from pipelines.validate import run_validation, top_rules
from pipelines.warehouse import ReconciliationError, WarehouseBusy

app = typer.Typer(
    help="lareturns: statutory returns, de-identification and disclosure control for LA children's data.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


@app.callback()
def main() -> None:
    """Commands for analysts, scheduled returns and auditors."""


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the synthetic MIS exports into.")],
    seed: Annotated[int, typer.Option(help="Same seed, byte-identical files.")] = 1,
    scale: Annotated[str, typer.Option(help="county, national, or a number of pupils.")] = "county",
    faults: Annotated[float | None, typer.Option(help="Share of rows given one realistic defect each, listed in faults.csv.")] = None,
    academic_year: Annotated[int, typer.Option(help="Start year of the academic year (2025 is 2025/26).")] = DEFAULT_ACADEMIC_YEAR,
) -> None:
    """Write a synthetic county shaped like MIS exports: no real child's data, ever."""
    try:
        with console.status("generating") as status:
            summary = generate_county(
                out, seed, scale, faults, academic_year,
                progress=lambda plan: status.update(f"generated {plan.la_name} ({plan.index + 1})"),
            )
    except ValueError as error:
        raise fail(str(error)) from None
    table = Table(title=f"Synthetic {scale} written to {out}")
    table.add_column("file")
    table.add_column("rows", justify="right")
    table.add_column("faults", justify="right")
    fault_counts = dict(summary.faults.group_by("file").len().iter_rows()) if summary.faults.height else {}
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}", f"{fault_counts.get(name, 0):,}")
    console.print(table)
    console.print(f"{summary.las} LA(s), {summary.schools:,} schools, {summary.providers:,} early-years providers; "
                  f"reference data in {out / 'reference'}")


@app.command()
def validate(
    input: Annotated[Path, typer.Option("--input", help="Folder holding the MIS exports.")],
    out: Annotated[Path, typer.Option(help="Folder for the quarantine files, Data Docs and validation.json.")],
    academic_year: Annotated[int, typer.Option(help="Start year of the academic year the exports belong to.")] = DEFAULT_ACADEMIC_YEAR,
    warehouse: Annotated[Path | None, typer.Option(help="DuckDB file (default: OUT/data/warehouse.duckdb).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="TOML column-mapping config for your MIS vendor's exports.")] = None,
) -> None:
    """Check every row against its contract; stage the good rows, quarantine the rest with their reasons."""
    try:
        run = run_validation(input, out, academic_year, warehouse, mapping)
    except (FileProblem, WarehouseBusy, ReconciliationError) as error:
        raise fail(str(error)) from None
    table = Table(title=f"Validation run {run.run_id}")
    for column in ("dataset", "rows read", "staged", "quarantined", "warnings", "top failing rules"):
        table.add_column(column, justify="right" if column in ("rows read", "staged", "quarantined", "warnings") else "left")
    for result in run.results:
        r = result.reconciliation
        warned = result.validated.warnings["source_row"].n_unique()
        table.add_row(result.dataset, f"{r.rows_read:,}", f"{r.rows_staged:,}", f"{r.rows_quarantined:,}", f"{warned:,}",
                      top_rules(result.validated))
    console.print(table)
    for name in run.not_found:
        console.print(f"not found, skipped: {name}")
    console.print(f"quarantine files: {out / 'quarantine'}; Data Docs: {out / 'data_docs' / 'index.html'}; "
                  f"warehouse: {run.warehouse}")
