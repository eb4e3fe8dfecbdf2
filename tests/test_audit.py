"""lareturns audit: an auditor's check of a run that trusts nothing the pipeline says about itself.

Each test tampers with a copy of the one census run (the shared fixture stays untouched) the way a careless or
dishonest hand might, and expects the audit to catch it.
"""

from __future__ import annotations

import base64
import json
import shutil

import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from outputs.files import file_sha256
from pipelines.assurance.verify import attack_findings, hash_findings, ledger_findings
from pipelines.cli import app
from pipelines.store.ledger import append, chain_problems, entry_hash, file_entries
from pipelines.store.warehouse import open_warehouse
from schemas.catalog import RunPaths


@pytest.fixture
def run_copy(census_run, tmp_path) -> RunPaths:
    out, _ = census_run
    shutil.copytree(out, tmp_path / "run")
    return RunPaths(tmp_path / "run")


def failed(findings) -> set[str]:
    return {f.check for f in findings if not f.passed}


def printed_findings(output: str) -> dict[str, tuple[str, str]]:
    """check -> (result, detail) from the printed findings table, wrapped rows joined."""
    rows: dict[str, tuple[str, str]] = {}
    check = ""
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 3:
            continue
        if cells[0] and cells[1]:
            check = cells[0]
            rows[check] = (cells[1], cells[2])
        elif check:
            result, detail = rows[check]
            rows[check] = (result, f"{detail} {cells[2]}".strip())
    return rows


def test_an_untouched_run_passes_every_check_and_a_changed_byte_fails_it(run_copy, ledger_public_key):
    passed = CliRunner().invoke(app, ["audit", str(run_copy.root), "--public-key", str(ledger_public_key)])
    assert passed.exit_code == 0, passed.output
    assert "all" in passed.output and "checks passed" in passed.output
    target = run_copy.deliveries / "dfe" / "nccis.xml"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    target.write_bytes(bytes(data))
    tampered = CliRunner().invoke(app, ["audit", str(run_copy.root), "--public-key", str(ledger_public_key)])
    assert tampered.exit_code == 1
    assert "FAIL" in tampered.output and "04_deliveries/dfe/nccis.xml" in tampered.output


@pytest.mark.parametrize("recipient", ["publication", "health", "ey_funding"])
def test_a_one_byte_change_in_any_delivery_is_caught(run_copy, recipient):
    for target in sorted((run_copy.deliveries / recipient).rglob("*")):
        if target.is_file():
            original = target.read_bytes()
            target.write_bytes(original[:-1] + bytes([original[-1] ^ 0x20]))
            assert "file hashes match the ledger" in failed(hash_findings(run_copy, ledger_findings(run_copy)[1])), target
            target.write_bytes(original)
    assert not failed(hash_findings(run_copy, ledger_findings(run_copy)[1]))


def test_a_hand_edited_suppressed_cell_is_caught_even_with_a_forged_manifest(run_copy):
    """The forger writes a primary cell's true count over its `c` and re-hashes the manifest to match."""
    cells = pl.read_parquet(run_copy.protected / "school_statistics.decisions.parquet")
    primary = cells.filter((pl.col("status") == "primary") & (pl.col("area").str.len_chars() == 6)
                           & pl.col("tables").list.contains("pupils_by_sex") & (pl.col("sex") != "Total")).row(0, named=True)
    folder = run_copy.deliveries / "publication"
    data = pl.read_csv(folder / "pupils_by_sex.csv", infer_schema=False)
    edited = data.with_columns(
        pl.when((pl.col("school_urn") == primary["area"]) & (pl.col("sex") == primary["sex"]))
        .then(pl.lit(str(primary["value"]))).otherwise(pl.col("pupil_count")).alias("pupil_count"))
    assert (edited["pupil_count"] != data["pupil_count"]).sum() == 1
    edited.write_csv(folder / "pupils_by_sex.csv")
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        entry["sha256"] = file_sha256(folder / entry["file"])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    problems = failed(hash_findings(run_copy, ledger_findings(run_copy)[1]) + attack_findings(run_copy))
    assert problems == {"file hashes match the ledger"}  # the manifest agrees with the forgery; the ledger does not


def test_a_removed_ledger_entry_breaks_the_chain(run_copy):
    with open_warehouse(run_copy.warehouse) as connection:
        append(connection, run_copy.ledger, "note", {"what": "a second entry, so that one can go missing"})
    assert not failed(ledger_findings(run_copy)[0])
    lines = run_copy.ledger.read_text().splitlines()
    run_copy.ledger.write_text(lines[1] + "\n")  # the first entry removed from the exported copy
    assert {"ledger chain (ledger.jsonl)", "ledger copies agree"} <= failed(ledger_findings(run_copy)[0])
    problems = chain_problems(file_entries(run_copy.ledger))
    assert any("missing or out of order" in p for p in problems) and any("does not follow" in p for p in problems)
    with open_warehouse(run_copy.warehouse) as connection:  # removed from both copies: still caught
        connection.execute("DELETE FROM audit.ledger WHERE seq = 1")
    assert "ledger chain (warehouse)" in failed(ledger_findings(run_copy)[0])


def test_entries_cut_from_the_end_of_both_copies_are_caught_by_the_recorded_hash(run_copy, census_run, ledger_public_key):
    _, result = census_run
    with open_warehouse(run_copy.warehouse) as connection:
        later = append(connection, run_copy.ledger, "note", {"what": "a later entry"})
        connection.execute("DELETE FROM audit.ledger WHERE seq = ?", [later["seq"]])
    run_copy.ledger.write_text("".join(line + "\n" for line in run_copy.ledger.read_text().splitlines()[:2]))
    assert not failed(ledger_findings(run_copy)[0])  # a shorter chain is still whole...
    outcome = CliRunner().invoke(app, ["audit", str(run_copy.root), "--expect-entry", result["ledger_hash"], "--public-key",
                                       str(ledger_public_key)])
    assert outcome.exit_code == 0, outcome.output  # ...and still holds the run's entry
    with open_warehouse(run_copy.warehouse) as connection:
        later = append(connection, run_copy.ledger, "note", {"what": "recorded by the auditor"})
        connection.execute("DELETE FROM audit.ledger WHERE seq = ?", [later["seq"]])
    run_copy.ledger.write_text("".join(line + "\n" for line in run_copy.ledger.read_text().splitlines()[:-1]))
    outcome = CliRunner().invoke(app, ["audit", str(run_copy.root), "--expect-entry", later["entry_hash"]])
    assert outcome.exit_code == 1 and "ledger holds the recorded entry" in " ".join(outcome.output.split())


def test_an_edited_ledger_entry_is_caught(run_copy):
    entries = [json.loads(line) for line in run_copy.ledger.read_text().splitlines()]
    entries[0]["body"]["period"] = "2025-spring"  # rewriting history
    run_copy.ledger.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert any("changed after it was written" in p for p in chain_problems(file_entries(run_copy.ledger)))
    assert "ledger chain (ledger.jsonl)" in failed(ledger_findings(run_copy)[0])


def test_the_run_entry_names_inputs_config_and_outputs_by_hash_only(census_run):
    out, result = census_run
    run_entry, closing = file_entries(RunPaths(out).ledger)[-2:]
    assert closing["kind"] == "delivered" and closing["seq"] == result["ledger_entry"]
    assert closing["body"] == {"run_id": result["run_id"], "run_entry": run_entry["seq"]}
    entry = run_entry
    assert entry["kind"] == "run" and entry["body"]["run_id"] == result["run_id"] and entry["seq"] == result["run_entry"]
    assert {i["dataset"] for i in entry["body"]["inputs"]} >= {"pupils", "early_years", "destinations", "ncmp"}
    assert "policies/disclosure.toml" in entry["body"]["config"] and "policies/recipients.toml" in entry["body"]["config"]
    assert "04_deliveries/dfe/manifest.json" in entry["body"]["outputs"] and "05_report/auditor_report.html" in entry["body"]["outputs"]


def forged_entry(entries: list[dict], key: Ed25519PrivateKey | None) -> dict:
    """A "run" entry chained correctly onto the last one, signed with the forger's own key (or not at all)."""
    entry = {"seq": entries[-1]["seq"] + 1, "kind": "run", "at": "2026-12-02T00:00:00+00:00",
             "prev_hash": entries[-1]["entry_hash"], "body": {"run_id": "forged", "outputs": {}}}
    entry["entry_hash"] = entry_hash(entry)
    if key is not None:
        entry["signature"] = base64.b64encode(key.sign(entry["entry_hash"].encode())).decode()
    return entry


@pytest.mark.parametrize("signed", [False, True])
def test_an_appended_entry_chained_correctly_but_not_signed_by_the_ledgers_key_fails(run_copy, ledger_public_key, signed):
    """The forger can write the run folder (both copies of the chain) but does not have the ledger's private key."""
    entries = file_entries(run_copy.ledger)
    entry = forged_entry(entries, Ed25519PrivateKey.generate() if signed else None)
    with run_copy.ledger.open("a") as handle:
        handle.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
    with open_warehouse(run_copy.warehouse) as connection:
        connection.execute("INSERT INTO audit.ledger VALUES (?, ?, ?)", [entry["seq"], json.dumps(entry), entry["entry_hash"]])
    assert not failed(ledger_findings(run_copy)[0])  # the chain itself is whole, both copies agree
    outcome = CliRunner().invoke(app, ["audit", str(run_copy.root), "--public-key", str(ledger_public_key),
                                       "--expect-entry", entry["entry_hash"]])
    assert outcome.exit_code == 1 and "Traceback" not in outcome.output
    assert printed_findings(outcome.output)["ledger signatures"] == ("FAIL", f"entry {entry['seq']}: not signed by the ledger's key")


def test_without_the_public_key_the_signatures_are_reported_unchecked(run_copy):
    outcome = CliRunner().invoke(app, ["audit", str(run_copy.root)])
    assert outcome.exit_code == 1
    assert printed_findings(outcome.output)["ledger signatures"] == (
        "FAIL", "not checked: give the ledger's public key with --public-key")


def swap_two_publication_files(paths: RunPaths) -> None:
    first, second = paths.delivery("publication") / "pupils_by_sex.csv", paths.delivery("publication") / "pupils_by_ethnicity.csv"
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)


def edit_a_published_count(paths: RunPaths) -> None:
    target = paths.delivery("publication") / "pupils_by_sex.csv"
    data = pl.read_csv(target, infer_schema=False)
    shown = data["pupil_count"].str.contains(r"^\d+$")
    row = int(shown.arg_true()[0])
    data = data.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(str(int(data["pupil_count"][row]) + 1)))
                             .otherwise(pl.col("pupil_count")).alias("pupil_count"))
    data.write_csv(target)


def remove_a_file(paths: RunPaths) -> None:
    (paths.delivery("publication") / "pupils_by_sex.meta.csv").unlink()


def add_a_file(paths: RunPaths) -> None:
    (paths.delivery("publication") / "extra.csv").write_text("time_period,pupil_count\n202526,7\n")


def edit_the_ledger(paths: RunPaths) -> None:
    lines = paths.ledger.read_text().splitlines()
    lines[0] = lines[0].replace('"2026-spring"', '"2025-spring"')
    paths.ledger.write_text("\n".join(lines) + "\n")


def edit_a_decision_record(paths: RunPaths) -> None:
    target = paths.decisions("school_statistics")
    data = pl.read_parquet(target)
    data.with_columns(pl.col("value") + 1).write_parquet(target)


def cut_the_ledger_file(paths: RunPaths) -> None:
    paths.ledger.write_text(paths.ledger.read_text()[:-40])


@pytest.mark.parametrize(("tamper", "failing"), [
    (swap_two_publication_files, {"file hashes match the ledger"}),
    (edit_a_published_count, {"file hashes match the ledger"}),
    (remove_a_file, {"every recorded file is there"}),
    (add_a_file, {"no unrecorded file"}),
    (edit_the_ledger, {"ledger chain (ledger.jsonl)"}),
    (cut_the_ledger_file, {"ledger chain (ledger.jsonl)", "ledger copies agree", "ledger signatures"}),
    (edit_a_decision_record, {"decision records are the delivered run's"}),
])
def test_every_tampering_case_ends_in_its_findings_and_exit_1(run_copy, ledger_public_key, tamper, failing):
    tamper(run_copy)
    outcome = CliRunner().invoke(app, ["audit", str(run_copy.root), "--public-key", str(ledger_public_key)],
                                 env={"COLUMNS": "250"})
    assert outcome.exit_code == 1 and "Traceback" not in outcome.output, outcome.output
    found = printed_findings(outcome.output)
    assert failing <= {check for check, (result, _) in found.items() if result == "FAIL"}, found
