"""The embedded DuckDB warehouse: staged data per dataset, the quarantine, and the runs ledger.

DuckDB allows one writing process per file. A second run waits for the lock up to a limit and then fails with
a clear message; it never opens the file half-way. Each dataset's load is one transaction that re-counts what
it wrote and rolls back unless rows read = rows staged + rows quarantined.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from outputs.files import partial_path, put_in_place
from pipelines.nodes.validation import SOURCE_ROW, Validated
from schemas.calendar import Term
from schemas.contract import Contract

DUCKDB_TYPES = {"date": "DATE", "int": "BIGINT", "decimal": "DOUBLE", "flag": "BOOLEAN"}
SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.runs (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, source_file VARCHAR NOT NULL, file_sha256 VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL, rows_staged BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL,
    rows_with_warnings BIGINT NOT NULL, academic_year INTEGER NOT NULL, loaded_at TIMESTAMP NOT NULL,
    term VARCHAR, PRIMARY KEY (run_id, dataset)
);
-- a warehouse written before the term was recorded: its loads were validated against the spring census day
ALTER TABLE audit.runs ADD COLUMN IF NOT EXISTS term VARCHAR;
CREATE TABLE IF NOT EXISTS audit.quarantine (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
    rule_ids VARCHAR NOT NULL, messages VARCHAR NOT NULL, raw_row JSON NOT NULL
);
CREATE TABLE IF NOT EXISTS audit.rule_counts (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, rule_id VARCHAR NOT NULL, severity VARCHAR, rows BIGINT NOT NULL
);
"""


LEDGER_SQL = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.ledger (seq BIGINT PRIMARY KEY, entry JSON NOT NULL, entry_hash VARCHAR NOT NULL);
"""
RECTIFICATIONS_SQL = """
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.rectifications (
    id BIGINT PRIMARY KEY, applied_at TIMESTAMP NOT NULL, dataset VARCHAR NOT NULL, key_column VARCHAR NOT NULL,
    key_value VARCHAR NOT NULL, "column" VARCHAR NOT NULL, old_value VARCHAR, new_value VARCHAR, reason VARCHAR NOT NULL
);
"""


class WarehouseBusy(Exception):
    """Another run holds the warehouse; str() is the one line an analyst sees."""


class ReconciliationError(Exception):
    """Rows read did not equal rows staged plus rows quarantined: the load was rolled back."""


@dataclass(frozen=True)
class Reconciliation:
    dataset: str
    rows_read: int
    rows_staged: int
    rows_quarantined: int


@contextmanager
def open_warehouse(path: Path, wait_seconds: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable connection, waiting up to wait_seconds for another run to release the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            connection = duckdb.connect(str(path))
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise WarehouseBusy(f"{path}: cannot open the warehouse ({str(error).splitlines()[0]})") from None
            if time.monotonic() >= deadline:
                raise WarehouseBusy(
                    f"{path}: the warehouse is in use by another lareturns run; waited {wait_seconds:.0f} s. "
                    "Try again when that run has finished."
                ) from None
            time.sleep(0.5)
    try:
        connection.execute(SCHEMA_SQL)
        yield connection
    finally:
        connection.close()


def staging_table_sql(contract: Contract) -> str:
    columns = ", ".join(f'"{c.name}" {DUCKDB_TYPES.get(c.type, "VARCHAR")}' for c in contract.columns)
    return f'CREATE TABLE IF NOT EXISTS staging."{contract.dataset}" (run_id VARCHAR NOT NULL, source_row BIGINT NOT NULL, {columns})'


def load_validated(
    connection: duckdb.DuckDBPyConnection,
    run_id: str,
    contract: Contract,
    validated: Validated,
    source_file: str,
    file_sha256: str,
    rows_read: int,
    term: Term,
) -> Reconciliation:
    """Replace the dataset's staged rows with this run's, append its quarantine and its line in audit.runs."""
    dataset = contract.dataset
    staged = validated.staged.with_columns(pl.lit(run_id).alias("run_id")).select("run_id", SOURCE_ROW, *contract.column_names)
    raw_columns = [c for c in validated.quarantine.columns if c not in (SOURCE_ROW, "rule_ids", "messages")]
    quarantine = validated.quarantine.select(
        pl.lit(run_id).alias("run_id"), pl.lit(dataset).alias("dataset"), pl.lit(source_file).alias("source_file"),
        SOURCE_ROW, "rule_ids", "messages", pl.struct(raw_columns).struct.json_encode().alias("raw_row"),
    )
    counts = validated.rule_counts.select(pl.lit(run_id).alias("run_id"), pl.lit(dataset).alias("dataset"), "rule_id", "severity", "rows")
    warned = validated.warnings[SOURCE_ROW].n_unique()
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.execute(staging_table_sql(contract))
        connection.execute(f'DELETE FROM staging."{dataset}"')
        connection.register("incoming_staged", staged.to_arrow())
        connection.execute(f'INSERT INTO staging."{dataset}" SELECT * FROM incoming_staged')
        connection.register("incoming_quarantine", quarantine.to_arrow())
        connection.execute("INSERT INTO audit.quarantine SELECT * FROM incoming_quarantine")
        connection.register("incoming_counts", counts.to_arrow())
        connection.execute("INSERT INTO audit.rule_counts SELECT * FROM incoming_counts")
        in_staging = connection.execute(f'SELECT count(*) FROM staging."{dataset}" WHERE run_id = ?', [run_id]).fetchone()[0]
        in_quarantine = connection.execute(
            "SELECT count(*) FROM audit.quarantine WHERE run_id = ? AND dataset = ?", [run_id, dataset]).fetchone()[0]
        if in_staging + in_quarantine != rows_read:
            raise ReconciliationError(
                f"{source_file}: {rows_read} rows read but {in_staging} staged + {in_quarantine} quarantined; nothing was loaded"
            )
        connection.execute(
            "INSERT INTO audit.runs (run_id, dataset, source_file, file_sha256, rows_read, rows_staged, rows_quarantined, "
            "rows_with_warnings, academic_year, loaded_at, term) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, dataset, source_file, file_sha256, rows_read, in_staging, in_quarantine, warned, term.academic_year,
             dt.datetime.now(dt.UTC).replace(tzinfo=None), term.label],
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    finally:
        for view in ("incoming_staged", "incoming_quarantine", "incoming_counts"):
            connection.unregister(view)
    return Reconciliation(dataset, rows_read, in_staging, in_quarantine)


def previous_row_count(connection: duckdb.DuckDBPyConnection, dataset: str) -> int | None:
    """Rows read by the last run that loaded this dataset, for the row-count expectation."""
    row = connection.execute(
        "SELECT rows_read FROM audit.runs WHERE dataset = ? ORDER BY loaded_at DESC LIMIT 1", [dataset]
    ).fetchone()
    return row[0] if row else None


def staged_frames(path: Path, datasets: tuple[str, ...]) -> dict[str, pl.DataFrame]:
    """The staged rows of some datasets (without the run bookkeeping columns), for the nodes."""
    with open_warehouse(path) as connection:
        return {name: connection.sql(f'SELECT * EXCLUDE (run_id, source_row) FROM staging."{name}"').pl()
                for name in datasets}


def staged_datasets(path: Path) -> list[str]:
    with open_warehouse(path) as connection:
        return sorted(staged_tables(connection))


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block's statements committed together, or none of them."""
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with suppress(duckdb.Error):  # a failed COMMIT has already ended the transaction
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def ledger_tail(connection: duckdb.DuckDBPyConnection) -> tuple[int, str] | None:
    """(seq, entry_hash) of the ledger's last entry, or None for an empty ledger."""
    connection.execute(LEDGER_SQL)
    return connection.execute("SELECT seq, entry_hash FROM audit.ledger ORDER BY seq DESC LIMIT 1").fetchone()


def insert_ledger_entry(connection: duckdb.DuckDBPyConnection, seq: int, text: str, entry_hash: str) -> None:
    connection.execute("INSERT INTO audit.ledger VALUES (?, ?, ?)", [seq, text, entry_hash])


def ledger_texts(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """Every entry of the warehouse's ledger as stored (canonical JSON), in order."""
    connection.execute(LEDGER_SQL)
    return [text for (text,) in connection.execute("SELECT entry FROM audit.ledger ORDER BY seq").fetchall()]


def run_inputs(connection: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    """The export files a run loaded: dataset, source_file, file_sha256 and rows_read, by dataset."""
    rows = connection.execute("SELECT dataset, source_file, file_sha256, rows_read FROM audit.runs WHERE run_id = ? "
                              "ORDER BY dataset", [run_id]).fetchall()
    return [dict(zip(("dataset", "source_file", "file_sha256", "rows_read"), row, strict=True)) for row in rows]


def quoted(name: str) -> str:
    """A column or table name as a DuckDB identifier, whatever it holds."""
    return '"' + name.replace('"', '""') + '"'


def staged_tables(connection: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'").fetchall()}


def _equal(values: dict, other_than: int | None) -> tuple[str, list]:
    where = " AND ".join(f"{quoted(k)} = ?" for k in values) or "true"
    params = list(values.values())
    if other_than is not None:
        where, params = f"{where} AND {SOURCE_ROW} <> ?", [*params, other_than]
    return where, params


def staged_rows_with(connection: duckdb.DuckDBPyConnection, dataset: str, values: dict, limit: int) -> list[int]:
    """source_row of up to limit staged rows whose columns equal the values (typed)."""
    where, params = _equal(values, None)
    return [row for (row,) in connection.execute(
        f"SELECT {SOURCE_ROW} FROM staging.{quoted(dataset)} WHERE {where} LIMIT {int(limit)}", params).fetchall()]


def staged_rows(connection: duckdb.DuckDBPyConnection, dataset: str, values: dict, other_than: int | None = None) -> pl.DataFrame:
    """The staged rows (without their run id) whose columns equal the values, less the row other_than."""
    where, params = _equal(values, other_than)
    return connection.sql(f"SELECT * EXCLUDE (run_id) FROM staging.{quoted(dataset)} WHERE {where}", params=params).pl()


def set_staged_value(connection: duckdb.DuckDBPyConnection, dataset: str, source_row: int, column: str, value) -> None:
    connection.execute(f"UPDATE staging.{quoted(dataset)} SET {quoted(column)} = ? WHERE {SOURCE_ROW} = ?", [value, source_row])


def loaded_term(connection: duckdb.DuckDBPyConnection, dataset: str) -> Term | None:
    """The term the dataset's latest load was validated for (a load from before terms were recorded was checked
    against its academic year's spring census); None if no run loaded it."""
    rows = connection.execute("SELECT academic_year, term FROM audit.runs WHERE dataset = ? ORDER BY loaded_at DESC "
                              "LIMIT 1", [dataset]).fetchall()
    if not rows:
        return None
    academic_year, label = rows[0]
    return Term.parse(label) if label else Term(academic_year, "spring")


def next_rectification_id(connection: duckdb.DuckDBPyConnection) -> int:
    connection.execute(RECTIFICATIONS_SQL)
    return connection.execute("SELECT coalesce(max(id), 0) + 1 FROM audit.rectifications").fetchall()[0][0]


def record_rectification(connection: duckdb.DuckDBPyConnection, *values) -> None:
    """One row of audit.rectifications: id, applied_at, dataset, key_column, key_value, column, old, new, reason."""
    connection.execute(RECTIFICATIONS_SQL)
    connection.execute("INSERT INTO audit.rectifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", list(values))


def recorded_corrections(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(id, dataset, key_column, key_value, column, new_value, reason, old_value) of every correction, oldest first."""
    connection.execute(RECTIFICATIONS_SQL)
    return connection.execute('SELECT id, dataset, key_column, key_value, "column", new_value, reason, old_value '
                              "FROM audit.rectifications ORDER BY id").fetchall()


def rectifications(connection: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """audit.rectifications, by id."""
    connection.execute(RECTIFICATIONS_SQL)
    return connection.sql("SELECT * FROM audit.rectifications ORDER BY id").pl()


@dataclass(frozen=True)
class PersonMatch:
    """Who a subject access search looks for in one dataset: any of the columns equal to value once trimmed and
    upper-cased (lower-cased when lower), and the date of birth when given."""

    columns: tuple[str, ...]
    value: str
    lower: bool
    date_of_birth: dt.date | None

    def condition(self, column_sql) -> tuple[str, list]:
        case = "lower" if self.lower else "upper"
        return " OR ".join(f"{case}(trim({column_sql(c)})) = ?" for c in self.columns), [self.value] * len(self.columns)


def staged_people(connection: duckdb.DuckDBPyConnection, dataset: str, match: PersonMatch) -> pl.DataFrame:
    condition, params = match.condition(quoted)
    if match.date_of_birth:
        condition, params = f'({condition}) AND "date_of_birth" = ?', [*params, match.date_of_birth]
    return connection.sql(f"SELECT * FROM staging.{quoted(dataset)} WHERE {condition} ORDER BY {SOURCE_ROW}",
                          params=params).pl()


def quarantined_people(connection: duckdb.DuckDBPyConnection, dataset: str, match: PersonMatch) -> list[tuple]:
    """(run_id, dataset, source_file, source_row, rule_ids, messages, raw_row) of every quarantined row of any run
    that names the person; a date of birth may be in either accepted format, so both spellings are searched."""
    condition, params = match.condition(lambda c: f"json_extract_string(raw_row, '$.{c}')")
    if match.date_of_birth:
        condition = f"({condition}) AND trim(json_extract_string(raw_row, '$.date_of_birth')) IN (?, ?)"
        params = [*params, match.date_of_birth.isoformat(), match.date_of_birth.strftime("%d/%m/%Y")]
    return connection.execute(
        "SELECT run_id, dataset, source_file, source_row, rule_ids, messages, raw_row FROM audit.quarantine "
        f"WHERE dataset = ? AND ({condition}) ORDER BY run_id, source_row", [dataset, *params]).fetchall()


def table_exists(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return connection.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                              [schema, table]).fetchall()[0][0] > 0


def staged_row_keys(connection: duckdb.DuckDBPyConnection, dataset: str, column: str) -> pl.DataFrame:
    """row_key (DuckDB's rowid, valid within the caller's transaction) and one column of the staged rows."""
    return connection.sql(f"SELECT rowid AS row_key, {quoted(column)} FROM staging.{quoted(dataset)}").pl()


def quarantined_row_keys(connection: duckdb.DuckDBPyConnection, dataset: str, column: str) -> pl.DataFrame:
    """row_key and one column's text as it came from the export, for the dataset's quarantined rows of every run."""
    return connection.sql(f"SELECT rowid AS row_key, json_extract_string(raw_row, ?) AS {quoted(column)} "
                          "FROM audit.quarantine WHERE dataset = ?", params=[f"$.{column}", dataset]).pl()


def rectification_keys(connection: duckdb.DuckDBPyConnection, dataset: str) -> pl.DataFrame:
    """row_key, key_column, key_value, column and new_value of the dataset's recorded corrections."""
    return connection.sql('SELECT rowid AS row_key, key_column, key_value, "column", new_value '
                          "FROM audit.rectifications WHERE dataset = ?", params=[dataset]).pl()


def staged_values_of(connection: duckdb.DuckDBPyConnection, dataset: str, column: str, row_keys: pl.Series) -> pl.Series:
    """One column of the staged rows with these row keys, as text."""
    connection.register("wanted_rows", row_keys.alias("row_key").to_frame().to_arrow())
    try:
        return connection.sql(f"SELECT CAST({quoted(column)} AS VARCHAR) AS k FROM staging.{quoted(dataset)} "
                              "WHERE rowid IN (SELECT row_key FROM wanted_rows)").pl()["k"]
    finally:
        connection.unregister("wanted_rows")


def delete_rows(connection: duckdb.DuckDBPyConnection, schema: str, table: str, row_keys: pl.Series) -> int:
    """Delete rows by row key; returns how many went."""
    if row_keys.is_empty():
        return 0
    connection.register("expired_keys", row_keys.alias("row_key").to_frame().to_arrow())
    try:
        [(count,)] = connection.execute(f"DELETE FROM {quoted(schema)}.{quoted(table)} "
                                        "WHERE rowid IN (SELECT row_key FROM expired_keys)").fetchall()
    finally:
        connection.unregister("expired_keys")
    return count


def compact_warehouse(path: Path) -> None:
    """Copy the warehouse's live rows into a fresh file and put it in the warehouse's place, so deleted rows are no
    longer in the file. Between closing the warehouse and the rename another run could open the old file; the
    window is a rename long, and the schedule runs the purge at an hour when no return runs."""
    fresh = partial_path(path, "compact")
    try:
        with open_warehouse(path) as connection:
            (name,) = connection.execute("SELECT current_database()").fetchone()
            connection.execute(f"ATTACH '{str(fresh).replace(chr(39), chr(39) * 2)}' AS compacted")
            connection.execute(f"COPY FROM DATABASE {quoted(name)} TO compacted")
            connection.execute("DETACH compacted")
        put_in_place(fresh, path)
    finally:
        fresh.unlink(missing_ok=True)
        fresh.with_name(fresh.name + ".wal").unlink(missing_ok=True)
