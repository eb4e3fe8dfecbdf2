"""The embedded DuckDB warehouse: staged data per dataset, the quarantine, and the runs ledger.

DuckDB allows one writing process per file. A second run waits for the lock up to a limit and then fails with
a clear message; it never opens the file half-way. Each dataset's load is one transaction that re-counts what
it wrote and rolls back unless rows read = rows staged + rows quarantined.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipelines.validation import SOURCE_ROW, Validated
from schemas.contract import Contract

DUCKDB_TYPES = {"date": "DATE", "int": "BIGINT", "decimal": "DOUBLE", "flag": "BOOLEAN"}
SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.runs (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, source_file VARCHAR NOT NULL, file_sha256 VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL, rows_staged BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL,
    rows_with_warnings BIGINT NOT NULL, academic_year INTEGER NOT NULL, loaded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, dataset)
);
CREATE TABLE IF NOT EXISTS audit.quarantine (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL,
    rule_ids VARCHAR NOT NULL, messages VARCHAR NOT NULL, raw_row JSON NOT NULL
);
CREATE TABLE IF NOT EXISTS audit.rule_counts (
    run_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, rule_id VARCHAR NOT NULL, severity VARCHAR, rows BIGINT NOT NULL
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
    academic_year: int,
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
            "INSERT INTO audit.runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, dataset, source_file, file_sha256, rows_read, in_staging, in_quarantine, warned, academic_year,
             dt.datetime.now(dt.UTC).replace(tzinfo=None)],
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
    """The staged rows of some datasets (without the run bookkeeping columns), for the transforms."""
    with open_warehouse(path) as connection:
        return {name: connection.sql(f'SELECT * EXCLUDE (run_id, source_row) FROM staging."{name}"').pl()
                for name in datasets}


def staged_datasets(path: Path) -> list[str]:
    with open_warehouse(path) as connection:
        return sorted(name for (name,) in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'staging'").fetchall())
