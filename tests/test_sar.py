"""Subject access and rectification on copies of the one census run (the shared fixture stays untouched).

People are picked by reading what the run really staged and delivered, so each test knows where a person must be
found; a quarantined row and a fresh reload are made with the real validation and load on the small county.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.governance.rectify import reapply_rectifications
from pipelines.governance.sar import gather, search
from pipelines.nodes.extract import extract_rows
from pipelines.nodes.validation import validate_frame
from pipelines.store.exports import read_export
from pipelines.store.ledger import chain_problems, file_entries, warehouse_entries
from pipelines.store.warehouse import load_validated, open_warehouse, staged_frames
from schemas.calendar import Term
from schemas.catalog import RunPaths, extract_spec
from schemas.config import load_extract, load_mapping, load_recipients
from schemas.contract import load_contract
from schemas.rules import Period

HEADER = "dataset,key_column,key_value,column,new_value,reason\n"


@pytest.fixture
def run_copy(census_run, tmp_path) -> RunPaths:
    out, _ = census_run
    shutil.copytree(out, tmp_path / "run")
    return RunPaths(tmp_path / "run")


def query(paths: RunPaths, sql: str, params: list | None = None) -> list[tuple]:
    with open_warehouse(paths.warehouse) as connection:
        return connection.execute(sql, params or []).fetchall()


def delivered(paths: RunPaths, recipient: str, name: str) -> pl.DataFrame:
    """A delivered extract's rows as text: a CSV as it is, an XML return's records (PupilChild) by element."""
    xml = paths.deliveries / recipient / f"{name}.xml"
    if xml.exists():
        return pl.DataFrame([{item.tag: item.text for item in child}
                             for child in ET.fromstring(xml.read_bytes()).iter("PupilChild")])
    return pl.read_csv(paths.deliveries / recipient / f"{name}.csv", infer_schema=False)


def single_pupils(paths: RunPaths) -> list[tuple]:
    """(upn, surname, forename, date_of_birth, ethnicity) of pupils on one row only (not dual-registered)."""
    return query(paths, "SELECT upn, surname, forename, date_of_birth, ethnicity FROM staging.pupils WHERE upn IN "
                        "(SELECT upn FROM staging.pupils GROUP BY upn HAVING count(*) = 1) ORDER BY upn")


def nursery_pupil(paths: RunPaths) -> tuple:
    """A pupil whose UPN the DfE received in the early years census."""
    sent = set(delivered(paths, "dfe", "ey_census")["UPN"].drop_nulls())
    return next(p for p in single_pupils(paths) if p[0] in sent)


def youth_support_pupil(paths: RunPaths) -> tuple:
    """A pupil the youth support service received: that file has no number, only name and date of birth."""
    sent = set(delivered(paths, "youth_support", "youth_support")
               .select(pl.concat_str("Surname", "Forename", "DateOfBirth", separator="|")).to_series().drop_nulls())
    return next(p for p in single_pupils(paths) if f"{p[1]}|{p[2]}|{p[3].isoformat()}" in sent)


def fresh_pupils_load(paths: RunPaths, inputs: Path, run_id: str, period: str, broken_upn: str | None = None) -> None:
    """The pupils export validated and loaded again as a run does (staging replaced), optionally with one
    pupil's date of birth made unreadable so that their row is quarantined."""
    raw = read_export(inputs, load_mapping(None)["pupils"])
    frame = raw.frame
    if broken_upn:
        frame = frame.with_columns(pl.when(pl.col("upn") == broken_upn).then(pl.lit("31/02/2019"))
                                   .otherwise(pl.col("date_of_birth")).alias("date_of_birth"))
    term = Term.parse(period)
    contract = load_contract("pupils")
    validated = validate_frame(frame, contract, Period(term))
    with open_warehouse(paths.warehouse) as connection:
        load_validated(connection, run_id, contract, validated, raw.path.name, raw.sha256, frame.height, term)


def test_a_sar_by_upn_finds_the_pupil_in_staging_the_dfe_extract_and_the_statistics(run_copy, census_run):
    _, result = census_run
    upn, surname, forename, born, _ = nursery_pupil(run_copy)
    document = gather(run_copy.root, search(f" {upn.lower()} ", None, None))
    assert json.loads(json.dumps(document)) == document  # JSON as it stands, no converter needed
    records = {section["dataset"]: section["rows"] for section in document["records"]}
    assert [row["upn"] for row in records["pupils"]] == [upn]
    assert records["pupils"][0]["surname"] == surname and records["pupils"][0]["date_of_birth"] == born.isoformat()
    staged_ey = query(run_copy, "SELECT count(*) FROM staging.early_years WHERE upn = ?", [upn])[0][0]
    assert len(records["early_years"]) == staged_ey > 0
    dfe = next(d for d in document["deliveries"] if d["file"] == "04_deliveries/dfe/ey_census.xml")
    assert {row["UPN"] for row in dfe["rows"]} == {upn} and "UPN" in dfe["matched_on"]
    assert dfe["recipient"] == "dfe" and dfe["legal_basis"] and dfe["run"]["run_id"] == result["run_id"]
    assert [r["run_id"] for r in dfe["sent_in_runs"]] == [result["run_id"]]
    aggregate = {a["name"] for a in document["aggregate_only"]}
    assert {"school_statistics", "early_years_children"} <= aggregate
    assert "ncmp_prevalence" not in aggregate or "ncmp" in records  # counted only where a dataset holds them
    assert document["summary"]["recipients"] == sorted({d["recipient"] for d in document["deliveries"]})


def test_a_delivery_without_any_number_is_searched_by_name_and_date_of_birth(run_copy):
    upn, surname, forename, born, _ = youth_support_pupil(run_copy)
    document = gather(run_copy.root, search(upn, None, None))
    [sent] = [d for d in document["deliveries"] if d["recipient"] == "youth_support"]
    assert sent["matched_on"] == ["Surname + Forename + DateOfBirth"]
    assert [(r["Surname"], r["Forename"], r["DateOfBirth"]) for r in sent["rows"]] == [(surname, forename, born.isoformat())]


def test_the_pseudonymised_ncmp_delivery_is_searched_with_the_key_or_reported_as_not_checked(run_copy, health_key, monkeypatch):
    upn = query(run_copy, "SELECT p.upn FROM staging.pupils p JOIN staging.ncmp n USING (upn) ORDER BY p.upn LIMIT 1")[0][0]
    document = gather(run_copy.root, search(upn, None, None))
    assert len(next(s for s in document["records"] if s["dataset"] == "ncmp")["rows"]) == 1
    health = next(d for d in document["deliveries"] if d["file"] == "04_deliveries/health/ncmp_pseudonymised.csv")
    assert [row["pseudo_id"] for row in health["rows"]] == [hmac.new(health_key, upn.encode(), hashlib.sha256).hexdigest()]
    assert health["matched_on"] == ["pseudo_id"] and "ncmp_prevalence" in {a["name"] for a in document["aggregate_only"]}

    monkeypatch.delenv("LARETURNS_KEY_HEALTH")
    keyless = gather(run_copy.root, search(upn, None, None))
    assert not [d for d in keyless["deliveries"] if d["recipient"] == "health"]
    [unchecked] = [n for n in keyless["not_checked"] if n["file"] == "04_deliveries/health/ncmp_pseudonymised.csv"]
    assert "LARETURNS_KEY_HEALTH" in unchecked["reason"] and "could not be checked" in unchecked["reason"]


def test_a_quarantined_row_is_reported_with_its_rule_and_raw_values(run_copy, census_run, small_clean):
    _, result = census_run
    upn = single_pupils(run_copy)[0][0]
    fresh_pupils_load(run_copy, small_clean, "test-broken", result["period"], broken_upn=upn)
    document = gather(run_copy.root, search(upn, None, None))
    [row] = document["quarantine"]
    assert row["run_id"] == "test-broken" and row["dataset"] == "pupils" and "PUP-DOB-FORMAT" in row["rule_ids"]
    assert row["fields"]["upn"] == upn and row["fields"]["date_of_birth"] == "31/02/2019"
    assert "pupils" not in {s["dataset"] for s in document["records"]}  # no longer staged


def test_surname_and_date_of_birth_find_the_same_pupil_in_any_case(run_copy):
    upn, surname, _, born, _ = nursery_pupil(run_copy)
    document = gather(run_copy.root, search(None, f" {surname.upper()} ", born.isoformat()))
    rows = [row for section in document["records"] for row in section["rows"]]
    assert upn in {row.get("upn") for row in rows}
    assert all(row["surname"].lower() == surname.lower() and row["date_of_birth"] == born.isoformat() for row in rows)
    assert "ey_census.xml" in {d["file"].split("/")[-1] for d in document["deliveries"]}
    assert any("more than one person" in note for note in document["notes"])


def test_the_cli_writes_a_static_report_and_prints_no_personal_data(run_copy, tmp_path):
    upn, surname, forename, born, _ = nursery_pupil(run_copy)
    folder = tmp_path / "sar"
    outcome = CliRunner().invoke(app, ["sar", "--out", str(run_copy.root), "--upn", upn, "--report", str(folder)])
    assert outcome.exit_code == 0, outcome.output
    for value in (upn, surname, forename, born.isoformat()):
        assert value not in outcome.output
    assert "records" in outcome.output and "delivered record" in outcome.output
    [page] = folder.glob("sar-*.html")
    [data] = folder.glob("sar-*.json")
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "src=" not in text.lower() and "http" not in text.lower()
    assert upn in text and surname in text  # the report itself is the answer to the request
    assert json.loads(data.read_text(encoding="utf-8"))["search"]["upn"] == upn
    assert page.stat().st_mode & 0o077 == 0 and upn not in page.name

    refused = CliRunner().invoke(app, ["sar", "--out", str(run_copy.root), "--upn", upn,
                                       "--report", str(run_copy.deliveries / "dfe")])
    assert refused.exit_code == 2 and "deliveries" in refused.output and upn not in refused.output
    assert not list(run_copy.deliveries.rglob("sar-*"))
    both = CliRunner().invoke(app, ["sar", "--out", str(run_copy.root), "--upn", upn, "--surname", surname,
                                    "--dob", born.isoformat(), "--report", str(folder)])
    assert both.exit_code == 2 and surname not in both.output


def test_a_correction_is_applied_recorded_reported_and_reapplied_after_a_reload(run_copy, census_run, small_clean, tmp_path):
    _, result = census_run
    upn, _, _, _, ethnicity = next(p for p in single_pupils(run_copy) if p[4] != "WBRI")
    corrections = tmp_path / "corrections.csv"
    corrections.write_text(HEADER + f"pupils,upn,{upn},ethnicity,wbri,parent's request of 3 March\n", encoding="utf-8")
    outcome = CliRunner().invoke(app, ["rectify", "--out", str(run_copy.root), str(corrections)])
    assert outcome.exit_code == 0, outcome.output
    assert upn not in outcome.output and "pupils.ethnicity (1)" in outcome.output
    assert query(run_copy, "SELECT ethnicity FROM staging.pupils WHERE upn = ?", [upn]) == [("WBRI",)]
    recorded = query(run_copy, 'SELECT dataset, key_column, key_value, "column", old_value, new_value, reason '
                               "FROM audit.rectifications")
    assert recorded == [("pupils", "upn", upn, "ethnicity", ethnicity, "WBRI", "parent's request of 3 March")]

    entries = file_entries(run_copy.ledger)
    assert entries[-1]["kind"] == "rectification" and not chain_problems(entries)
    assert entries[-1]["body"]["changes"] == [{"dataset": "pupils", "column": "ethnicity", "count": 1}]
    line = run_copy.ledger.read_text(encoding="utf-8").splitlines()[-1]
    assert upn not in line and ethnicity not in line and "WBRI" not in line
    with open_warehouse(run_copy.warehouse) as connection:
        assert [e["entry_hash"] for e in warehouse_entries(connection)] == [e["entry_hash"] for e in entries]

    again = CliRunner().invoke(app, ["rectify", "--out", str(run_copy.root), str(corrections)])
    assert again.exit_code == 2 and "RECT-UNCHANGED" in " ".join(again.output.split())
    [made] = gather(run_copy.root, search(upn, None, None))["rectifications"]
    assert (made["old_value"], made["new_value"], made["ledger_entry"]) == (ethnicity, "WBRI", entries[-1]["seq"])

    fresh_pupils_load(run_copy, small_clean, "test-reload", result["period"])
    assert query(run_copy, "SELECT ethnicity FROM staging.pupils WHERE upn = ?", [upn]) == [(ethnicity,)]
    with open_warehouse(run_copy.warehouse) as connection:
        assert reapply_rectifications(connection) == 1
        assert reapply_rectifications(connection) == 0  # already there: replaying is idempotent
    assert query(run_copy, "SELECT ethnicity FROM staging.pupils WHERE upn = ?", [upn]) == [("WBRI",)]

    fresh_pupils_load(run_copy, small_clean, "test-gone", result["period"], broken_upn=upn)  # their row is quarantined
    with open_warehouse(run_copy.warehouse) as connection:
        assert reapply_rectifications(connection) == 0  # skipped, and the run goes on
    assert query(run_copy, "SELECT count(*) FROM audit.rectifications") == [(1,)]


def test_an_extract_made_after_a_correction_carries_it(run_copy, census_run, tmp_path):
    _, result = census_run
    upn, surname, forename, born, _ = youth_support_pupil(run_copy)
    corrections = tmp_path / "corrections.csv"
    corrections.write_text(HEADER + f"pupils,upn,{upn},forename,Corrected,preferred legal name\n", encoding="utf-8")
    assert CliRunner().invoke(app, ["rectify", "--out", str(run_copy.root), str(corrections)]).exit_code == 0
    recipients = load_recipients()
    extract = load_extract(extract_spec("youth_support"), recipients)
    rows = extract_rows(staged_frames(run_copy.warehouse, ("pupils",))["pupils"], extract,
                        recipients["youth_support"].entitlement, Term.parse(result["period"]))
    mine = rows.filter((pl.col("Surname") == surname) & (pl.col("DateOfBirth").cast(pl.String) == born.isoformat()))
    assert "Corrected" in mine["Forename"].to_list() and forename not in mine["Forename"].to_list()
    [sent] = [d for d in gather(run_copy.root, search(upn, None, None))["deliveries"] if d["recipient"] == "youth_support"]
    assert [r["Forename"] for r in sent["rows"]] == [forename]  # the file sent before the correction still counts


@pytest.mark.parametrize("bad, rule", [
    ("pupils,upn,{upn},ethnicty,WBRI,typo in the column", "RECT-COLUMN"),
    ("pupils,upn,{upn},source_row,7,bookkeeping", "RECT-COLUMN"),
    ("pupils,upn,A999999999999,ethnicity,WBRI,no such pupil", "RECT-KEY"),
    ("pupils,upn,{upn},ethnicity,NOTACODE,not in the code set", "PUP-ETHNICITY-CODE"),
    ("pupils,upn,{upn},date_of_birth,31/02/2019,not a date", "PUP-DOB-FORMAT"),
    ("pupils,upn,{upn},upn,{other},another pupil's UPN", "PUP-UPN-DUPLICATE"),
    ("pupils,upn,{upn},ethnicity,WBRI,", "RECT-REASON"),
    ("pupil,upn,{upn},ethnicity,WBRI,no such dataset", "RECT-DATASET"),
    ("pupils,surname,Smith,ethnicity,WBRI,keyed on a name that could be someone else's next year", "RECT-KEY"),
    ('pupils,upn,{upn},forename,"=HYPERLINK(""http://example.org"",""click"")",a formula', "PUP-FORENAME-FORMULA"),
    ("pupils,upn,{upn},address_line1,@SUM(1+1),a formula", "PUP-ADDRESS-FORMULA"),
])
def test_a_bad_correction_is_refused_naming_its_row_and_rule_and_nothing_is_applied(run_copy, tmp_path, bad, rule):
    first, second, third = single_pupils(run_copy)[:3]
    before = query(run_copy, "SELECT upn, ethnicity FROM staging.pupils ORDER BY source_row")
    corrections = tmp_path / "fixes.csv"
    good = f"pupils,upn,{first[0]},ethnicity,{'WIRT' if first[4] != 'WIRT' else 'WBRI'},a valid change\n"
    corrections.write_text(HEADER + good + bad.format(upn=second[0], other=third[0]) + "\n", encoding="utf-8")
    outcome = CliRunner().invoke(app, ["rectify", "--out", str(run_copy.root), str(corrections)])
    said = " ".join(outcome.output.split())
    assert outcome.exit_code == 2, said
    assert "fixes.csv" in said and "row 2" in said and rule in said and "nothing was applied" in said
    assert second[0] not in said and third[0] not in said
    assert query(run_copy, "SELECT upn, ethnicity FROM staging.pupils ORDER BY source_row") == before
    assert query(run_copy, "SELECT count(*) FROM audit.rectifications") == [(0,)]
    assert [e["kind"] for e in file_entries(run_copy.ledger)] == ["run", "delivered"]


def test_the_next_run_reloads_the_exports_and_still_delivers_the_correction(run_copy, small_clean, tmp_path):
    """The exports still hold the old value until the MIS is fixed; the flow re-applies recorded corrections."""
    from pipelines.flows.returns import youth_support_return

    upn, surname, forename, born, _ = youth_support_pupil(run_copy)
    corrections = tmp_path / "corrections.csv"
    corrections.write_text(HEADER + f"pupils,upn,{upn},forename,Corrected,preferred legal name\n", encoding="utf-8")
    assert CliRunner().invoke(app, ["rectify", "--out", str(run_copy.root), str(corrections)]).exit_code == 0
    youth_support_return(small_clean, run_copy.root, "2026-spring")
    sent = delivered(run_copy, "youth_support", "youth_support")
    mine = sent.filter((pl.col("Surname") == surname) & (pl.col("DateOfBirth") == born.isoformat()))
    assert mine["Forename"].to_list() == ["Corrected"]
    kinds = [e["kind"] for e in file_entries(run_copy.ledger)]
    assert kinds[-3:] == ["rectification", "run", "delivered"] and not chain_problems(file_entries(run_copy.ledger))
    assert file_entries(run_copy.ledger)[-2]["body"]["corrections_reapplied"] == 1


def test_a_newer_value_from_the_export_wins_over_an_old_correction(run_copy, tmp_path):
    """Re-applying only where the export still holds the value the correction replaced: once the MIS holds
    something else (fixed at source, or changed since), the correction is not forced back."""
    upn = single_pupils(run_copy)[0][0]
    corrections = tmp_path / "corrections.csv"
    corrections.write_text(HEADER + f"pupils,upn,{upn},forename,Corrected,preferred name\n", encoding="utf-8")
    assert CliRunner().invoke(app, ["rectify", "--out", str(run_copy.root), str(corrections)]).exit_code == 0
    with open_warehouse(run_copy.warehouse) as connection:
        connection.execute("UPDATE staging.pupils SET forename = 'Newer' WHERE upn = ?", [upn])  # as a reload would
        assert reapply_rectifications(connection) == 0
        assert connection.execute("SELECT forename FROM staging.pupils WHERE upn = ?", [upn]).fetchall() == [("Newer",)]


def test_a_person_no_longer_staged_is_still_found_in_a_file_sent_earlier(run_copy):
    """After a purge (or a reload without them) only the search itself can find what was sent about them."""
    upn, surname, _, born, _ = youth_support_pupil(run_copy)
    with open_warehouse(run_copy.warehouse) as connection:
        connection.execute("DELETE FROM staging.pupils WHERE upn = ?", [upn])
    document = gather(run_copy.root, search(None, surname.lower(), born.isoformat()))
    sent = [d for d in document["deliveries"] if d["recipient"] == "youth_support"]
    assert sent and any("(as searched)" in m for d in sent for m in d["matched_on"])
