"""Crash safety: a real `lareturns run` killed at each phase of its commit, and by a plain kill -9.

Each killed run works in a copy of the session's delivered census run (so there is an earlier delivery to keep),
as a separate process on the session's Prefect server. LARETURNS_FAULT_AT names the phase at which the process
kills itself with SIGKILL (outputs/files.py fault_point): no clean-up runs, as in a real crash. The audit must report
what the crash left, and recovery (what the next run and `lareturns retention` do first) must leave a folder that
passes the audit, with nothing left over.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.flows.returns import census_return
from pipelines.store.commit import Leftovers, leftovers, pending_run, recovered
from pipelines.store.ledger import file_entries
from schemas.catalog import RunPaths
from tests.test_audit import printed_findings

RUN = [sys.executable, "-c", "from pipelines.cli import app; app()", "run", "census", "--period", "2026-spring"]


@pytest.fixture
def earlier(census_run, tmp_path) -> RunPaths:
    """A run folder holding one delivered run."""
    out, _ = census_run
    shutil.copytree(out, tmp_path / "run")
    return RunPaths(tmp_path / "run")


def run_process(small_clean: Path, paths: RunPaths, fault: str | None) -> subprocess.Popen:
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200"}
    env.pop("LARETURNS_FAULT_AT", None)
    if fault:
        env["LARETURNS_FAULT_AT"] = fault
    return subprocess.Popen([*RUN, "--input", str(small_clean), "--out", str(paths.root)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def audit(paths: RunPaths, public_key: Path) -> tuple[int, dict[str, tuple[str, str]]]:
    outcome = CliRunner().invoke(app, ["audit", str(paths.root), "--public-key", str(public_key)], env={"COLUMNS": "250"})
    assert "Traceback" not in outcome.output
    return outcome.exit_code, printed_findings(outcome.output)


def kinds(paths: RunPaths) -> list[str]:
    return [e["kind"] for e in file_entries(paths.ledger)]


# phase -> (the ledger's kinds after the kill, whether the delivery is pending, checks the audit fails)
PHASES = {
    "staged": (["run", "delivered"], False, {"nothing left by an interrupted run", "decision records are the delivered run's"}),
    "ledger-copy": (["run", "delivered"], True, {"ledger copies agree", "no interrupted delivery",
                                                 "file hashes match the ledger"}),
    "pending": (["run", "delivered", "run"], True, {"no interrupted delivery", "file hashes match the ledger"}),
    "moving": (["run", "delivered", "run"], True, {"no interrupted delivery", "file hashes match the ledger"}),
    "moved": (["run", "delivered", "run"], True, {"no interrupted delivery"}),
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_run_killed_at_each_phase_is_reported_and_recovered(earlier, small_clean, ledger_public_key, phase):
    before = {p: p.read_bytes() for p in sorted(earlier.deliveries.rglob("*")) if p.is_file()}
    killed = run_process(small_clean, earlier, phase)
    output, _ = killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL, output[-3000:]
    file_kinds, pending, failing = PHASES[phase]
    assert kinds(earlier) == file_kinds
    found = leftovers(earlier)
    assert (found.pending is not None) == pending  # at ledger-copy, the entry is in the warehouse's copy only
    code, findings = audit(earlier, ledger_public_key)
    assert code == 1 and {check for check, (result, _) in findings.items() if result == "FAIL"} == failing, findings
    if phase == "staged":  # nothing delivered: the earlier delivery is untouched, the staging folder is an orphan
        assert {p: p.read_bytes() for p in sorted(earlier.deliveries.rglob("*")) if p.is_file()} == before
        assert any(p.name.startswith(".staging-") for p in found.orphans)
        assert any(p.parent == earlier.kept_counts for p in found.orphans)  # counts kept for an unrecorded run
    said = recovered(earlier)
    assert said and all("Traceback" not in line for line in said)
    if pending:
        assert kinds(earlier)[-2:] == ["run", "delivered"] and file_entries(earlier.ledger)[-1]["body"]["by"] == "recovery"
        assert any("its interrupted delivery completed" in line for line in said), said
    else:
        assert kinds(earlier) == file_kinds and said[-1].startswith("decision records put back from run ")
        assert all(line.startswith("removed, left by an interrupted run") for line in said[:-1])
    assert not list(earlier.root.glob(".staging-*")) and leftovers(earlier) == Leftovers(None, ())
    code, findings = audit(earlier, ledger_public_key)
    assert code == 0, findings


def test_a_plain_kill_9_during_delivery_is_recovered_by_the_next_run(earlier, small_clean, ledger_public_key):
    process = run_process(small_clean, earlier, None)
    deadline = time.monotonic() + 600
    while not list(earlier.root.glob(".staging-*T*Z-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the delivery's staging folder is named after the run id (validation's is a uuid)
    assert process.poll() is None, "the run ended before its delivery was staged"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    code, findings = audit(earlier, ledger_public_key)
    assert code == 1 and findings["nothing left by an interrupted run"][0] == "FAIL"
    result = census_return(small_clean, earlier.root, "2026-spring")  # the next run recovers first
    assert any(line.startswith("removed, left by an interrupted run: .staging-20") for line in result["recovered"])
    assert not list(earlier.root.glob(".staging-*")) and pending_run(file_entries(earlier.ledger)) is None
    code, findings = audit(earlier, ledger_public_key)
    assert code == 0, findings


def test_retention_removes_what_an_interrupted_run_left(earlier, small_clean, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(small_clean, landing)
    orphan = earlier.root / ".staging-20260101T000000Z-abcdef" / "04_deliveries" / "youth_support"
    orphan.mkdir(parents=True)
    (orphan / "youth_support.csv").write_text("upn,forename\n")
    stale = landing / f".pupils.csv.{'0' * 32}.partial"
    stale.write_text("upn\n")
    dry = CliRunner().invoke(app, ["retention", "--input", str(landing), "--out", str(earlier.root), "--dry-run"],
                             env={"COLUMNS": "250"})
    assert dry.exit_code == 0, dry.output
    assert "found: left by an interrupted run: .staging-20260101T000000Z-abcdef" in dry.output
    assert f"found: left by an interrupted run: {stale.name} (in the landing folder)" in dry.output
    assert orphan.exists() and stale.exists()
    done = CliRunner().invoke(app, ["retention", "--input", str(landing), "--out", str(earlier.root)], env={"COLUMNS": "250"})
    assert done.exit_code == 0, done.output
    assert "removed, left by an interrupted run: .staging-20260101T000000Z-abcdef" in done.output
    assert f"removed, left by an interrupted run: {stale.name}" in done.output
    assert not orphan.parent.parent.exists() and not stale.exists()


def test_a_second_process_in_the_same_run_folder_stops_at_once(earlier):
    from pipelines.store.commit import RunFolderBusy, run_folder_lock

    with run_folder_lock(earlier):
        with pytest.raises(RunFolderBusy, match="another run or purge is working in this folder"):
            with run_folder_lock(earlier):
                pass


def test_a_delivery_whose_staged_files_no_longer_match_is_abandoned_and_nothing_is_moved(
        earlier, small_clean, ledger_public_key):
    before = {p: p.read_bytes() for p in sorted(earlier.deliveries.rglob("*")) if p.is_file()}
    killed = run_process(small_clean, earlier, "pending")
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    staging = next(earlier.root.glob(".staging-*T*Z-*"))
    next(p for p in sorted((staging / "04_deliveries").rglob("*.csv"))).unlink()  # the staged delivery is incomplete
    said = recovered(earlier)
    assert any("could not be completed (1 files differ from its ledger entry); recorded as abandoned" in line for line in said)
    assert kinds(earlier)[-2:] == ["run", "abandoned"] and not staging.exists()
    assert {p: p.read_bytes() for p in sorted(earlier.deliveries.rglob("*")) if p.is_file()} == before
    code, findings = audit(earlier, ledger_public_key)  # the earlier delivery, still in place, is what is audited
    assert code == 0, findings


def test_validation_staging_left_by_a_kill_is_reported_and_removed(earlier, ledger_public_key):
    orphan = earlier.validated / ".staging-0123456789abcdef0123456789abcdef" / "quarantine"
    orphan.mkdir(parents=True)
    (orphan / "pupils.csv").write_text("source_row,upn\n1,A\n")
    code, findings = audit(earlier, ledger_public_key)
    assert code == 1 and findings["nothing left by an interrupted run"][0] == "FAIL"
    assert recovered(earlier) == ["removed, left by an interrupted run: 01_validated/.staging-0123456789abcdef0123456789abcdef"]
    assert audit(earlier, ledger_public_key)[0] == 0
