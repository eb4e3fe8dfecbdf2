"""The lareturns command. Each command is a thin shell over library code; errors become one clear line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

# Before anything imports Prefect, whoever starts the command (not only the Makefile): a busy 2-core machine can
# take a minute to start its temporary API (Prefect waits 20 s by default); no analytics; and no task cache, whose
# keys would hash whole frames.
for _name, _value in (("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"), ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
                      ("DO_NOT_TRACK", "1"), ("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")):
    os.environ.setdefault(_name, _value)

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from schemas.calendar import DEFAULT_ACADEMIC_YEAR, DEFAULT_CENSUS, Term
from schemas.catalog import RunPaths, ValidationPaths

LAYOUT = RunPaths(Path())  # a run folder's places, relative, for messages and help

# Each command imports what it uses when it runs, so that `--help` and the light commands start at once.
# Plain help (click's layout): a flag is shown as a flag, without the "<bool>" type rich help gives it, every
# placeholder in one style (<path>, <int>), and each command's examples kept as written.
app = typer.Typer(
    help="lareturns: statutory returns, de-identification and disclosure control for LA children's data.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
console = Console()
AUDIT_CELLS_SHOWN = 50


def examples(*lines: str) -> str:
    """A command's help epilog: its example lines, kept unwrapped (click's \\b)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


def fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def checked_term(period: str) -> Term:
    """The term a --period label names, refused in one line before any work starts."""
    try:
        return Term.parse(period)
    except ValueError as error:
        raise fail(str(error)) from None


@app.callback()
def main() -> None:
    """Commands for analysts, scheduled returns and auditors."""
    from outputs.files import restrict_new_files
    from schemas.config import AccessError, load_access_group

    try:
        restrict_new_files(group=load_access_group())  # whatever the shell's umask: the data is personal
    except AccessError as error:
        raise fail(str(error)) from None


@app.command(epilog=examples(
    'lareturns generate --out in --scale 6000 --faults 0.02',
    'lareturns generate --out national --scale national --by-la --la 855',
))
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the synthetic MIS exports into.")],
    seed: Annotated[int, typer.Option(help="Same seed, byte-identical files.")] = 1,
    scale: Annotated[str, typer.Option(help="county, national, or a number of pupils.")] = "county",
    faults: Annotated[float | None, typer.Option(help="Share of rows given one realistic defect each, listed in faults.csv.")] = None,
    academic_year: Annotated[int, typer.Option(help="Start year of the academic year (2025 is 2025/26).")] = DEFAULT_ACADEMIC_YEAR,
    by_la: Annotated[bool, typer.Option("--by-la", help="A folder per LA, named by its old LA code (the input of "
                                                        "`lareturns run-national`).")] = False,
    la: Annotated[list[str] | None, typer.Option(help="Only this LA of the plan (old LA code, such as 855); repeatable.")] = None,
) -> None:
    """Write a synthetic county shaped like MIS exports: no real child's data, ever."""
    from pipelines.synthetic.generate import generate as generate_county
    from schemas.catalog import reference_folder


    try:
        with console.status("generating") as status:
            summary = generate_county(
                out, seed, scale, faults, academic_year,
                progress=lambda plan: status.update(f"generated {plan.la_name} ({plan.index + 1})"),
                by_la=by_la, only=tuple(la or ()))
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
    where = "the reference folder of each LA's folder" if by_la else reference_folder(out)
    console.print(f"{summary.las} LA(s), {summary.schools:,} schools, {summary.providers:,} early-years providers; "
                  f"reference data in {where}")


@app.command(epilog=examples('lareturns validate --input in --out checked --period 2026-spring'))
def validate(
    input: Annotated[Path, typer.Option("--input", help="Folder holding the MIS exports.")],
    out: Annotated[Path, typer.Option(help="Folder for the quarantine files, Data Docs and validation.json.")],
    period: Annotated[str, typer.Option(help="Census term the exports belong to, such as 2026-spring: dates are checked "
                                              "against its census day and academic year.")] = DEFAULT_CENSUS,
    warehouse: Annotated[Path | None, typer.Option(help=f"DuckDB file (default: OUT/{LAYOUT.warehouse}).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="TOML column-mapping config for your MIS vendor's exports.")] = None,
) -> None:
    """Check every row against its contract; stage the good rows, quarantine the rest with their reasons."""
    from pipelines.assurance.docs_assets import AssetsMissing
    from pipelines.flows.validate import run_validation, top_rules
    from pipelines.store.exports import FileProblem
    from pipelines.store.warehouse import ReconciliationError, WarehouseBusy
    from schemas.specs.mapping import MappingError

    term = checked_term(period)
    try:
        run = run_validation(input, out, term, warehouse, mapping)
    except (FileProblem, MappingError, WarehouseBusy, ReconciliationError, AssetsMissing) as error:
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
    written = ValidationPaths(out)
    console.print(f"quarantine files: {written.quarantine}; Data Docs: {written.data_docs_index}; "
                  f"warehouse: {run.warehouse}")


@contextmanager
def progress_bars(title: str) -> Iterator[None]:
    """A bar per step of the run (validation per export, protection per problem) with the counts of the part just
    done, moved by the run's log lines that carry one (pipelines/flows/prefect_api.py logged_progress)."""
    import logging

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipelines.flows.prefect_api import PROGRESS

    bars = Progress(SpinnerColumn(), TextColumn("{task.fields[step]:<10}"), BarColumn(), TextColumn("{task.fields[parts]:>5}"),
                    TimeElapsedColumn(), TextColumn("{task.description}"), console=console)
    steps = {"run": bars.add_task(title, total=None, step="run", parts="")}

    class Moved(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            step, done, total = getattr(record, PROGRESS, (None, 0, 0))
            if step is not None:
                if step not in steps:
                    steps[step] = bars.add_task("", total=total, step=step, parts="")
                bars.update(steps[step], completed=done, total=total, parts=f"{done}/{total}",
                            description=record.getMessage())
                bars.refresh()  # each part's counts drawn, even when the next follows within the refresh interval

    handler, logger = Moved(), logging.getLogger("prefect")
    logger.addHandler(handler)
    try:
        with bars:
            yield
    finally:
        logger.removeHandler(handler)


def _import_great_expectations() -> None:
    """Imported while Prefect's server starts (4-6 s of the run's validation otherwise)."""
    import great_expectations  # noqa: F401


@app.command(epilog=examples(
    'lareturns run census --input in --out runs/2026-spring --period 2026-spring',
    'lareturns run early_years --input in --out runs/ey-2026-spring --period 2026-spring',
))
def run(
    input: Annotated[Path, typer.Option("--input", help="Folder holding the MIS exports.")],
    out: Annotated[Path, typer.Option(help="Folder for the validation results, deliveries, auditor report and warehouse.")],
    return_name: Annotated[str, typer.Argument(metavar="<return>", help="census (all), school_statistics, early_years, destinations, health or youth_support.")] = "census",
    period: Annotated[str | None, typer.Option(help="Census term, such as 2026-spring (the spring term of 2025/26); default the current term.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Disclosure policy TOML for all statistics (default: each recipient's).")] = None,
    known_published: Annotated[Path | None, typer.Option(help="Folder of EES files others have published about the same "
                                                              "units (the DfE's own school figures): protected as public.")] = None,
) -> None:
    """Run a return now on the embedded Prefect API: validate, protect, deliver, report."""
    from schemas.catalog import RETURN_NAMES

    if return_name not in ("census", *RETURN_NAMES):  # answered before Prefect is imported or started
        raise fail(f"no return {return_name!r}; choose one of {', '.join(('census', *RETURN_NAMES))}")
    if period is not None:
        checked_term(period)
    for option, folder in (("--input", input), ("--known-published", known_published)):
        if folder is not None and not folder.is_dir():
            raise fail(f"{option} {folder}: no such folder")
    from pipelines.flows.prefect_api import prefect_api
    from pipelines.flows.returns import RETURNS, RUN_ERRORS

    try:
        with prefect_api(meanwhile=_import_great_expectations), progress_bars(
                f"running {return_name} for {period or 'the current term'} (Prefect logs below)"):
            result = RETURNS[return_name](input, out, period, policy, known_published)
    except (*RUN_ERRORS, ValueError) as error:
        raise fail(str(error)) from None
    for line in result["recovered"]:
        console.print(f"recovered: {line}")
    summary = Table(title=f"run {result['run_id']}: {return_name} {result['period']}")
    for column in ("published table set", "recipient", "cells", "primary", "secondary", "audit"):
        summary.add_column(column, justify="right" if column in ("cells", "primary", "secondary") else "left")
    for item in result["publications"]:
        summary.add_row(item["name"], item["recipient"], f"{item['cells']:,}", f"{item['primary']:,}",
                        f"{item['secondary']:,}", "passed" if item["passed"] else "FAILED")
    console.print(summary)
    for delivery in result["delivered"]:
        console.print(f"{delivery['recipient']}: {delivery['files']} files in {delivery['folder']}")
    console.print(f"auditor report: {result['report']}")
    console.print(f"ledger entry {result['ledger_entry']} ({result['ledger_hash']}) in {RunPaths(out).ledger}, signed; an "
                  f"auditor keeps that hash and the ledger's public key (`lareturns ledger-key`) and checks the run with "
                  f"`lareturns audit {out} --expect-entry {result['ledger_hash']} --public-key KEY.pem`")


@app.command("run-national", epilog=examples(
    'lareturns run-national --input national --out national-runs --workers 2',
    'lareturns run-national --input national --out national-runs --la 855 --la 886',
))
def run_national(
    input: Annotated[Path, typer.Option("--input", help="Folder of LA folders, each named by its old LA code and holding "
                                                       "that LA's exports (`lareturns generate --by-la`).")],
    out: Annotated[Path, typer.Option(help="Folder for a run folder per LA and the national summary.")],
    period: Annotated[str, typer.Option(help="Census term, such as 2026-spring.")] = DEFAULT_CENSUS,
    workers: Annotated[int, typer.Option(help="Worker processes of the local Dask cluster, one LA each at a time.")] = 2,
    cluster: Annotated[str | None, typer.Option(help="Address of a running Dask scheduler, such as tcp://10.0.0.5:8786, "
                                                     "instead of a local cluster; needs PREFECT_API_URL set to a server the workers reach.")] = None,
    la: Annotated[list[str] | None, typer.Option(help="Only this LA (old LA code); repeatable, for rerunning failed LAs.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Disclosure policy TOML for all statistics (default: each recipient's).")] = None,
) -> None:
    """Run the census for every LA in the input, one flow per LA fanned out on Dask; failed LAs are retried once,
    then listed."""
    checked_term(period)
    if not input.is_dir():
        raise fail(f"--input {input}: no such folder")
    if workers < 1:
        raise fail(f"--workers {workers}: at least one")
    from schemas.catalog import NationalPaths

    paths = NationalPaths(input, out)
    found = paths.las()
    missing = sorted(set(la or ()) - set(found))
    if missing:
        raise fail(f"--la {missing[0]}: no folder {input / missing[0]}")
    if not found:
        raise fail(f"--input {input}: no LA folders (named by old LA code, such as 855)")
    import json

    from outputs.files import read_json, write_text_atomic
    from pipelines.flows.national import national_census, national_summary, task_runner
    from pipelines.flows.prefect_api import ApiUnavailable, configured_api_url, prefect_api

    las = [code for code in found if not la or code in la]
    if cluster and not configured_api_url():  # a temporary server answers on this machine only
        raise fail("--cluster needs a Prefect server its workers can reach: start one (`prefect server start --host "
                   "0.0.0.0`) and set PREFECT_API_URL to it, here and on the workers")
    try:
        with prefect_api(meanwhile=_import_great_expectations) as api_url:
            result = national_census.with_options(task_runner=task_runner(workers, cluster, api_url))(
                input.resolve(), out.resolve(), period, las, policy.resolve() if policy else None)
    except ApiUnavailable as error:
        raise fail(str(error)) from None
    out.mkdir(parents=True, exist_ok=True)
    summary = national_summary(read_json(paths.summary) if paths.summary.exists() else None, result)
    write_text_atomic(paths.summary, json.dumps(summary, indent=2) + "\n")
    table = Table(title=f"national census {period}: {len(result['las'])} of {len(las)} LAs delivered")
    for column in ("LA", "seconds", "worker", "worker peak MB", "audit"):
        table.add_column(column, justify="right" if column in ("seconds", "worker peak MB") else "left")
    for item in result["las"]:
        table.add_row(item["la"], f"{item['seconds']:.1f}", item["worker"], f"{item['worker_peak_rss_mb']:,}",
                      "passed" if item["audit_passed"] else "FAILED")
    console.print(table)
    console.print(f"summary of every LA's latest run: {paths.summary}")
    for item in result["failed"]:
        console.print(f"[bold red]failed:[/] LA {item['la']}: {item['error']}", highlight=False)
    if result["failed"]:
        again = " ".join(f"--la {item['la']}" for item in result["failed"])
        raise fail(f"{len(result['failed'])} LA(s) failed; the others are delivered. Rerun only those with {again}")


def _hierarchies(specs: list[str]) -> dict[str, Hierarchy]:
    from disclosure_control.hierarchy import Hierarchy
    from outputs.files import read_json

    out = {}
    for spec in specs:
        dim, sep, path = spec.partition("=")
        if not sep or not dim or not path:
            raise ValueError(f"--hierarchy expects dim=FILE, not {spec!r}")
        children = read_json(Path(path))
        if not isinstance(children, dict):
            raise ValueError(f"{path}: a hierarchy is a JSON object mapping each parent to its list of children")
        out[dim] = Hierarchy.from_children(dim, children)
    return out


@app.command(epilog=examples(
    'lareturns protect pupils.csv --dims school,ethnicity,sex --out cells.csv',
    'lareturns protect funding.csv --dims district,provider_type --value funding --contributor provider --out funding_cells.csv',
))
def protect(
    table: Annotated[Path, typer.Argument(help="CSV of microdata (one row per person) or of base cells (with --value).")],
    dims: Annotated[str, typer.Option(help="Comma-separated dimension columns, e.g. school,ethnicity,sex.")],
    out: Annotated[Path, typer.Option(help="CSV to write: every cell, totals included, with value and status.")],
    value: Annotated[str | None, typer.Option(help="Count column of a frequency table of base cells; with --contributor, "
                                                    "the amount column of a magnitude table (decimals allowed).")] = None,
    contributor: Annotated[str | None, typer.Option(help="With --value: the column naming who contributes each amount "
                                                         "(one row per contribution), for dominance and p%.")] = None,
    hierarchy: Annotated[list[str] | None, typer.Option(help="dim=FILE: JSON mapping each parent to its children, root Total.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy TOML (default: schemas/policies/disclosure.toml).")] = None,
    threshold: Annotated[int | None, typer.Option(help="Override the policy's frequency threshold.")] = None,
    protection_level: Annotated[float | None, typer.Option(help="Override the protection level, % of the cell value.")] = None,
    method: Annotated[str | None, typer.Option(help="fast or optimal.")] = None,
) -> None:
    """Add the margins, suppress what would disclose, audit the pattern, write every cell."""
    import polars as pl

    from disclosure_control.hierarchy import HierarchyError
    from disclosure_control.policy import PolicyError
    from disclosure_control.protect import ProtectionError
    from disclosure_control.protect import protect as protect_table
    from disclosure_control.status import STATUSES
    from disclosure_control.table import TableError, TableSpec, from_frequencies, from_microdata
    from outputs.files import read_csv_text, write_csv_atomic
    from schemas.config import load_disclosure_policy

    dimensions = [d.strip() for d in dims.split(",") if d.strip()]
    try:
        rules = load_disclosure_policy(policy).with_overrides(threshold=threshold, protection_level=protection_level, method=method)
        frame = read_csv_text(table)
        hierarchies = _hierarchies(hierarchy or [])
        unknown = [d for d in hierarchies if d not in dimensions]
        if unknown:
            raise ValueError(f"--hierarchy names {unknown[0]!r}, which is not in --dims")
        if contributor and not value:
            raise ValueError("--contributor needs --value, the amount each contributor gives")
        if contributor:
            model = from_microdata(frame, [TableSpec(table.stem, tuple(dimensions))], hierarchies, magnitude=value,
                                   contributor=contributor)
        elif value:
            model = from_frequencies(frame, dimensions, value, hierarchies, name=table.stem)
        else:
            model = from_microdata(frame, [TableSpec(table.stem, tuple(dimensions))], hierarchies)
        counts_under_release_policy = policy is None and not contributor and (rules.dominance or rules.p_percent)
        result = protect_table(model, rules.for_counts() if counts_under_release_policy else rules)
        if counts_under_release_policy:  # the release's policy holds them for the amounts its publications show
            result.notes.append("the policy's dominance and p% rules apply to amounts (--value with --contributor); "
                                "this table counts units")
    except (PolicyError, TableError, HierarchyError, ProtectionError, ValueError) as error:
        raise fail(str(error)) from None
    cells = result.cells
    write_csv_atomic(cells.select(*dimensions, pl.col("display").alias("value"), "status"), out)
    write_csv_atomic(cells.select(*dimensions, pl.col("value").alias("amount" if contributor else "count"), "status", "rule",
                                  "reason", "lower", "upper",
                                  "exact", "safe"), out.with_name(f"{out.stem}.decisions.csv"))
    summary = result.summary()
    report = Table(title=f"Protected {table.name}: {summary['cells']:,} cells (policy {rules.version}, method {summary['method']})")
    report.add_column("status")
    report.add_column("cells", justify="right")
    for status in STATUSES:
        report.add_row(status, f"{summary['by_status'][status]:,}")
    console.print(report)
    loss, audit = summary["information_loss"], summary["audit"]
    console.print(f"information loss: {loss['secondary_cells']:,} secondary cells, total value {loss['secondary_value']:,.0f}")
    console.print(f"audit: {audit['suppressed_cells']:,} suppressed cells checked by linear programming; "
                  f"narrowest primary interval {audit['narrowest_primary_interval']}; "
                  f"{'PASSED: no cell narrower than its protection level' if audit['passed'] else 'FAILED'}")
    for note in summary["notes"]:
        console.print(f"note: {note}")
    console.print(f"written: {out} and {out.with_name(out.stem + '.decisions.csv')}")


@app.command(epilog=examples(
    'lareturns serve --root /data/returns --dry-run',
    'PREFECT_API_URL=http://127.0.0.1:4200/api lareturns serve --root /data/returns',
))
def serve(
    root: Annotated[Path, typer.Option(help="Folder the schedule's landing and output folders are relative to.")],
    config: Annotated[Path | None, typer.Option(help="Schedule TOML (default: schemas/policies/schedule.toml).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the deployments and their next runs, then exit.")] = False,
) -> None:
    """Register the returns as Prefect deployments on their census days and run each when due, until stopped."""
    from pipelines.flows import serve as serving
    from schemas.specs.schedule import describe, next_runs

    if not root.is_dir():
        raise fail(f"--root {root}: not a folder")
    try:
        schedule = serving.load(config)
        deployments = serving.build_deployments(schedule, root)
    except ValueError as error:  # a ScheduleError naming the key, or a deployment Prefect refuses
        raise fail(str(error)) from None
    # One block per deployment, each line printed whole (soft wrap): a folder path is never broken mid-word.
    console.print(f"Deployments from {schedule.path}. No period is passed: each run reports on the term of its own "
                  "date.", soft_wrap=True, highlight=False)
    for spec, deployment in zip(schedule.deployments, deployments, strict=True):
        console.print(f"\n[bold]{spec.name}[/] ({deployment.flow_name}): {describe(spec)}", soft_wrap=True, highlight=False)
        console.print(f"  next runs: {', '.join(f'{run:%Y-%m-%d}' for run in next_runs(spec, 3))}", soft_wrap=True,
                      highlight=False)
        for key, value in deployment.parameters.items():
            console.print(f"  {key}={value}", soft_wrap=True, highlight=False)
    if dry_run:
        return
    try:
        url = serving.check_api()
    except serving.ServeError as error:
        raise fail(str(error)) from None
    console.print(f"serving {len(deployments)} deployments against {url}; Ctrl-C stops and pauses their schedules")
    serving.serve(deployments)


@app.command(epilog=examples('lareturns audit runs/2026-spring --expect-entry HASH --public-key ledger_public_key.pem'))
def audit(
    run_dir: Annotated[Path, typer.Argument(help="A run's output folder (the --out of lareturns run).")],
    expect_entry: Annotated[str | None, typer.Option(help="A ledger entry hash you recorded earlier (lareturns run "
                                                          "prints it): the audit fails if the chain no longer holds it.")] = None,
    known_published: Annotated[Path | None, typer.Option(help="Folder of EES files others have published about the same "
                                                              "units: the attack uses them too.")] = None,
    public_key: Annotated[Path | None, typer.Option(help="The ledger's public key (PEM, from `lareturns ledger-key`): "
                                                         "every entry must be signed by its private key.")] = None,
) -> None:
    """Check a run without trusting its reports: ledger chain, file hashes, an interval attack, the leak scan."""
    from pipelines.assurance.verify import latest_entry_hash, verify_run

    if not RunPaths(run_dir).warehouse.exists():
        raise fail(f"{run_dir}: no run here (no {LAYOUT.warehouse})")
    findings = verify_run(run_dir, expect_entry, known_published, public_key)
    table = Table(title=f"lareturns audit of {run_dir}")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for finding in findings:
        table.add_row(finding.check, "[green]pass[/]" if finding.passed else "[bold red]FAIL[/]", finding.detail)
    console.print(table)
    for finding in (f for f in findings if f.cells):
        cells = Table(title=f"{finding.check}: the values it narrowed")
        for column in ("release", "file", "area", "filters", "interval", "reason"):
            cells.add_column(column)
        for cell in finding.cells[:AUDIT_CELLS_SHOWN]:
            cells.add_row(cell["release"], cell["file"], cell["area"], " / ".join(cell["filters"]),
                          f"{cell['interval'][0]:g} to {cell['interval'][1]:g}", cell["reason"])
        console.print(cells)
        if len(finding.cells) > AUDIT_CELLS_SHOWN:
            console.print(f"and {len(finding.cells) - AUDIT_CELLS_SHOWN} more")
    failed = [f for f in findings if not f.passed]
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(findings)} checks failed[/]")
        raise typer.Exit(code=1)
    console.print(f"all {len(findings)} checks passed; the newest ledger entry is {latest_entry_hash(run_dir)}: keep it "
                  "and give it as --expect-entry next time")


@app.command("ledger-key", epilog=examples('lareturns ledger-key > ledger_public_key.pem'))
def ledger_key() -> None:
    """Print the public key of the ledger's signing key (LARETURNS_LEDGER_KEY): give it to the auditor."""
    from pipelines.store.keys import MissingKey, ledger_public_key_pem

    try:
        print(ledger_public_key_pem(), end="")
    except MissingKey as error:
        raise fail(str(error)) from None


@app.command(epilog=examples('lareturns retention --input in --out runs/2026-spring --dry-run'))
def retention(
    input: Annotated[Path, typer.Option("--input", help="The landing folder of MIS exports.")],
    out: Annotated[Path, typer.Option(help=f"A run's output folder (its {LAYOUT.warehouse} and {LAYOUT.ledger}).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete and record nothing.")] = False,
    today: Annotated[str | None, typer.Option(help="Purge as of this day, YYYY-MM-DD (default: today in England); a later day only with --dry-run.")] = None,
    policy: Annotated[Path | None, typer.Option(help="Retention policy TOML (default: schemas/policies/retention.toml).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="The column-mapping TOML the exports are validated with, if any.")] = None,
) -> None:
    """Delete records past their retention period from the warehouse and the landing folder; counts in the ledger."""
    from pipelines.governance.purge import purge
    from pipelines.governance.retention import parse_day
    from pipelines.store.commit import RunFolderBusy
    from pipelines.store.exports import FileProblem
    from pipelines.store.keys import MissingKey
    from pipelines.store.warehouse import WarehouseBusy
    from schemas.calendar import england_day
    from schemas.specs.mapping import MappingError
    from schemas.specs.retention import RetentionError

    try:
        day = parse_day(today) if today else england_day()
        result = purge(input, out, day, dry_run, policy, mapping=mapping)
    except (RetentionError, FileProblem, MappingError, WarehouseBusy, OSError, RunFolderBusy, MissingKey) as error:
        raise fail(str(error)) from None
    for line in result.recovery:
        console.print(f"interrupted runs: {line}")
    table = Table(title=f"Retention purge as of {day.isoformat()}" + (" (dry run: nothing deleted)" if dry_run else ""),
                  caption=f"staging, quarantine, landing, corrections: records {'that would be ' if dry_run else ''}"
                          "deleted (- no landing file); undated: records kept because their date cannot be read, "
                          "quarantined / landing")
    for column in ("dataset", "rule", "staging", "quarantine", "landing", "corrections", "undated"):
        table.add_column(column, justify="left" if column in ("dataset", "rule") else "right")
    for p in result.datasets:
        table.add_row(p.dataset, p.rule, f"{p.staging:,}", f"{p.quarantine:,}", "-" if p.landing is None else f"{p.landing:,}",
                      f"{p.rectifications:,}", f"{p.undated_quarantine:,} / {p.undated_landing:,}")
    console.print(table)
    if result.ledger_entry is None:
        console.print("dry run: nothing was deleted and no ledger entry was written")
        return
    console.print(f"ledger entry {result.ledger_entry['seq']} ({result.ledger_entry['kind']}) appended to "
                  f"{RunPaths(out).ledger} and the warehouse; policy {result.policy}")
    if result.compacted:
        console.print("warehouse compacted: deleted rows are no longer in the file")


@app.command(epilog=examples('lareturns sar --out runs/2026-spring --report sar-request-17 --upn UPN'))
def sar(
    out: Annotated[Path, typer.Option(help="A run's output folder (the --out of lareturns run).")],
    report: Annotated[Path, typer.Option(help=f"Folder for the report (HTML and JSON); not inside {LAYOUT.deliveries}/ or {LAYOUT.report}/.")],
    upn: Annotated[str | None, typer.Option(help="The person's UPN (or former UPN).")] = None,
    surname: Annotated[str | None, typer.Option(help="The person's surname (any case), with --dob.")] = None,
    dob: Annotated[str | None, typer.Option(help="The person's date of birth, YYYY-MM-DD, with --surname.")] = None,
) -> None:
    """Subject access: everything held about a person and what was sent about them, to whom and when."""
    from outputs.sar_report import write_sar
    from pipelines.governance.sar import SarError, check_report_folder, gather, search
    from pipelines.store.warehouse import WarehouseBusy

    if not RunPaths(out).warehouse.exists():
        raise fail(f"{out}: no run here (no {LAYOUT.warehouse})")
    try:
        wanted = search(upn, surname, dob)
        check_report_folder(out, report)
        document = gather(out, wanted)
        written = write_sar(report, document)
    except (SarError, WarehouseBusy, ValueError, OSError) as error:  # messages name files and options, never the person
        raise fail(str(error)) from None
    s = document["summary"]  # counts only: the person's details stay in the report
    console.print(f"subject access {document['reference']}: {s['records']:,} records in {len(s['datasets'])} dataset(s), "
                  f"{s['quarantined_rows']:,} quarantined row(s), {s['rectifications']:,} correction(s), "
                  f"{s['delivered_records']:,} delivered record(s) to {len(s['recipients'])} recipient(s), "
                  f"counted in {s['aggregate_outputs']:,} statistical output(s)")
    if s["not_checked"]:
        console.print(f"not checked: {s['not_checked']} delivered file(s) (see the report for why)")
    console.print(f"report (holds personal data): {written[0]} and {written[1]}")


@app.command(epilog=examples('lareturns rectify corrections.csv --out runs/2026-spring'))
def rectify(
    out: Annotated[Path, typer.Option(help="A run's output folder (the --out of lareturns run).")],
    corrections: Annotated[Path, typer.Argument(metavar="<corrections.csv>", help="CSV: dataset, key_column, key_value, column, new_value, reason; one change per row.")],
) -> None:
    """Rectification: apply a corrections file to staging (all or nothing), record each change, re-applied on every run."""
    from pipelines.governance.rectify import RectificationError
    from pipelines.governance.rectify import rectify as apply_file
    from pipelines.store.keys import MissingKey
    from pipelines.store.warehouse import WarehouseBusy

    paths = RunPaths(out)
    if not paths.warehouse.exists():
        raise fail(f"{out}: no run here (no {LAYOUT.warehouse})")
    try:
        batch = apply_file(paths.warehouse, corrections, paths.ledger)
    except (RectificationError, WarehouseBusy, ValueError, MissingKey) as error:  # names the file, row and rule, never a value
        raise fail(str(error)) from None
    changes = ", ".join(f"{dataset}.{column} ({n})" for (dataset, column), n in sorted(batch.counts().items()))
    console.print(f"applied {len(batch.rectifications)} correction(s): {changes}; recorded in audit.rectifications and "
                  f"ledger entry {batch.ledger_entry}. Every later run re-applies them to the reloaded staging.")
