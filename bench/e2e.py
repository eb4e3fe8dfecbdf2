"""End to end: python -m bench.e2e SCALE WORK_DIR.

One county's whole census (every return, on one validation) as `lareturns run` does it: Prefect's embedded API,
the DuckDB warehouse, protection, deliveries, leak scans, manifests and the report. The baseline, in the same
process, is validation alone (reading, checking and staging the exports), the floor every return stands on; the
ratio says what the returns add to it. A national deployment runs one such flow per LA (Prefect's Dask task
runner over many machines), so its wall time is the per-LA figures summed over the LAs and divided by the
workers; the largest LA bounds the memory a worker needs.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")
os.environ.setdefault("LARETURNS_KEY_HEALTH", secrets.token_hex(32))
os.environ.setdefault("LARETURNS_LEDGER_KEY", secrets.token_hex(32))

from bench.harness import Measurement, emit, peak_rss_mb  # noqa: E402
from pipelines.flows.returns import census_return  # noqa: E402
from pipelines.flows.validate import run_validation  # noqa: E402
from pipelines.synthetic.generate import generate  # noqa: E402
from pipelines.synthetic.plan import plan_las  # noqa: E402
from schemas.calendar import Term  # noqa: E402


def largest_la() -> tuple[str, int, int]:
    """The largest LA of the national plan (its name and pupils) and the national pupil count."""
    las = plan_las("national", 1)
    biggest = max(las, key=lambda la: la.pupils)
    return biggest.la_name, biggest.pupils, sum(la.pupils for la in las)


def main(scale: str, work: Path) -> None:
    """scale: county, a number of pupils, or national (measured on its largest LA; see the module docstring)."""
    label, extra = scale, {}
    if scale == "national":
        name, pupils, national = largest_la()
        label, scale = f"national: one worker's largest LA ({name}, {pupils:,} pupils)", str(pupils)
        extra = {"national_pupils": national, "pupils_in_this_la": pupils}
    inputs = work / "input"
    if not (inputs / "pupils.csv").exists():
        generate(inputs, seed=1, scale=scale, fault_rate=0.02)
    started = time.perf_counter()
    result = census_return(inputs, work / "run", "2026-spring")
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    validated = run_validation(inputs, work / "baseline", Term(2025, "spring"))
    baseline = time.perf_counter() - started
    rows = sum(r.reconciliation.rows_read for r in validated.results)
    if extra:  # linear in pupils, each LA paying the flow's fixed start-up again: on the safe side
        extra["national_seconds_one_worker"] = round(seconds * extra["national_pupils"] / extra["pupils_in_this_la"])
    emit(Measurement(f"end to end ({label})", rows, seconds, peak_rss_mb(), "validation alone", baseline,
                     extra | {"publications": len(result["publications"]), "recipients": len(result["delivered"]),
                              "audit_passed": result["audit_passed"],
                              "cells": sum(p["cells"] for p in result["publications"])}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
