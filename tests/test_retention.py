"""Retention: records deleted on the first day after their period, from staging, the quarantine and the landing
folder, with counts (never identities) in the ledger, and nothing at all touched by a dry run.

One small generated county is edited so that a few rows sit on the boundary (their last day is the purge day), one
day past it and one day inside it, some of them invalid so that they land in the quarantine; it is validated once
into a warehouse, and each test purges its own copy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from prefect.flows import load_flow_from_entrypoint
from typer.testing import CliRunner

from outputs.files import file_sha256
from pipelines.cli import app
from pipelines.flows.housekeeping import purge_day, retention_purge, run_dirs
from pipelines.flows.returns import RETURNS
from pipelines.flows.serve import FLOWS, build_deployments
from pipelines.flows.serve import load as load_served_schedule
from pipelines.flows.validate import run_validation
from pipelines.governance.purge import check_unchanged, landing_plan, purge
from pipelines.governance.retention import csv_records, expired, undated
from pipelines.store.ledger import chain_problems, file_entries
from pipelines.store.warehouse import compact_warehouse
from pipelines.synthetic.generate import generate
from schemas.calendar import Term
from schemas.catalog import RETENTION, RunPaths
from schemas.config import load_mapping, load_retention_policy, load_schedule
from schemas.specs.retention import RetentionError, Rule
from schemas.specs.schedule import ScheduleError

# The purge day. Under 25 years, last contact 2000-11-25 is kept through 2025-11-25 and deleted from 2025-11-26.
TODAY = "2025-11-26"
PUPIL_ROWS = {  # data row index -> (last_contact_date, made invalid so it is quarantined)
    10: ("2000-11-25", False),   # one day past its last day: deleted from staging
    11: ("2000-11-25", False),
    12: ("25/11/2000", False),   # the same day written DD/MM/YYYY, as validation also reads it
    13: ("2000-11-25", True),    # deleted from the quarantine
    14: ("2000-11-26", False),   # its last day is the purge day: kept
    15: ("2000-11-27", False),   # one day inside: kept
    16: ("2000-11-26", True),    # quarantined and on its last day: kept
    17: ("45000", False),        # an Excel serial, not a date: quarantined, kept and counted as undated
    18: ("", False),             # no date: kept
}
EY_ROWS = {  # under 7 years from case closure
    20: ("2018-11-25", False),
    21: ("2018-11-25", True),
    22: ("2018-11-26", False),
    23: ("2018-11-27", False),
}
EXPECTED = {  # dataset -> staging, quarantine, landing deleted; undated kept in quarantine / landing
    "pupils": ("3", "1", "4", "1 / 1"),
    "early_years": ("1", "1", "2", "0 / 0"),
    "destinations": ("0", "0", "0", "0 / 0"),
    "ncmp": ("0", "0", "0", "0 / 0"),
}
WIDE = {"COLUMNS": "300"}


def edited(frame: pl.DataFrame, rows: dict[int, tuple[str, bool]], column: str) -> pl.DataFrame:
    dates = frame[column].to_list()
    surnames = frame["surname"].to_list()
    for row, (date, invalid) in rows.items():
        dates[row] = date or None
        if invalid:
            surnames[row] = None  # PUP-SURNAME-REQUIRED / EY-SURNAME-REQUIRED: quarantined
    return frame.with_columns(pl.Series(column, dates, dtype=pl.String), pl.Series("surname", surnames, dtype=pl.String))


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> tuple[Path, Path]:
    """(landing folder, output root) after one validation of the edited county; tests purge copies."""
    root = tmp_path_factory.mktemp("retention")
    landing, out = root / "landing", root / "out"
    generate(landing, seed=7, scale="2000")
    pupils = pl.read_csv(landing / "pupils.csv", infer_schema=False)
    # Rows of pupils on roll at one school only, so each UPN is on one row.
    duplicated = set(pupils.filter(pupils["upn"].is_duplicated())["upn"].to_list())
    assert not {pupils["upn"][row] for row in PUPIL_ROWS} & duplicated
    edited(pupils, PUPIL_ROWS, "last_contact_date").write_csv(landing / "pupils.csv")
    early_years = pl.read_csv(landing / "early_years.csv", infer_schema=False)
    edited(early_years, EY_ROWS, "case_closed_date").write_csv(landing / "early_years.csv")
    run_validation(landing, out / "01_validated", Term(2025, "spring"), warehouse=RunPaths(out).warehouse)
    with duckdb.connect(str(RunPaths(out).warehouse), read_only=True) as connection:
        for dataset, rows in (("pupils", PUPIL_ROWS), ("early_years", EY_ROWS)):
            staged = {r for (r,) in connection.execute(f"SELECT source_row FROM staging.{dataset}").fetchall()}
            quarantined = {r for (r,) in connection.execute(
                "SELECT source_row FROM audit.quarantine WHERE dataset = ?", [dataset]).fetchall()}
            for row, (date, invalid) in rows.items():  # each edited row is where the test means it to be
                in_quarantine = invalid or date == "45000"
                assert (row + 1 in quarantined, row + 1 in staged) == (in_quarantine, not in_quarantine), (dataset, row)
    return landing, out


@pytest.fixture
def run_copy(validated, tmp_path) -> tuple[Path, Path]:
    landing, out = validated
    shutil.copytree(landing, tmp_path / "landing")
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "landing", tmp_path / "out"


def retention(*args: str | Path):
    return CliRunner().invoke(app, ["retention", *map(str, args)], env=WIDE)


def table_rows(output: str) -> dict[str, tuple[str, ...]]:
    """dataset -> (staging, quarantine, landing, undated) from the printed table, without corrections."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 7 and cells[0] in EXPECTED:
            rows[cells[0]] = (*cells[2:5], cells[6])  # corrections (cells[5]) are checked on their own
    return rows


def state(landing: Path, out: Path) -> dict:
    """Row counts per place, the staged and quarantined source rows, and every landing file's bytes."""
    with duckdb.connect(str(RunPaths(out).warehouse), read_only=True) as connection:
        staged = {d: {r for (r,) in connection.execute(f"SELECT source_row FROM staging.{d}").fetchall()} for d in EXPECTED}
        quarantined = {d: {r for (r,) in connection.execute("SELECT source_row FROM audit.quarantine WHERE dataset = ?",
                                                            [d]).fetchall()} for d in EXPECTED}
        ledger = connection.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'ledger'").fetchall()[0][0]
        entries = [json.loads(e) for (e,) in connection.execute("SELECT entry FROM audit.ledger ORDER BY seq").fetchall()] \
            if ledger else []
    return {"staged": staged, "quarantined": quarantined, "ledger": entries,
            "files": {p.name: p.read_bytes() for p in sorted(landing.glob("*.csv"))}}


def identities(landing: Path) -> set[str]:
    """The UPNs, surnames and dates of birth of the edited rows: none may appear in a report or the ledger."""
    values = set()
    for name, rows in (("pupils", PUPIL_ROWS), ("early_years", EY_ROWS)):
        frame = pl.read_csv(landing / f"{name}.csv", infer_schema=False)[sorted(rows)]
        values |= {v for c in ("upn", "surname", "date_of_birth", "child_id") if c in frame.columns
                   for v in frame[c].drop_nulls().to_list()}
    return values


# Pure: the rule and the CSV records.

RULE = Rule("pupils", "last_contact_date", 25, "test")


@pytest.mark.parametrize(("date", "today", "gone"), [
    ("2001-11-25", "2026-11-25", False),  # the last day
    ("2001-11-25", "2026-11-26", True),   # the first day after
    ("2001-11-26", "2026-11-26", False),
    ("2000-02-29", "2025-02-28", False),  # 29 February + 25 years is 28 February 2025: the last day
    ("2000-02-29", "2025-03-01", True),
    ("2004-02-29", "2029-02-28", False),
    ("2004-02-29", "2029-03-01", True),
    ("29/02/2000", "2025-03-01", True),   # DD/MM/YYYY, as validation reads it
    (" 2001-11-25 ", "2026-11-26", True), # trimmed, as validation trims
    (None, "2099-01-01", False),          # no date: the clock has not started
    ("45000", "2099-01-01", False),       # unreadable: kept
])
def test_a_record_is_kept_through_its_last_day_and_deleted_the_day_after(date, today, gone):
    frame = pl.DataFrame({"last_contact_date": [date]}, schema={"last_contact_date": pl.String})
    assert expired(frame, RULE, dt.date.fromisoformat(today)).to_list() == [gone]


def test_typed_dates_expire_the_same_way_and_only_unreadable_text_is_undated():
    typed = pl.DataFrame({"last_contact_date": [dt.date(2000, 2, 29), dt.date(2000, 3, 1), None]})
    assert expired(typed, RULE, dt.date(2025, 3, 1)).to_list() == [True, False, False]
    text = pl.DataFrame({"last_contact_date": ["45000", "", None, "2001-11-25", "31/02/2001"]})
    assert undated(text, RULE).to_list() == [True, False, False, False, True]
    assert expired(text, Rule("pupils", None, None, "no rule"), dt.date(2099, 1, 1)).to_list() == [False] * 5


def test_csv_records_keep_every_other_byte():
    text = 'a,last_contact_date\r\n1,2001-01-01\r\n"two\nlines",2001-01-02\r\n3,"2001-01-03"'
    records = csv_records(text)
    assert records.column("last_contact_date").to_list() == ["2001-01-01", "2001-01-02", "2001-01-03"]
    assert records.without(pl.Series([False, True, False])) == 'a,last_contact_date\r\n1,2001-01-01\r\n3,"2001-01-03"'
    assert records.without(pl.Series([False, False, True])) == text[:text.rindex("3,")]


# The policy file.

@pytest.mark.parametrize(("change", "key"), [
    (("years = 25", "yeers = 25"), "datasets.pupils.yeers"),
    (("years = 25", "years = 0"), "datasets.pupils.years"),
    (("years = 25", 'years = "25"'), "datasets.pupils.years"),
    (('date_column = "last_contact_date"', 'date_column = "surname"'), "datasets.pupils.date_column"),
    (("[datasets.ncmp]\nrule", "[datasets.nmcp]\nrule"), "datasets.nmcp"),
    (('[datasets.ncmp]\nrule = "none"', '[datasets.ncmp]\nrule = "forever"'), "datasets.ncmp.rule"),
    (('version = "2026.1"', 'versions = "2026.1"'), "versions"),
])
def test_a_bad_policy_key_is_named_with_the_file(tmp_path, change, key):
    text = RETENTION.read_text()
    assert change[0] in text
    path = tmp_path / "retention.toml"
    path.write_text(text.replace(*change))
    with pytest.raises(RetentionError) as error:
        load_retention_policy(path)
    assert str(error.value).startswith(f"{path}: {key}: ")


def test_a_dataset_with_personal_data_left_out_is_refused(tmp_path):
    text = RETENTION.read_text()
    path = tmp_path / "retention.toml"
    path.write_text(text[:text.index("[datasets.ncmp]")])
    with pytest.raises(RetentionError, match=r"datasets\.ncmp: missing \(it holds personal data"):
        load_retention_policy(path)


def test_the_shipped_policy():
    policy = load_retention_policy()
    assert {r.dataset: r.describe() for r in policy.rules} == {
        "pupils": "25 years from last_contact_date", "early_years": "7 years from case_closed_date",
        "destinations": "no rule", "ncmp": "no rule"}


# The purge, through the CLI.

def test_a_dry_run_counts_and_touches_nothing(run_copy):
    landing, out = run_copy
    before = state(landing, out)
    result = retention("--input", landing, "--out", out, "--today", TODAY, "--dry-run")
    assert result.exit_code == 0, result.output
    assert table_rows(result.output) == EXPECTED
    assert "no ledger entry" in result.output
    assert state(landing, out) == before
    assert not RunPaths(out).ledger.exists() and before["ledger"] == []


def test_a_purge_deletes_exactly_the_expired_records_everywhere_and_records_counts_only(run_copy):
    landing, out = run_copy
    before, people = state(landing, out), identities(landing)
    result = retention("--input", landing, "--out", out, "--today", TODAY)
    assert result.exit_code == 0, result.output
    assert table_rows(result.output) == EXPECTED
    after = state(landing, out)

    gone = {"pupils": {11, 12, 13}, "early_years": {21}}  # source rows (1-based) of the expired staged rows
    for dataset in EXPECTED:
        assert after["staged"][dataset] == before["staged"][dataset] - gone.get(dataset, set()), dataset
    assert after["quarantined"]["pupils"] == before["quarantined"]["pupils"] - {14}
    assert after["quarantined"]["early_years"] == before["quarantined"]["early_years"] - {22}
    assert {15, 16, 19} <= after["staged"]["pupils"] and {17, 18} <= after["quarantined"]["pupils"]
    assert {23, 24} <= after["staged"]["early_years"]
    report = pl.read_csv(out / "01_validated" / "quarantine" / "pupils.csv", infer_schema=False)["source_row"].cast(int)
    assert 14 not in report.to_list() and {17, 18} <= set(report)  # the analysts' quarantine file too

    # Landing: the expired records are gone and every other byte is as it was; no rule, no change.
    for name, rows in (("pupils.csv", PUPIL_ROWS), ("early_years.csv", EY_ROWS)):
        lines = before["files"][name].decode().splitlines(keepends=True)
        expired_lines = {1 + row for row, (date, _) in rows.items() if date in ("2000-11-25", "25/11/2000", "2018-11-25")}
        assert after["files"][name].decode() == "".join(l for i, l in enumerate(lines) if i not in expired_lines)
    assert after["files"]["destinations.csv"] == before["files"]["destinations.csv"]
    assert after["files"]["ncmp.csv"] == before["files"]["ncmp.csv"]

    # The ledger: one retention entry, in both copies, on a valid chain, with counts and hashes only.
    entries = file_entries(RunPaths(out).ledger)
    assert [e["kind"] for e in entries] == ["retention"] and chain_problems(entries) == []
    assert after["ledger"] == entries
    body = entries[0]["body"]
    assert body["today"] == TODAY
    assert body["policy"]["sha256"] == file_sha256(RETENTION)
    assert {d["dataset"]: (d["deleted"]["staging"], d["deleted"]["quarantine"], d["deleted"]["landing"])
            for d in body["datasets"]} == {"pupils": (3, 1, 4), "early_years": (1, 1, 2), "destinations": (0, 0, 0),
                                           "ncmp": (0, 0, 0)}
    assert body["landing_sha256"] == {n: file_sha256(landing / n) for n in ("pupils.csv", "early_years.csv")} | {
        f"01_validated/quarantine/{n}": file_sha256(out / "01_validated" / "quarantine" / n) for n in ("pupils.csv", "early_years.csv")}
    ledger_text = RunPaths(out).ledger.read_text()
    assert len(people) > 20
    for value in people | {"2000-11-25", "2018-11-25"}:
        assert value not in ledger_text and value not in result.output, "an identity in the ledger or the report"

    # A second purge on the same day finds nothing more, and chains its entry to the first.
    again = retention("--input", landing, "--out", out, "--today", TODAY)
    assert again.exit_code == 0, again.output
    assert set(table_rows(again.output).values()) == {("0", "0", "0", "0 / 0"), ("0", "0", "0", "1 / 1")}
    entries = file_entries(RunPaths(out).ledger)
    assert [e["seq"] for e in entries] == [1, 2] and chain_problems(entries) == []


def test_a_real_purge_may_not_run_ahead_and_errors_are_one_line(run_copy, tmp_path):
    landing, out = run_copy
    before = state(landing, out)
    ahead = retention("--input", landing, "--out", out, "--today", "2999-01-01")
    assert ahead.exit_code == 2 and len(ahead.output.strip().splitlines()) == 1
    assert "later than today" in ahead.output and "--dry-run" in ahead.output
    assert state(landing, out) == before and not RunPaths(out).ledger.exists()
    bad_day = retention("--input", landing, "--out", out, "--today", "26/11/2025")
    assert bad_day.exit_code == 2 and "YYYY-MM-DD" in bad_day.output
    policy = tmp_path / "retention.toml"
    policy.write_text(RETENTION.read_text().replace("years = 7", "yeers = 7"))
    bad_key = retention("--input", landing, "--out", out, "--policy", policy, "--dry-run")
    assert bad_key.exit_code == 2
    assert bad_key.output.strip().splitlines() == [f"error: {policy}: datasets.early_years.yeers: unknown key "
                                                   "(expected date_column, years, basis)"]
    nowhere = retention("--input", landing, "--out", tmp_path / "nowhere", "--dry-run")
    assert nowhere.exit_code == 2 and "no warehouse" in nowhere.output
    assert not (tmp_path / "nowhere").exists()


def test_a_landing_file_replaced_by_a_new_export_meanwhile_is_not_overwritten(validated, tmp_path):
    landing, _ = validated
    shutil.copytree(landing, tmp_path / "landing")
    rule = load_retention_policy().rule("pupils")
    plan = landing_plan(tmp_path / "landing", load_mapping(None)["pupils"], rule, dt.date.fromisoformat(TODAY))
    assert plan.deleted == 4 and plan.undated == 1
    check_unchanged([plan])
    (tmp_path / "landing" / "pupils.csv").write_bytes((landing / "pupils.csv").read_bytes() + b"\n")
    with pytest.raises(RetentionError, match="pupils.csv: changed while the purge ran"):
        check_unchanged([plan])


def test_compacting_removes_deleted_rows_from_the_file(tmp_path):
    """DuckDB's DELETE leaves the rows' bytes in the file; the compacted copy holds live rows only."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("PRAGMA force_compression='uncompressed'")  # so the bytes can be searched for
        connection.execute("CREATE SCHEMA audit; CREATE TABLE audit.ledger (seq BIGINT PRIMARY KEY, entry JSON)")
        connection.execute("CREATE TABLE audit.people AS SELECT range AS id, printf('GONEPERSON%06dX', range) AS name "
                           "FROM range(5000)")
        connection.execute("INSERT INTO audit.ledger VALUES (1, '{}')")
        connection.execute("DELETE FROM audit.people WHERE id % 100 = 7")
        connection.execute("CHECKPOINT")
    assert b"GONEPERSON000007X" in path.read_bytes()  # deleted, but still in the file
    compact_warehouse(path)
    assert b"GONEPERSON000007X" not in path.read_bytes()
    with duckdb.connect(str(path)) as connection:
        assert connection.execute("SELECT count(*) FROM audit.people").fetchall() == [(4950,)]
        with pytest.raises(duckdb.ConstraintException):  # keys survive the copy
            connection.execute("INSERT INTO audit.ledger VALUES (1, '{}')")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


# The flow, as the schedule runs it: over every output root in a folder, sharing one landing folder.

def test_the_flow_purges_every_root_and_the_shared_landing_once(prefect_harness, validated, tmp_path):
    landing, out = validated
    shutil.copytree(landing, tmp_path / "landing")
    for name in ("autumn-census", "spring-census"):
        shutil.copytree(out, tmp_path / "returns" / name)
    (tmp_path / "returns" / "not-a-run").mkdir()
    roots = run_dirs(tmp_path / "returns")
    assert [r.name for r in roots] == ["autumn-census", "spring-census"] and run_dirs(roots[0]) == [roots[0]]
    result = retention_purge(tmp_path / "landing", tmp_path / "returns", today=TODAY)
    assert result["today"] == TODAY and not result["dry_run"]
    pupils = [next(d for d in run["datasets"] if d["dataset"] == "pupils") for run in result["runs"]]
    assert [p["deleted"] for p in pupils] == [{"staging": 3, "quarantine": 1, "landing": 4, "rectifications": 0},
                                              {"staging": 3, "quarantine": 1, "landing": 0, "rectifications": 0}]
    for root in roots:
        entries = file_entries(RunPaths(root).ledger)
        assert [e["kind"] for e in entries] == ["retention"] and chain_problems(entries) == []
    with pytest.raises(RetentionError, match="no warehouse"):
        run_dirs(tmp_path / "returns" / "not-a-run")


def test_the_purge_day_is_as_given_or_today_in_england():
    assert purge_day("2025-11-26") == dt.date(2025, 11, 26)
    assert purge_day(None) in {dt.date.today() + dt.timedelta(days=d) for d in (-1, 0, 1)}


# The schedule.

def test_the_monthly_purge_is_served_and_left_out_for_returns_only(tmp_path):
    served = load_served_schedule()
    (purge,) = [d for d in served.deployments if d.housekeeping]
    assert (purge.name, purge.return_name, purge.term) == ("retention-monthly", "retention", None)
    deployment = build_deployments(served, tmp_path)[served.deployments.index(purge)]
    assert load_flow_from_entrypoint(deployment.entrypoint) is FLOWS["retention"]
    assert deployment.parameters == {"input_dir": str((tmp_path / "landing").resolve()),
                                     "out": str((tmp_path / "returns").resolve())}
    assert all(not d.housekeeping for d in load_schedule(None, RETURNS).deployments)


@pytest.mark.parametrize(("extra", "key", "message"), [
    ('term = "autumn"\n', "deployments.purge.term", "reports on no term"),
    ('return = "census"\n', "deployments.purge.flow", "not both"),
    ("", None, None),
])
def test_a_housekeeping_deployment_has_a_flow_and_no_term(tmp_path, extra, key, message):
    path = tmp_path / "schedule.toml"
    path.write_text('[deployments.purge]\nflow = "retention"\nrrule = "FREQ=MONTHLY;BYMONTHDAY=1"\nhour = 6\n'
                    f'input = "landing"\noutput = "returns"\n{extra}')
    if key is None:
        (purge,) = load_schedule(path, RETURNS, {"retention": None}).deployments
        assert purge.housekeeping and purge.return_name == "retention"
        with pytest.raises(ScheduleError, match=r"deployments\.purge\.flow: 'retention' is not one of tidy"):
            load_schedule(path, RETURNS, ("tidy",))
        return
    with pytest.raises(ScheduleError) as error:
        load_schedule(path, RETURNS, ("retention",))
    assert str(error.value).startswith(f"{path}: {key}: ") and message in str(error.value)


def test_a_correction_to_an_expired_record_goes_with_it(run_copy, tmp_path):
    """audit.rectifications holds a record's key and old and new values, so it must not outlive the record."""
    from pipelines.governance.rectify import rectify

    landing, out = run_copy
    with duckdb.connect(str(RunPaths(out).warehouse), read_only=True) as connection:
        upns = dict(connection.execute("SELECT source_row, upn FROM staging.pupils WHERE source_row IN (11, 16)").fetchall())
    corrections = tmp_path / "corrections.csv"
    corrections.write_text("dataset,key_column,key_value,column,new_value,reason\n"
                           f"pupils,upn,{upns[11]},forename,Expired,test\npupils,upn,{upns[16]},forename,Kept,test\n")
    rectify(RunPaths(out).warehouse, corrections, RunPaths(out).ledger)
    result = retention("--input", landing, "--out", out, "--today", TODAY)
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(RunPaths(out).warehouse), read_only=True) as connection:
        left = [v for (v,) in connection.execute("SELECT key_value FROM audit.rectifications").fetchall()]
    assert left == [upns[16]]
    purge = file_entries(RunPaths(out).ledger)[-1]
    assert {d["dataset"]: d["deleted"]["rectifications"] for d in purge["body"]["datasets"]}["pupils"] == 1
    assert upns[11] not in RunPaths(out).ledger.read_text()


def test_exports_validated_with_a_mapping_are_purged_with_it_and_never_skipped(run_copy, tmp_path):
    """Without the mapping the purge cannot date the renamed column; it refuses rather than leave records to
    come back at the next validation."""
    landing, out = run_copy
    pupils = landing / "pupils.csv"
    header, rest = pupils.read_text(encoding="utf-8").split("\n", 1)
    pupils.write_text(header.replace("last_contact_date", "LastContact") + "\n" + rest, encoding="utf-8")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[pupils]\ncolumns = { "LastContact" = "last_contact_date" }\n')
    refused = retention("--input", landing, "--out", out, "--today", TODAY)
    assert refused.exit_code == 2 and "'last_contact_date' column" in " ".join(refused.output.split())
    done = retention("--input", landing, "--out", out, "--today", TODAY, "--mapping", mapping)
    assert done.exit_code == 0, done.output
    assert table_rows(done.output)["pupils"] == EXPECTED["pupils"]


def test_a_purge_killed_after_its_commit_has_its_rewrites_put_in_place_by_the_next(run_copy):
    """The warehouse's deletions and the ledger entry committed; the process died before the rewritten landing
    files were moved into place. The next purge puts exactly those rewrites in place."""
    landing, out = run_copy
    command = [sys.executable, "-c", "from pipelines.cli import app; app()", "retention", "--input", str(landing),
               "--out", str(out), "--today", TODAY]
    killed = subprocess.run(command, env=os.environ | {"LARETURNS_FAULT_AT": "purge-committed"}, capture_output=True,
                            text=True, check=False)
    assert killed.returncode == -signal.SIGKILL
    entry = file_entries(RunPaths(out).ledger)[-1]
    rewritten = {name: digest for name, digest in entry["body"]["landing_sha256"].items() if "/" not in name}
    assert entry["kind"] == "retention" and rewritten  # committed, naming the rewrites it made
    assert all(file_sha256(landing / name) != digest for name, digest in rewritten.items())  # not yet in place
    again = subprocess.run(command, env=os.environ | {"COLUMNS": "250"}, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(file_sha256(landing / name) == digest for name, digest in rewritten.items())
    assert f"put in place the rewrite of {sorted(rewritten)[0]} that an interrupted purge recorded" in again.stdout
    assert not list(landing.glob(".*.partial")) and not chain_problems(file_entries(RunPaths(out).ledger))


def test_a_run_folder_of_the_earlier_layout_is_refused_in_one_line(tmp_path):
    """Its ledger names deliveries/ and releases/: purging it as if it were new would miss its records."""
    (tmp_path / "landing").mkdir()
    for name in ("data", "deliveries"):
        (tmp_path / "out" / name).mkdir(parents=True)
    with pytest.raises(RetentionError, match=r"a run folder of lareturns' earlier layout \(it has data/, deliveries/\)"):
        purge(tmp_path / "landing", tmp_path / "out", dt.date(2026, 12, 1), dry_run=True)
