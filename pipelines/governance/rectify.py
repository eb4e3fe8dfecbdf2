"""Rectification (UK GDPR article 16): an analyst's corrections applied to staging, each one recorded.

Staging is rebuilt from the MIS exports on every run, so a correction made only there would vanish at the next
run and the next extract would send the wrong value again. Every accepted correction is therefore kept in
audit.rectifications (with the value it replaced and the reason), and reapply_rectifications() plays them back
onto freshly loaded staging. A correction is checked as the row it produces would be checked at load: the same
contract, the same normalising and parsing, the same rules, so a correction can never stage a row that
validation would have quarantined. A file is applied whole or not at all, and every batch gets a ledger entry
that holds counts and dataset and column names, never a value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from outputs.files import read_csv_text
from pipelines.nodes.validation import SOURCE_ROW, validate_frame
from pipelines.store import ledger
from pipelines.store.keys import ledger_signing_key
from pipelines.store.warehouse import (loaded_term, next_rectification_id, open_warehouse, record_rectification,
                                       recorded_corrections, set_staged_value, staged_rows, staged_rows_with,
                                       staged_tables, transaction)
from schemas.contract import Column, Contract, ContractError, contract_names, load_contract
from schemas.rules import Period, normalised, typed

CORRECTION_COLUMNS = ("dataset", "key_column", "key_value", "column", "new_value", "reason")
BOOKKEEPING = ("run_id", SOURCE_ROW)  # where a row came from, not data about a person: never corrected or keyed on


class RectificationError(ValueError):
    """A corrections file that cannot be applied; str() is one line naming the file, the row and the rule."""


class _Refused(Exception):
    def __init__(self, rule: str, message: str):
        super().__init__(f"{rule}: {message}")


@dataclass(frozen=True)
class Correction:
    row: int  # 1-based data row of the corrections file (header not counted), as source_row counts export rows
    dataset: str
    key_column: str
    key_value: str
    column: str
    new_value: str | None  # None: clear the value
    reason: str


@dataclass(frozen=True)
class Rectification:
    """One accepted correction as recorded in audit.rectifications (values as text, as staging would show them)."""

    id: int
    dataset: str
    key_column: str
    key_value: str
    column: str
    old_value: str | None
    new_value: str | None


@dataclass(frozen=True)
class Batch:
    rectifications: list[Rectification]
    ledger_entry: int

    def counts(self) -> dict[tuple[str, str], int]:
        """(dataset, column) -> corrections: what an operator or the ledger may be told, without values."""
        out: dict[tuple[str, str], int] = {}
        for r in self.rectifications:
            out[(r.dataset, r.column)] = out.get((r.dataset, r.column), 0) + 1
        return out


def corrections(path: Path) -> list[Correction]:
    """The corrections file, checked for shape once: every column named, no unknown ones, at least one row."""
    frame = read_csv_text(path) if path.is_file() else None
    if frame is None:
        raise RectificationError(f"{path}: no such file")
    missing = [c for c in CORRECTION_COLUMNS if c not in frame.columns]
    unknown = [c for c in frame.columns if c not in CORRECTION_COLUMNS]
    if missing or unknown:
        problem = f"missing column {missing[0]!r}" if missing else f"unknown column {unknown[0]!r}"
        raise RectificationError(f"{path.name}: header: RECT-HEADER: {problem} (expected {', '.join(CORRECTION_COLUMNS)})")
    if frame.height == 0:
        raise RectificationError(f"{path.name}: no corrections in the file")
    stripped = frame.select(pl.col(c).str.strip_chars().replace("", None) for c in CORRECTION_COLUMNS)
    return [Correction(i, r["dataset"] or "", r["key_column"] or "", r["key_value"] or "", r["column"] or "",
                       r["new_value"], r["reason"] or "")
            for i, r in enumerate(stripped.iter_rows(named=True), start=1)]


def as_text(column: Column) -> pl.Expr:
    """A staged (typed) column back as export text: ISO dates, Y/N flags, numbers and text as they are."""
    value = pl.col(column.name)
    if column.type == "date":
        value = value.dt.strftime("%Y-%m-%d")
    elif column.type == "flag":
        value = pl.when(value).then(pl.lit("Y")).when(~value).then(pl.lit("N"))
    return value.cast(pl.String).alias(column.name)


def staged_text(contract: Contract) -> list[pl.Expr]:
    """A staged row as the export's text, so it can be validated again exactly as it was at load."""
    return [pl.col(SOURCE_ROW), *(as_text(c) for c in contract.columns)]


def canonical_text(column: Column, raw: str | None) -> str | None:
    """The text a raw value stages as (trimmed, upper-cased codes, ISO dates, Y/N flags); None when it is empty
    or does not parse as the column's type. Stored text is canonical so that replaying it needs no period."""
    if raw is None:
        return None
    frame = pl.DataFrame({column.name: [raw]}, schema={column.name: pl.String}).with_columns(normalised(column))
    parsed = typed(column)
    if column.type == "flag":
        frame = frame.with_columns(pl.col(column.name).replace_strict({"Y": True, "N": False}, default=None))
    elif parsed is not None:
        frame = frame.with_columns(parsed.alias(column.name))
    return frame.select(as_text(column)).item()


def typed_value(column: Column, text: str | None):
    """The Python value to store in staging for canonical text (dates, numbers and flags typed)."""
    if text is None:
        return None
    if column.type == "date":
        return dt.date.fromisoformat(text)
    if column.type == "int":
        return int(text)
    if column.type == "decimal":
        return float(text)
    if column.type == "flag":
        return text == "Y"
    return text


def rows_with_key(connection: duckdb.DuckDBPyConnection, contract: Contract, key_column: str, key_text: str) -> list[int]:
    """source_row of every staged row whose key equals the key (compared typed: a date as a date), two at most."""
    return staged_rows_with(connection, contract.dataset, {key_column: typed_value(contract.column(key_column), key_text)},
                            limit=2)


def loaded_period(connection: duckdb.DuckDBPyConnection, dataset: str) -> Period:
    """The term the staged rows were validated for: a correction is checked by the same rules."""
    term = loaded_term(connection, dataset)
    if term is None:
        raise _Refused("RECT-DATASET", f"no run has loaded {dataset!r} into this warehouse")
    return Period(term)


def peers(connection: duckdb.DuckDBPyConnection, contract: Contract, candidate: pl.DataFrame, column: str) -> pl.DataFrame:
    """Other staged rows that share a key rule's values with the corrected row: the key rules (one UPN per pupil)
    compare rows, so the corrected row is validated together with the rows it could now duplicate."""
    target = candidate[SOURCE_ROW][0]
    parts = []
    for rule in contract.rules:
        if rule.check != "unique" or column not in (*rule.params["columns"], rule.params.get("pair_column")):
            continue
        keys = rule.params["columns"]
        typed_keys = {k: typed_value(contract.column(k), canonical_text(contract.column(k), candidate[k][0])) for k in keys}
        if any(v is None for v in typed_keys.values()):
            continue
        parts.append(staged_rows(connection, contract.dataset, typed_keys, other_than=target).select(staged_text(contract)))
    return pl.concat(parts).unique(SOURCE_ROW, maintain_order=True) if parts else candidate.clear()


PERSON_KEYS = ("upn", "uln", "child_id", "person_id")  # identify one person for good, unlike a name or a date


def checked(connection: duckdb.DuckDBPyConnection, correction: Correction, tables: set[str]) -> tuple[Contract, int, str | None, str | None]:
    """(contract, source_row, old text, new text) for a correction that passes every check; _Refused names the
    rule that it fails. Messages name columns and rules, never the key or the value."""
    try:
        contract = load_contract(correction.dataset)
    except ContractError:
        raise _Refused("RECT-DATASET", f"dataset is not one of {', '.join(contract_names())}") from None
    if correction.dataset not in tables:
        raise _Refused("RECT-DATASET", f"{correction.dataset!r} is not staged in this warehouse")
    for role, name in (("key_column", correction.key_column), ("column", correction.column)):
        if name in BOOKKEEPING:
            raise _Refused("RECT-COLUMN", f"{role} names run bookkeeping, not data: it cannot be corrected or keyed on")
        if name not in contract.column_names:
            raise _Refused("RECT-COLUMN", f"{role} is not a column of {correction.dataset!r}")  # never echo what was typed
    if correction.key_column not in PERSON_KEYS:
        raise _Refused("RECT-KEY", f"key_column must be a person's reference number ({', '.join(PERSON_KEYS)}): a name "
                                   "or date could name someone else on a later run")
    if not correction.reason:
        raise _Refused("RECT-REASON", "every correction needs a reason (it is kept with the change)")
    key_text = canonical_text(contract.column(correction.key_column), correction.key_value)
    if key_text is None:
        raise _Refused("RECT-KEY", f"key_value is empty or not a valid {contract.column(correction.key_column).type}")
    matches = rows_with_key(connection, contract, correction.key_column, key_text)
    if len(matches) != 1:
        how = "no staged row has" if not matches else "more than one staged row has"
        raise _Refused("RECT-KEY", f"{how} this {correction.key_column} in {correction.dataset!r}; the key must name exactly one row")
    period = loaded_period(connection, correction.dataset)
    current = staged_rows(connection, contract.dataset, {SOURCE_ROW: matches[0]}).select(staged_text(contract))
    candidate = current.with_columns(pl.lit(correction.new_value, dtype=pl.String).alias(correction.column))
    validated = validate_frame(pl.concat([candidate, peers(connection, contract, candidate, correction.column)]), contract, period)
    refused = validated.quarantine.filter(pl.col(SOURCE_ROW) == matches[0])
    if refused.height == 0:
        refused = validated.quarantine  # a peer now duplicates the corrected row's key
    if refused.height:
        raise _Refused(refused["rule_ids"][0], f"the corrected row would be quarantined: {refused['messages'][0]}")
    staged = validated.staged.filter(pl.col(SOURCE_ROW) == matches[0]).select(staged_text(contract))
    old, new = current[correction.column][0], staged[correction.column][0]
    if old == new:
        raise _Refused("RECT-UNCHANGED", f"{correction.column} already has that value (was this file applied before?)")
    return contract, matches[0], old, new


def set_value(connection: duckdb.DuckDBPyConnection, contract: Contract, source_row: int, column: str, text: str | None) -> None:
    set_staged_value(connection, contract.dataset, source_row, column, typed_value(contract.column(column), text))


def apply_corrections(connection: duckdb.DuckDBPyConnection, items: list[Correction], where: str, jsonl: Path) -> Batch:
    """Check and apply every correction in one transaction, record each, and chain a ledger entry; on any
    refusal roll everything back. Each row is checked against staging as the rows before it left it, so a file
    may correct a key and then use the corrected key."""
    tables = staged_tables(connection)
    applied, problems = [], []
    with transaction(connection):
        for item in items:
            try:
                contract, source_row, old, new = checked(connection, item, tables)
            except _Refused as refusal:
                problems.append(f"row {item.row}: {refusal}")
                continue
            key_text = canonical_text(contract.column(item.key_column), item.key_value)
            set_value(connection, contract, source_row, item.column, new)
            record = Rectification(next_rectification_id(connection), item.dataset, item.key_column, key_text,
                                   item.column, old, new)
            record_rectification(connection, record.id, dt.datetime.now(dt.UTC).replace(tzinfo=None), record.dataset,
                                 record.key_column, record.key_value, record.column, old, new, item.reason)
            applied.append(record)
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise RectificationError(f"{where}: {problems[0]}{more}; nothing was applied")
        batch = Batch(applied, 0)
        entry = ledger.append(connection, jsonl, "rectification", ledger_body(batch), to_file=False)
    ledger.completed_file_copy(connection, jsonl)
    return Batch(applied, entry["seq"])


def ledger_body(batch: Batch) -> dict:
    """Counts and names for the ledger: which datasets and columns changed and how often, never a value."""
    ids = [r.id for r in batch.rectifications]
    return {"corrections": len(ids), "first_id": min(ids), "last_id": max(ids),
            "changes": [{"dataset": d, "column": c, "count": n} for (d, c), n in sorted(batch.counts().items())]}


def rectify(warehouse: Path, corrections_csv: Path, jsonl: Path) -> Batch:
    """Apply a corrections file to a run's warehouse (the edge: reads the file, opens the warehouse)."""
    items = corrections(corrections_csv)
    ledger_signing_key()  # corrections that could not be signed for are not applied
    with open_warehouse(warehouse) as connection:
        return apply_corrections(connection, items, corrections_csv.name, jsonl)


def reapply_rectifications(connection: duckdb.DuckDBPyConnection) -> int:
    """Replay every recorded correction, oldest first, onto staging as just reloaded from the exports; returns how
    many changed a row. Runs in its own transaction, so call it outside one (after the load has committed).

    Each is checked again exactly as when it was accepted, against this load's rows and academic year, and
    skipped (not an error: the run must go on) when it no longer fits: the key no longer names exactly one row
    (the person has left), the export no longer holds the value the correction replaced (fixed at source, or
    changed since: the newer value wins), or the row it would make breaks a rule (a code retired this year, a UPN now used by another pupil). Staging never gets a row that
    validation would have quarantined."""
    recorded = recorded_corrections(connection)
    tables, applied = staged_tables(connection), 0
    with transaction(connection):
        for *row, replaced in recorded:
            try:
                contract, source_row, current, new = checked(connection, Correction(*row), tables)
            except _Refused:
                continue
            if current != replaced:  # the MIS now holds something else: a newer fix at source wins
                continue
            set_value(connection, contract, source_row, row[4], new)
            applied += 1
    return applied
