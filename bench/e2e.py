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

from bench.harness import Measurement, emit, peak_rss_mb  # noqa: E402
from pipelines.flows import census_return  # noqa: E402
from pipelines.synthetic.generate import generate  # noqa: E402
from pipelines.validate import run_validation  # noqa: E402


def main(scale: str, work: Path) -> None:
    inputs = work / "input"
    if not (inputs / "pupils.csv").exists():
        generate(inputs, seed=1, scale=scale, fault_rate=0.02)
    started = time.perf_counter()
    result = census_return(inputs, work / "run", "2026-spring")
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    validated = run_validation(inputs, work / "baseline", 2025)
    baseline = time.perf_counter() - started
    rows = sum(r.reconciliation.rows_read for r in validated.results)
    emit(Measurement(f"end to end ({scale})", rows, seconds, peak_rss_mb(), "validation alone", baseline,
                     {"publications": len(result["publications"]), "recipients": len(result["delivered"]),
                      "audit_passed": result["audit_passed"],
                      "cells": sum(p["cells"] for p in result["publications"])}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
