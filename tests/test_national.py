"""A national run: real `lareturns run-national` processes fanning LA census flows out on a local Dask cluster of
two workers through Prefect, one LA's exports broken, then that LA alone rerun."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
from prefect.settings import PREFECT_API_URL

from pipelines.synthetic.generate import generate
from schemas.catalog import NationalPaths, RunPaths

RUN = [sys.executable, "-c", "from pipelines.cli import app; app()", "run-national", "--period", "2026-spring",
       "--workers", "2"]
BROKEN = "421"  # not an LA of the plan: a folder holding a copy of Scilly's exports with its pupils file broken


def run_national(paths: NationalPaths, *extra: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200"}
    return subprocess.run([*RUN, "--input", str(paths.inputs), "--out", str(paths.root), *extra], env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def task_runs(name: str, final: str) -> list:
    """The task runs of that name once the server has recorded their final state (it records states from events,
    shortly after the run ends)."""
    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=[name])))
        if (runs and all(r.state and r.state.type.value == final for r in runs)) or time.monotonic() > deadline:
            return runs
        time.sleep(1)


def ledger_digest(folder: Path) -> str:
    return hashlib.sha256(RunPaths(folder).ledger.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_national_run_delivers_every_la_it_can_and_reruns_only_the_one_that_failed(prefect_harness, health_key,
                                                                                       tmp_path):
    paths = NationalPaths(tmp_path / "input", tmp_path / "out")
    generate(paths.inputs, seed=3, scale="national", fault_rate=0.02, by_la=True, only=("420", "805"))
    shutil.copytree(paths.la_input("420"), paths.la_input(BROKEN))
    pupils = paths.la_input(BROKEN) / "pupils.csv"
    good_pupils = pupils.read_bytes()
    pupils.write_text("not,the,pupils,export\n1,2,3,4\n")

    first = run_national(paths)
    output = first.stdout + first.stderr
    assert first.returncode == 2, output
    assert "Traceback" not in output
    assert f"failed: LA {BROKEN}: pupils.csv: missing required columns" in output
    assert f"Rerun only those with --la {BROKEN}" in output
    summary = json.loads(paths.summary.read_text())
    assert [item["la"] for item in summary["las"]] == ["420", "805"]
    assert all(item["audit_passed"] for item in summary["las"])
    assert [item["la"] for item in summary["failed"]] == [BROKEN]
    for la in ("420", "805"):
        manifest = json.loads((RunPaths(paths.la_run(la)).deliveries / "dfe" / "manifest.json").read_text())
        assert manifest["run"]["run_id"] == next(i["run_id"] for i in summary["las"] if i["la"] == la)
    assert not (RunPaths(paths.la_run(BROKEN)).deliveries).exists()
    failed = task_runs(f"census {BROKEN}", "FAILED")
    assert [(run.state.type.value, run.run_count) for run in failed] == [("FAILED", 2)]
    assert all(run.state.type.value == "COMPLETED" for la in ("420", "805") for run in task_runs(f"census {la}", "COMPLETED"))

    delivered_before = {la: ledger_digest(paths.la_run(la)) for la in ("420", "805")}
    pupils.write_bytes(good_pupils)
    second = run_national(paths, "--la", BROKEN)
    assert second.returncode == 0, second.stdout + second.stderr
    summary = json.loads(paths.summary.read_text())
    assert [item["la"] for item in summary["las"]] == ["420", "421", "805"] and summary["failed"] == []
    assert {la: ledger_digest(paths.la_run(la)) for la in ("420", "805")} == delivered_before  # not rerun


def test_a_national_run_is_refused_in_one_line_for_an_la_it_does_not_hold(tmp_path):
    (tmp_path / "input" / "420").mkdir(parents=True)
    done = subprocess.run([*RUN, "--input", str(tmp_path / "input"), "--out", str(tmp_path / "out"), "--la", "805"],
                          capture_output=True, text=True, timeout=120, check=False, env=os.environ | {"COLUMNS": "250"})
    assert done.returncode == 2 and done.stdout.strip().splitlines() == [f"error: --la 805: no folder {tmp_path / 'input' / '805'}"]


def test_a_failed_las_report_line_is_lareturns_own_for_its_layout_contract_and_rectification_errors():
    """These messages name the file, row, rule or setting and never a row's value: the report shows them as they are,
    where an error of another kind is named only by its kind."""
    from pipelines.flows.national import failure_line
    from pipelines.governance.rectify import RectificationError
    from pipelines.nodes.dfe_xml import LayoutError
    from schemas.contract import ContractError

    for error in (LayoutError("the staged schools span 2 LAs; a return is made for one"),
                  ContractError("columns.upn.type: 'txt' is not one of date, flag"),
                  RectificationError("corrections.csv: row 3: no such column; nothing was applied")):
        assert failure_line(error) == str(error)
    assert failure_line(KeyError("a value")) == "KeyError (see the LA's flow run in Prefect)"
