"""A whole validation run: the DuckDB file's contents, reconciliation, the single-writer lock, the quarantine
files an analyst fixes, and Data Docs that open offline with no personal data in them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.flows.validate import run_validation
from pipelines.nodes.validation import Validated
from pipelines.store.warehouse import ReconciliationError, WarehouseBusy, load_validated, open_warehouse
from schemas.calendar import Term
from schemas.contract import load_contract

from .conftest import read_export

DATASETS = ["pupils", "early_years", "destinations", "ncmp", "schools", "postcodes", "providers"]


def test_warehouse_file_reconciles_every_dataset(validated_run, small_faulty):
    faults = pl.read_csv(small_faulty / "faults.csv", infer_schema=False)
    with duckdb.connect(str(validated_run / "02_warehouse" / "warehouse.duckdb"), read_only=True) as db:
        runs = db.sql("SELECT dataset, rows_read, rows_staged, rows_quarantined FROM audit.runs").pl()
        assert sorted(runs["dataset"]) == sorted(DATASETS)
        for row in runs.iter_rows(named=True):
            name = row["dataset"]
            assert row["rows_read"] == pl.read_csv(small_faulty / load_contract(name).file, infer_schema=False).height
            assert row["rows_read"] == row["rows_staged"] + row["rows_quarantined"]
            staged = db.execute(f'SELECT count(*) FROM staging."{name}"').fetchone()[0]
            quarantined = db.execute("SELECT count(*) FROM audit.quarantine WHERE dataset = ?", [name]).fetchone()[0]
            expected = faults.filter((pl.col("file") == f"{name}.csv") & (pl.col("expected") == "quarantine")).height
            assert (staged, quarantined) == (row["rows_staged"], expected)
        types = dict(db.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_schema = 'staging' AND table_name = 'pupils'").fetchall())
        assert types["date_of_birth"] == "DATE" and types["fsm_eligible"] == "BOOLEAN" and types["sessions_missed"] == "BIGINT"
        raw = json.loads(db.execute("SELECT raw_row FROM audit.quarantine WHERE dataset = 'pupils' LIMIT 1").fetchone()[0])
        assert set(raw) == set(load_contract("pupils").column_names)


def test_quarantine_file_lists_rows_and_rules_for_the_analyst(validated_run, small_faulty):
    quarantine = pl.read_csv(validated_run / "quarantine" / "pupils.csv", infer_schema=False)
    assert quarantine.columns[:3] == ["source_row", "rule_ids", "messages"]
    assert quarantine.columns[3:] == load_contract("pupils").column_names
    assert quarantine["rule_ids"].str.contains(r"^PUP-[A-Z0-9-]+(;PUP-[A-Z0-9-]+)*$").all()
    source = read_export(small_faulty, "pupils").with_row_index("source_row", offset=1)
    row = quarantine.row(0, named=True)
    assert source.filter(pl.col("source_row") == int(row["source_row"]))["upn"].item() == row["upn"]


def test_data_docs_open_offline_and_hold_no_personal_data(validated_run, small_faulty):
    pages = list((validated_run / "data_docs").rglob("*.html"))
    assert (validated_run / "data_docs" / "index.html") in pages and len(pages) >= 5
    html = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    pupils = read_export(small_faulty, "pupils")
    for column in ("upn", "surname", "postcode", "date_of_birth", "email"):
        values = set(pupils[column].drop_nulls().unique().head(300).to_list())
        leaked = [v for v in values if len(v) > 4 and v in html]
        assert not leaked, (column, leaked[:3])



def test_a_second_writer_waits_then_fails_clearly(tmp_path, small_clean):
    warehouse = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(warehouse)!r}); print('held', flush=True); time.sleep(20)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(WarehouseBusy, match="in use by another lareturns run"):
            with open_warehouse(warehouse, wait_seconds=1.5):
                pass
        assert time.monotonic() - started >= 1.5
    finally:
        holder.kill()
        holder.wait()
    with open_warehouse(warehouse, wait_seconds=1):  # released: opens at once
        pass


def test_a_load_that_does_not_reconcile_is_rolled_back(tmp_path):
    contract = load_contract("ncmp")
    empty = pl.DataFrame(schema={"source_row": pl.Int64, **{c: pl.String for c in contract.column_names}})
    validated = Validated(staged=empty.with_columns(pl.col("date_of_birth").str.to_date(), pl.col("measurement_date").str.to_date(),
                                                    pl.col("height_cm").cast(pl.Float64), pl.col("weight_kg").cast(pl.Float64)),
                          quarantine=empty.with_columns(rule_ids=pl.lit(""), messages=pl.lit("")),
                          warnings=pl.DataFrame(schema={"source_row": pl.Int64, "rule_id": pl.String}),
                          rule_counts=pl.DataFrame(schema={"rule_id": pl.String, "severity": pl.String, "rows": pl.UInt32}))
    with open_warehouse(tmp_path / "w.duckdb") as db:
        with pytest.raises(ReconciliationError, match="5 rows read but 0 staged"):
            load_validated(db, "run-1", contract, validated, "ncmp.csv", "0" * 64, 5, 2025)
        assert db.execute("SELECT count(*) FROM audit.runs").fetchone()[0] == 0


def test_running_twice_keeps_one_staged_copy_and_both_run_records(tmp_path, small_clean):
    for _ in range(2):
        run_validation(small_clean, tmp_path / "out", Term(2025, "spring"), datasets=("ncmp",))
    with duckdb.connect(str(tmp_path / "out" / "02_warehouse" / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute('SELECT count(*) FROM staging."ncmp"').fetchone()[0] == read_export(small_clean, "ncmp").height
        assert db.execute("SELECT count(DISTINCT run_id) FROM audit.runs").fetchone()[0] == 2


def test_a_relative_out_folder_works_as_the_demo_uses_it(tmp_path, small_clean, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate", "--input", str(small_clean), "--out", "out/demo"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "demo" / "data_docs" / "index.html").exists()
    assert (tmp_path / "out" / "demo" / "02_warehouse" / "warehouse.duckdb").exists()


@pytest.mark.parametrize("dataset", [d for d in DATASETS if load_contract(d).direct_identifiers])
def test_great_expectations_never_sees_a_direct_identifier_except_as_a_key(small_clean, dataset):
    from pipelines.assurance.expectations import suite_frame, unique_keys
    from pipelines.nodes.validation import validate_frame
    from pipelines.store.exports import read_export as read_raw
    from schemas.config import load_mapping
    from schemas.rules import Period

    contract = load_contract(dataset)
    raw = read_raw(small_clean, load_mapping(None)[dataset]).frame
    staged = validate_frame(raw, contract, Period(Term(2025, "spring"))).staged
    sent = set(suite_frame(contract, staged).columns)
    assert sent & set(contract.direct_identifiers) <= set(unique_keys(contract))
    assert not sent & {"surname", "forename", "postcode", "date_of_birth", "address_line1", "email", "phone"}
