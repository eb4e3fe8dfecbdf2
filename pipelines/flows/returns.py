"""Prefect flows: thin wiring of the pure nodes, the disclosure-control library, the stores and the writers.

A return (school statistics, early years, destinations, health) is the publications and extracts whose specs
name it (schemas/publications/, schemas/extracts/). Each return has its own flow; census_return runs them all
on one validation of the exports. Either way the run ends the same: every recipient's folder is leak-scanned,
gets its manifest, and the auditor report is written.

Tasks pass data by reference (the warehouse, decision-record files, delivery folders), never as frames, so a
regional deployment can run them on Dask workers over a shared file system. Task caching is off: hashing frames
for the cache costs seconds and a return must be recomputed from its inputs anyway.

Deliveries and the auditor report are written into a staging folder and moved into place only when every task
has passed, the leak scan included: a run that fails leaves no delivery. The move and the ledger commit together,
and a run recovers whatever an interrupted one left before it starts (pipelines/store/commit.py).
"""

from __future__ import annotations

import datetime as dt
import inspect
from importlib.metadata import version
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from disclosure_control.policy import PolicyError
from disclosure_control.protect import ProtectionError
from outputs.ees import write_publication
from outputs.workbook import write_workbook
from outputs.files import (copy_atomic, fault_point, read_json, restrict_new_files, write_bytes_atomic,
                           write_csv_atomic, write_parquet_atomic)
from outputs.manifest import write_manifests
from outputs.report import run_result, write_report
from outputs.story import (check_rows, counted, ledger_before_row, ledger_row, publication_rows, story_tables,
                           verdict_markdown)
from pipelines.assurance.dfe_returns import ReturnRejected, checked_return
from pipelines.assurance.docs_assets import AssetsMissing
from pipelines.assurance.leakscan import leaks_by_recipient
from pipelines.assurance.verify import release_attack
from pipelines.flows.prefect_api import ApiUnavailable, logged_progress, without_tracebacks
from pipelines.flows.validate import new_run_id, run_validation
from pipelines.governance.rectify import RectificationError, reapply_rectifications
from pipelines.nodes.dfe_xml import LayoutError, return_document
from pipelines.nodes.ees import area_names, district_geography, ees_tables
from pipelines.nodes.extract import extract_made, extract_rows
from pipelines.nodes.protection import ProtectedRelease, protected_release
from pipelines.nodes.publication import share_percents
from pipelines.nodes.release import ReleaseError, build_release
from pipelines.store.commit import (RunFolderBusy, record_delivery, record_run, recovered, run_folder_lock, run_record,
                                    run_started, staged_delivery)
from pipelines.store.history import HistoryError, archive_counts, earlier_run, keep_counts, known_files
from pipelines.store.ledger import ledger_problems
from pipelines.store.keys import MissingKey, ledger_signing_key, pseudonymisation_key
from pipelines.store.exports import FileProblem
from pipelines.store.warehouse import ReconciliationError, WarehouseBusy, open_warehouse, staged_frames
from schemas.calendar import Term, current_term, england_time
from schemas.catalog import RETURN_NAMES, RunPaths, ValidationPaths, ees_files, table_file
from schemas.config import load_access_group, load_run_config
from schemas.contract import ContractError
from schemas.specs.layout import LAYOUTS
from schemas.specs.run import RunConfig

PLACES = ("schools", "postcodes")  # reference datasets that place a unit in the area hierarchy


class RunFolderError(ValueError):
    """A run folder this version cannot continue."""


class LeakFound(RuntimeError):
    """An outbound file holds a direct identifier its recipient is not entitled to; nothing was delivered."""


# The errors a run ends with that are written for its user: each names the file, row, rule or setting at fault and
# never a value from a row, so the command (and a national run's report) can show it as it is.
RUN_ERRORS = (FileProblem, PolicyError, WarehouseBusy, ReconciliationError, ProtectionError, LeakFound, MissingKey,
              HistoryError, ReleaseError, RunFolderBusy, RunFolderError, ReturnRejected, ApiUnavailable, AssetsMissing,
              LayoutError, ContractError, RectificationError)


STAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}  # task name -> what it reads, what it writes


def stage(reads: tuple[str, ...], writes: tuple[str, ...], **options):
    """A task declaring, by their names in the run folder's catalog (schemas/catalog.py RunPaths), what it reads
    and what it writes, in STAGES and at the end of the task's description. Not as its tags: Prefect asks
    its API for a concurrency slot for every tag of every task run, a round trip each (about 6 s of a county's
    census). Results are not persisted and never cached: a return is recomputed from its inputs, and hashing
    frames would cost seconds."""
    def declared(fn):
        STAGES[fn.__name__] = (reads, writes)
        description = f"{inspect.getdoc(fn) or fn.__name__}\n\nReads: {', '.join(reads)}. Writes: {', '.join(writes) or 'nothing'}."
        return task(cache_policy=NO_CACHE, persist_result=False, description=description, **options)(fn)
    return declared


@stage(reads=("inputs",), writes=("validated", "warehouse"))
def validate_exports(input_dir: Path, paths: RunPaths, term: Term, run_id: str) -> dict:
    run_validation(input_dir, paths.validated, term, paths.warehouse, run_id=run_id, progress=logged_progress("validation"))
    summary = read_json(ValidationPaths(paths.validated).summary)
    for d in summary["datasets"]:
        get_run_logger().info(f"{d['dataset']} ({d['source_file']}): {d['rows_read']:,} rows read, {d['rows_staged']:,} "
                              f"staged, {d['rows_quarantined']:,} quarantined, {d['rows_with_warnings']:,} with warnings")
    return summary


@stage(reads=("warehouse",), writes=("warehouse",))
def reapply_corrections(paths: RunPaths) -> int:
    """Rectifications recorded earlier, applied again to the staging just reloaded from the exports (which still
    hold the wrong values until the MIS is fixed), so every later extract reflects them."""
    with open_warehouse(paths.warehouse) as connection:
        return reapply_rectifications(connection)


@stage(reads=("warehouse", "ledger", "releases", "kept_counts", "known"), writes=("protected",))
def protect_release(paths: RunPaths, config: RunConfig, returns: tuple[str, ...], term: Term,
                    known_dir: Path | None) -> dict:
    """Every publication of the run protected as one release (with what is already out): the decision records
    per publication and the counts behind them; returns their summaries and the relations used."""
    publications = config.publications_of(returns)
    if not publications:
        return ProtectedRelease({}, [], {}, [], [], []).summary()
    frames = staged_frames(paths.warehouse, (*sorted({p.dataset for p in publications}), *PLACES))
    release = build_release(frames, publications, term, frames["schools"], frames["postcodes"])
    earlier = {problem.names: run for problem in release.problems if (run := earlier_run(paths, problem))}
    la_code = district_geography(frames["schools"])["new_la_code"].unique().to_list()[0]
    protected = protected_release(release, earlier, known_files(known_dir) if known_dir else [], config, la_code, term,
                                  logged_progress("protection"))
    for key, (inner, hierarchies) in protected.counts.items():
        keep_counts(paths.protected, key, inner, hierarchies)
    for name, cells in protected.decisions.items():
        write_parquet_atomic(cells, paths.decisions(name))
    summary = protected.summary()
    for row in publication_rows(summary["protections"]):
        get_run_logger().info(f"{row['publication']} for {row['recipient']}: {row['cells']:,} cells, {row['primary']:,} "
                              f"primary, {row['secondary']:,} secondary, audit {row['audit']}")
    return summary


@stage(reads=("protected", "warehouse"), writes=("deliveries",), task_run_name="publish-{name}")
def publish(paths: RunPaths, config: RunConfig, name: str, staging: Path, term: Term) -> list[Path]:
    """One EES file pair per table (and the same table as Parquet, and the publication as a workbook, for
    analysts, if the recipient takes them)."""
    publication = config.publications[name]
    recipient = config.recipients[publication.recipient]
    cells = pl.read_parquet(paths.decisions(name))
    percents = share_percents(cells, publication, config.policy_of(publication)) if publication.share else None
    places = staged_frames(paths.warehouse, PLACES)
    tables = ees_tables(publication, cells, places, term, percents)
    folder = RunPaths(staging).delivery(recipient.key)
    files = write_publication(folder, tables, recipient.formats)
    if "xlsx" in recipient.formats:
        files.append(table_file(folder, name, ".xlsx"))
        write_workbook(files[-1], publication.title, term.label, [(t.name, t.data, t.meta) for t in tables],
                       config.policy_of(publication).symbols, f"{recipient.name}: produced with lareturns from the "
                       f"council's {publication.dataset} records")
    return files


@stage(reads=("warehouse",), writes=("deliveries",), task_run_name="extract-{name}")
def write_extract(paths: RunPaths, config: RunConfig, name: str, staging: Path, term: Term, started: str) -> dict:
    """The record-level (or summary) extract in the recipient's column order, as CSV or in its DfE XML layout
    (checked against its schema and rules before it is written); returns what was made."""
    extract = config.extracts[name]
    recipient = config.recipients[extract.recipient]
    key = pseudonymisation_key(recipient.entitlement.key_id) if recipient.entitlement.pseudonymise else None
    frame = staged_frames(paths.warehouse, (extract.dataset,))[extract.dataset]
    rows = extract_rows(frame, extract, recipient.entitlement, term, key)
    target = RunPaths(staging).delivered_file(recipient.key, name, extract.suffix)
    queries = {}
    if extract.layout == "csv":
        write_csv_atomic(rows, target)
    else:
        document = return_document(rows, LAYOUTS[extract.layout], staged_frames(paths.warehouse, ("schools", "providers")),
                                   term, england_time(dt.datetime.fromisoformat(started)), version("lareturns"))
        queries = checked_return(target, document, extract.layout)
        write_bytes_atomic(target, document)
    get_run_logger().info(f"{name} for {extract.recipient}: {counted(rows.height, 'row')}, {target.name}")
    return extract_made(extract, rows.height, queries)


@stage(reads=("warehouse", "deliveries"), writes=())
def leak_scan(paths: RunPaths, config: RunConfig, staging: Path) -> int:
    """Every direct identifier staged from the inputs, looked for in every file about to go to any recipient."""
    found = leaks_by_recipient(RunPaths(staging).deliveries, paths.warehouse, config.recipients,  # staging mirrors
                               list(config.extracts.values()))  # the run's layout
    leaks = [leak for recipient_leaks in found.values() for leak in recipient_leaks]
    if leaks:
        raise LeakFound("; ".join(str(leak) for leak in leaks[:5]))
    get_run_logger().info(f"leak scan: no direct identifier a recipient is not entitled to, in the files of "
                          f"{counted(len(found), 'recipient')}")
    return len(found)


def return_outputs(return_name: str, paths: RunPaths, config: RunConfig, staging: Path, term: Term,
                   started: str) -> list[dict]:
    """One return's statistics (protected already, with the whole release) and extracts, written into the staging
    folder; returns the extracts made."""
    for publication in config.publications_of((return_name,)):
        publish(paths, config, publication.name, staging, term)
    return [write_extract(paths, config, e.name, staging, term, started) for e in config.extracts_of(return_name)
            if term.name in e.terms]


@stage(reads=("protected", "deliveries", "ledger", "releases", "kept_counts", "known"), writes=())
def attack_release(paths: RunPaths, config: RunConfig, staging: Path, protections: list[dict],
                   known_dir: Path | None) -> list[dict]:
    """The independent intruder on the release about to be delivered (with the figures already public and the
    earlier release): a protected cell it can narrow below its protection level stops the run."""
    findings = release_attack(paths, RunPaths(staging).deliveries, [config.publications[p["name"]] for p in protections],
                              {p["name"]: p["policy"] for p in protections}, known_dir)
    failed = [f for f in findings if not f.passed]
    if failed:
        raise ProtectionError("; ".join(f"{f.check}: {f.detail}" for f in failed))
    get_run_logger().info(f"release attacks: all {len(findings)} passed" if findings else "release attacks: no statistics to attack")
    return [f.__dict__ for f in findings]


@stage(reads=("deliveries",), writes=("releases",))
def archive_release(staging: Path, run_id: str, protections: list[dict]) -> None:
    """Copies of the published statistics as delivered, kept under the run's id in the history for the next run."""
    for protection in protections:
        source = RunPaths(staging).delivery(protection["recipient"])
        kept = RunPaths(staging).release(run_id) / protection["recipient"]
        for name in protection["files"]:
            for delivered, copy in zip(ees_files(source, name), ees_files(kept, name), strict=True):
                copy_atomic(delivered, copy)


@stage(reads=("deliveries",), writes=("deliveries",))
def manifests(config: RunConfig, staging: Path, run: dict, protections: list[dict]) -> list[dict]:
    listed = write_manifests(RunPaths(staging).deliveries, config, run, protections)
    for d in listed:
        get_run_logger().info(f"{d['recipient']}: {counted(len(d['files']), 'file')} in its manifest")
    return listed


@stage(reads=("ledger",), writes=())
def ledger_before(paths: RunPaths) -> dict:
    """The ledger this run's entry will be chained to, checked as `lareturns audit` checks it."""
    return ledger_before_row(*ledger_problems(paths.ledger))


@stage(reads=("protected", "validated", "warehouse"), writes=("report",))
def auditor_report(paths: RunPaths, config: RunConfig, staging: Path, run: dict, validation: dict, release: dict,
                   attack: list[dict], extracts: list[dict], deliveries: list[dict], checks: list[dict]) -> Path:
    decisions = {p["name"]: pl.read_parquet(paths.decisions(p["name"])) for p in release["protections"]}
    published = [config.publications[p["name"]] for p in release["protections"]]
    headline_files = {p.name: ees_files(RunPaths(staging).delivery(p.recipient), p.tables[0].name) for p in published}
    write_report(RunPaths(staging).report, run, validation, ValidationPaths(paths.validated).data_docs_index.resolve(),
                 release, attack, extracts, deliveries, decisions, config.publications,
                 area_names(staged_frames(paths.warehouse, PLACES)), checks, headline_files)
    return paths.report_files.html.resolve()


@stage(reads=("protected",), writes=("kept_counts",))
def archive_protected(paths: RunPaths, run_id: str, populations: list[str]) -> None:
    archive_counts(paths, run_id, populations)


@stage(reads=("warehouse", "deliveries", "report", "protected"), writes=("warehouse", "ledger"))
def record_in_ledger(paths: RunPaths, config: RunConfig, run: dict, staging: Path) -> dict:
    """The run's ledger entry, written before the delivery moves into place (pipelines/store/commit.py): the inputs'
    hashes, every config file's hash, and the hash of every file about to be delivered."""
    return record_run(paths, run, staging, config.config_hashes)


@stage(reads=("warehouse",), writes=("warehouse", "ledger"))
def record_delivered(paths: RunPaths, entry: dict) -> dict:
    """The entry that closes the run's: its delivery is in place."""
    closing = record_delivery(paths, entry)
    get_run_logger().info(f"ledger: run entry {entry['seq']}, delivered entry {closing['seq']} (SHA-256 {closing['entry_hash']})")
    return closing


def deliver(input_dir: Path, out: Path, period: str, policy_file: Path | None, returns: tuple[str, ...],
            known_dir: Path | None = None) -> dict:
    """Finish what an interrupted run left, validate once, protect the whole release, run the returns, then
    leak-scan, attack, manifest and report every recipient's delivery, and commit it with its ledger entry."""
    term = Term.parse(period)
    paths, run_id = RunPaths(Path(out)), new_run_id()
    restrict_new_files(paths.root, load_access_group())  # a scheduled run starts in a process of its own
    without_tracebacks()
    ledger_signing_key()  # a run that could not sign its ledger entry stops before any work, not after all of it
    config = load_run_config(policy_file)  # every config parsed once, and a broken one refused before any work
    if paths.earlier_layout():
        raise RunFolderError(f"{paths.root}: a run folder of lareturns' earlier layout (it has "
                             f"{', '.join(n + '/' for n in paths.earlier_layout())}); run into a new folder")
    with run_folder_lock(paths):
        return delivered(Path(input_dir), paths, config, run_id, term, returns, known_dir)


def delivered(input_dir: Path, paths: RunPaths, config: RunConfig, run_id: str, term: Term, returns: tuple[str, ...],
              known_dir: Path | None) -> dict:
    started, recovery = run_started(), recovered(paths)
    validation = validate_exports(input_dir, paths, term, run_id)
    run = run_record(run_id, term.label, returns, started, recovery, reapply_corrections(paths))
    release = protect_release(paths, config, returns, term, known_dir)
    with staged_delivery(paths, run_id) as staging:
        extracts = [e for name in returns for e in return_outputs(name, paths, config, staging, term, started)]
        scanned = leak_scan(paths, config, staging)
        attack = attack_release(paths, config, staging, release["protections"], known_dir)
        archive_release(staging, run_id, release["protections"])
        deliveries = manifests(config, staging, run, release["protections"])
        checks = check_rows(validation, release["protections"], attack, scanned, deliveries, ledger_before(paths))
        report = auditor_report(paths, config, staging, run, validation, release, attack, extracts, deliveries, checks)
        archive_protected(paths, run_id, release["populations"])
        fault_point("staged")
        entry = record_in_ledger(paths, config, run, staging)
        fault_point("pending")
    fault_point("moved")
    closing = record_delivered(paths, entry)
    tables = story_tables(validation, release["protections"], deliveries, extracts, [*checks, ledger_row(entry, closing)])
    told_story(returns, run_id, tables, verdict_markdown(run_id, returns, tables, str(report)))
    return run_result(paths, run, report, entry, closing, release["protections"], deliveries, flow_run.id)


def told_story(returns: tuple[str, ...], run_id: str, tables: dict[str, tuple[str, list[dict]]], verdict: str) -> None:
    """The run's tables and verdict as artifacts of its flow run, keyed by the flow (so the UI's Artifacts page
    keeps each return's history) and described with the run id."""
    prefix = (flow_run.flow_name or "lareturns").replace("_", "-")
    for name, (description, rows) in tables.items():
        create_table_artifact(rows, key=f"{prefix}-{name}", description=f"{description} (run {run_id})")
    create_markdown_artifact(verdict, key=f"{prefix}-verdict", description=f"lareturns run {run_id} ({', '.join(returns)})")


def run_period(period: str | None) -> str:
    """The term a run reports on: as given, or (a scheduled run) the term of its scheduled start."""
    return period or current_term(flow_run.scheduled_start_time).label


# One flow per return. Each is a module-level function named as in RETURNS, because a scheduled run imports
# its flow by name in a new process.
@flow(name="census_return")
def census_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                  known_dir: Path | None = None) -> dict:
    """Every return on one validation of the exports: the whole census."""
    return deliver(input_dir, out, run_period(period), policy_file, RETURN_NAMES, known_dir)


@flow(name="school_statistics_return")
def school_statistics_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                             known_dir: Path | None = None) -> dict:
    """Pupils by characteristic, attainment and absence, for publication."""
    return deliver(input_dir, out, run_period(period), policy_file, ("school_statistics",), known_dir)


@flow(name="early_years_return")
def early_years_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                       known_dir: Path | None = None) -> dict:
    """Funding statistics, the termly provider headcount and (in spring) the DfE early years census."""
    return deliver(input_dir, out, run_period(period), policy_file, ("early_years",), known_dir)


@flow(name="destinations_return")
def destinations_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                        known_dir: Path | None = None) -> dict:
    """The NCCIS extract for the DfE and destination statistics."""
    return deliver(input_dir, out, run_period(period), policy_file, ("destinations",), known_dir)


@flow(name="health_return")
def health_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                  known_dir: Path | None = None) -> dict:
    """NCMP prevalence and the pseudonymised NCMP extract for the health body."""
    return deliver(input_dir, out, run_period(period), policy_file, ("health",), known_dir)


@flow(name="youth_support_return")
def youth_support_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                         known_dir: Path | None = None) -> dict:
    """Pupils aged 13 and over for youth support services, within each one's opt-out."""
    return deliver(input_dir, out, run_period(period), policy_file, ("youth_support",), known_dir)


RETURNS = {"census": census_return, "school_statistics": school_statistics_return, "early_years": early_years_return,
           "destinations": destinations_return, "health": health_return, "youth_support": youth_support_return}
