"""The retention purge's I/O: read the policy, find expired records in the warehouse and the landing folder, delete
them, record the purge in the ledger, and compact the warehouse so deleted rows leave the file.

Which record has expired is decided in pipelines/governance/retention.py (pure); this module only reads, deletes and writes.

Order is the guarantee. Everything is read and decided first, and the rewritten landing files are written beside
the originals before anything is deleted, so a failure up to that point changes nothing. The warehouse deletes and
the ledger entry are one transaction; the landing files replace the originals only after it commits, and a landing
file that changed since it was read (a new export landed meanwhile) stops the purge before the commit. A dry run
reads and counts the same way and then rolls back: it deletes nothing, rewrites nothing and writes no ledger entry.

DuckDB's DELETE only marks rows as deleted: their bytes stay in the file, readable by anyone with the file and a hex
editor, until the blocks are reused. So after a purge that deleted warehouse rows, the warehouse is copied into a
fresh file (DuckDB's COPY FROM DATABASE, which copies live rows only) that then replaces it.

The ledger entry is written to the warehouse inside the transaction and to ledger.jsonl just before the commit: if
the commit itself failed, ledger.jsonl would hold an entry the warehouse lacks, which `lareturns audit` reports as
the two copies disagreeing.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import polars as pl

from outputs.files import fault_point, file_sha256, put_in_place, replacements, target_of
from pipelines.governance.retention import CsvRecords, DatasetPurge, csv_records, expired, purge_body, undated
from pipelines.store.commit import half_written, leftovers, newest_entries, recovered, removed, run_folder_lock
from pipelines.store.exports import BOM, export_path
from pipelines.store.keys import ledger_signing_key
from pipelines.store.ledger import append, completed_file_copy
from pipelines.store.warehouse import (compact_warehouse, delete_rows, open_warehouse, quarantined_row_keys,
                                       rectification_keys, staged_row_keys, staged_values_of, table_exists, transaction)
from schemas import catalog
from schemas.calendar import england_day
from schemas.catalog import RunPaths, ValidationPaths
from schemas.config import load_mapping, load_retention_policy
from schemas.contract import load_contract
from schemas.specs.mapping import SourceSpec
from schemas.specs.retention import RetentionError, RetentionPolicy, Rule

LEDGER_KIND = "retention"
DECODINGS = {"utf-8": ("utf-8",), "utf-8-sig": ("utf-8",), "cp1252": ("cp1252",)}  # else auto: UTF-8, then cp1252


def check_day(today: dt.date, dry_run: bool, actual: dt.date) -> None:
    """A real purge as of a later day would delete records still inside their retention period, which cannot be
    undone; an earlier day only deletes less. Only a dry run may look ahead."""
    if not dry_run and today > actual:
        raise RetentionError(f"--today {today.isoformat()} is later than today ({actual.isoformat()}): only a dry "
                             "run (--dry-run) may look ahead")


@dataclass(frozen=True)
class LandingPlan:
    """One landing file: how many records expire and are undated, and the file's bytes without the expired ones."""

    path: Path
    deleted: int
    undated: int
    content: bytes | None  # None: nothing to delete, the file is left untouched
    sha256: str = ""  # of the file as read, to refuse replacing a file that changed meanwhile (a new export)


def _decoded(path: Path, data: bytes, spec: SourceSpec) -> tuple[str, str, bytes]:
    """(text, encoding, BOM) as ingest reads the file (UTF-8, UTF-8 with BOM, else Windows-1252), so the rewrite
    can be encoded back exactly as it came."""
    bom = BOM if data.startswith(BOM) else b""
    body = data[len(bom):]
    for encoding in DECODINGS.get(spec.encoding, ("utf-8", "cp1252")):
        try:
            return body.decode(encoding), encoding, bom
        except UnicodeDecodeError:
            continue
    raise RetentionError(f"{path.name}: not readable as UTF-8 or Windows-1252; nothing was deleted")


def landing_plan(folder: Path, spec: SourceSpec, rule: Rule, today: dt.date) -> LandingPlan | None:
    """The landing file's expired records; None when the dataset has no landing file."""
    path = export_path(folder, spec.file)
    if not path.is_file():
        return None
    if not rule.applies:
        return LandingPlan(path, 0, 0, None)
    if path.suffix.lower() != ".csv":
        raise RetentionError(f"{path.name}: only CSV landing files can be purged; nothing was deleted")
    data = path.read_bytes()
    text, encoding, bom = _decoded(path, data, spec)
    try:
        records: CsvRecords = csv_records(text, spec.delimiter)
    except csv.Error as error:
        raise RetentionError(f"{path.name}: not a well-formed CSV ({error}); nothing was deleted") from None
    header = {contract: export for export, contract in spec.columns.items()}.get(rule.date_column, rule.date_column)
    dates = records.column(header.strip().lower())
    if dates is None:  # the records would come back at the next validation: refuse rather than skip
        raise RetentionError(f"{path.name}: no {header!r} column to date its records by; give the mapping the "
                             "exports were validated with (--mapping); nothing was deleted")
    frame = dates.to_frame(rule.date_column)
    drop, unreadable = expired(frame, rule, today), undated(frame, rule)
    deleted = int(drop.sum())
    content = bom + records.without(drop).encode(encoding) if deleted else None
    return LandingPlan(path, deleted, int(unreadable.sum()), content, hashlib.sha256(data).hexdigest())


def quarantine_report_plans(paths: RunPaths, rules, today: dt.date) -> list[LandingPlan]:
    """The analysts' quarantine files (01_validated/quarantine/<dataset>.csv) hold the rejected rows' raw fields, so
    expired rows leave them too; they are CSVs with the export's columns, purged like a landing file."""
    quarantine = ValidationPaths(paths.validated)
    plans = (landing_plan(quarantine.quarantine, SourceSpec(rule.dataset, quarantine.quarantine_file(rule.dataset).name),
                          rule, today) for rule in rules)
    return [plan for plan in plans if plan is not None]


def check_unchanged(plans: list[LandingPlan]) -> None:
    """A landing file replaced by a new export while the purge ran must not be overwritten with the old one."""
    changed = [p.path.name for p in plans if file_sha256(p.path) != p.sha256]
    if changed:
        raise RetentionError(f"{changed[0]}: changed while the purge ran (a new export?); nothing was deleted, run it again")


def staged_rows(connection: duckdb.DuckDBPyConnection, rule: Rule) -> pl.DataFrame:
    """row_key (DuckDB's rowid) and the typed date column of the dataset's staged rows."""
    if not rule.applies or not table_exists(connection, "staging", rule.dataset):
        return pl.DataFrame(schema={"row_key": pl.Int64, rule.date_column or "date": pl.Date})
    return staged_row_keys(connection, rule.dataset, rule.date_column)


def quarantined_rows(connection: duckdb.DuckDBPyConnection, rule: Rule) -> pl.DataFrame:
    """row_key and the date text as it came from the export, for the dataset's quarantined rows of every run."""
    if not rule.applies:
        return pl.DataFrame(schema={"row_key": pl.Int64, "date": pl.String})
    return quarantined_row_keys(connection, rule.dataset, rule.date_column)


@dataclass(frozen=True)
class WarehouseExpiry:
    """One dataset's expired rows in the warehouse, by rowid (valid within the transaction that found them)."""

    dataset: str
    staged: pl.Series
    quarantined: pl.Series
    undated_quarantined: int
    rectifications: pl.Series


def rectifications_of(connection: duckdb.DuckDBPyConnection, dataset: str, staged: pl.Series) -> pl.Series:
    """row_key of each recorded correction to one of the expired staged rows: a correction holds the record's
    key and its old and new values, so it goes when the record goes. A correction that changed the key itself
    is found by the key it gave the row."""
    empty = pl.Series("row_key", [], dtype=pl.Int64)
    if staged.is_empty() or not table_exists(connection, "audit", "rectifications"):
        return empty
    columns = set(load_contract(dataset).column_names)
    corrections = rectification_keys(connection, dataset)
    found = []
    for column in (c for c in corrections["key_column"].unique().to_list() if c in columns):  # never SQL from data
        keys = staged_values_of(connection, dataset, column, staged).implode()
        mine = (pl.col("key_column") == column) & (pl.col("key_value").is_in(keys)
                                                   | ((pl.col("column") == column) & pl.col("new_value").is_in(keys)))
        found.append(corrections.filter(mine)["row_key"])
    return pl.concat(found) if found else empty


def warehouse_expiry(connection: duckdb.DuckDBPyConnection, rule: Rule, today: dt.date) -> WarehouseExpiry:
    staged, quarantined = staged_rows(connection, rule), quarantined_rows(connection, rule)
    expired_staged = staged.filter(expired(staged, rule, today))["row_key"]
    return WarehouseExpiry(rule.dataset, expired_staged, quarantined.filter(expired(quarantined, rule, today))["row_key"],
                           int(undated(quarantined, rule).sum()), rectifications_of(connection, rule.dataset, expired_staged))


def dataset_purge(rule: Rule, found: WarehouseExpiry, plan: LandingPlan | None) -> DatasetPurge:
    return DatasetPurge(rule.dataset, rule.describe(), found.staged.len(), found.quarantined.len(),
                        None if plan is None else plan.deleted, found.undated_quarantined,
                        0 if plan is None else plan.undated, found.rectifications.len())


def deleted(connection: duckdb.DuckDBPyConnection, schema: str, table: str, keys: pl.Series) -> None:
    """Rows deleted by rowid inside the purge's transaction; a count that differs rolls the purge back."""
    count = delete_rows(connection, schema, table, keys)
    if count != keys.len():
        raise RetentionError(f"{schema}.{table}: {keys.len()} expired rows found but {count} deleted; nothing was deleted")


@dataclass(frozen=True)
class PurgeResult:
    today: dt.date
    dry_run: bool
    policy: Path
    datasets: list[DatasetPurge]
    ledger_entry: dict | None  # None for a dry run
    compacted: bool
    recovery: list[str] = field(default_factory=list)  # what interrupted runs left, removed (a dry run: found)


def purge(input_dir: Path, out: Path, today: dt.date, dry_run: bool = False, policy_path: Path | None = None,
          actual_today: dt.date | None = None, mapping: Path | None = None) -> PurgeResult:
    """Delete (dry_run: count) the records expired on `today` from the run's warehouse and the landing folder."""
    policy_path = policy_path or catalog.RETENTION
    policy = load_retention_policy(policy_path)
    check_day(today, dry_run, actual_today or england_day())
    paths = RunPaths(Path(out))
    if paths.earlier_layout():
        raise RetentionError(f"{out}: a run folder of lareturns' earlier layout (it has "
                             f"{', '.join(n + '/' for n in paths.earlier_layout())}); purge it with the version that "
                             "wrote it, or move its records into a new run")
    if not paths.warehouse.is_file():
        raise RetentionError(f"{out}: no warehouse here ({paths.warehouse.relative_to(paths.root)}); give the output "
                             "folder of a validation or a return")
    if not Path(input_dir).is_dir():
        raise RetentionError(f"{input_dir}: not a folder (the landing folder of MIS exports)")
    specs = load_mapping(mapping)  # the same file names and headers validation read the exports with
    if not dry_run:
        ledger_signing_key()  # a purge that could not sign its ledger entry deletes nothing
    with run_folder_lock(paths):
        if dry_run:
            recovery = ([f"found: {line}" for line in leftovers(paths).lines(paths.root)]
                        + [f"found: left by an interrupted run: {p.name} (in the landing folder)"
                           for p in half_written(Path(input_dir))])
        else:
            recovery = finished_rewrites(Path(input_dir), paths)
            recovery += recovered(paths) + removed(Path(input_dir), half_written(Path(input_dir)))
        landing = {rule.dataset: landing_plan(Path(input_dir), specs[rule.dataset], rule, today) for rule in policy.rules}
        return replace(purged(paths, policy, policy_path, landing, today, dry_run), recovery=recovery)


def finished_rewrites(input_dir: Path, paths: RunPaths) -> list[str]:
    """A purge that committed but died before putting its rewritten files in place: each half-written file whose
    content is what the last purge's ledger entry records for its target is moved into place (the records it
    deleted would otherwise stay in the landing folder while the ledger says they went)."""
    purges = [e for e in newest_entries(paths) if e.get("kind") == LEDGER_KIND]
    recorded = purges[-1].get("body", {}).get("landing_sha256", {}) if purges else {}
    said = []
    for partial in half_written(input_dir) + half_written(paths.root, recursive=True):
        target = target_of(partial)
        key = target.name if partial.parent == input_dir else target.relative_to(paths.root).as_posix()
        if key in recorded and file_sha256(partial) == recorded[key] and not (
                target.is_file() and file_sha256(target) == recorded[key]):
            put_in_place(partial, target)
            said.append(f"put in place the rewrite of {key} that an interrupted purge recorded")
    return said


def purged(paths: RunPaths, policy: RetentionPolicy, policy_path: Path, landing: dict, today: dt.date,
           dry_run: bool) -> PurgeResult:
    rewrites = [plan for plan in landing.values() if plan is not None and plan.content is not None]
    reports = [plan for plan in quarantine_report_plans(paths, policy.rules, today) if plan.content is not None]
    with open_warehouse(paths.warehouse) as connection, \
            replacements({} if dry_run else {p.path: p.content for p in rewrites + reports}) as replace_landing:
        with transaction(connection):
            found = [warehouse_expiry(connection, rule, today) for rule in policy.rules]
            purges = [dataset_purge(rule, f, landing[rule.dataset]) for rule, f in zip(policy.rules, found, strict=True)]
            if dry_run:
                return PurgeResult(today, True, policy_path, purges, None, False)  # the transaction wrote nothing
            for f in found:
                deleted(connection, "audit", "rectifications", f.rectifications)  # before the rows they point at
                deleted(connection, "staging", f.dataset, f.staged)
                deleted(connection, "audit", "quarantine", f.quarantined)
            check_unchanged(rewrites + reports)
            body = purge_body(today, f"{policy_path.parent.name}/{policy_path.name}", file_sha256(policy_path),
                              policy.version, purges,
                              {p.path.name: hashlib.sha256(p.content).hexdigest() for p in rewrites}
                              | {p.path.relative_to(paths.root).as_posix(): hashlib.sha256(p.content).hexdigest()
                                 for p in reports})
            entry = append(connection, paths.ledger, LEDGER_KIND, body, to_file=False)
        completed_file_copy(connection, paths.ledger)
        fault_point("purge-committed")
        replace_landing()
    compact_warehouse(paths.warehouse)  # every real purge, so one that failed to compact is made good by the next
    return PurgeResult(today, False, policy_path, purges, entry, True)

