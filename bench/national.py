"""The national run on Dask: python -m bench.national WORK_DIR (make bench-national).

`lareturns run-national` in a process of its own over `generate --scale national --by-la`, on a local cluster of
BENCH_WORKERS workers (default 2). BENCH_NATIONAL_LAS=N runs N LAs spread over the plan by size instead of all 151,
and scales the wall time by pupils to the whole country (said in the figures). The baseline, from the same run, is
the LAs' census flows one after another: the sum of their own times.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import Measurement, emit, peak_rss_mb
from pipelines.synthetic.generate import generate
from pipelines.synthetic.plan import plan_las
from schemas.catalog import NationalPaths


def chosen_las(count: int | None) -> tuple[list[str], int, int]:
    """The old LA codes to run (every one, or `count` spread evenly over the plan sorted by size), their pupils and
    the country's."""
    plans = sorted(plan_las("national", 1), key=lambda p: p.pupils)
    picked = plans if count is None or count >= len(plans) else [plans[round(i * (len(plans) - 1) / max(count - 1, 1))]
                                                                   for i in range(count)]
    return sorted(p.old_la_code for p in picked), sum(p.pupils for p in picked), sum(p.pupils for p in plans)


def main(work: Path) -> None:
    count = int(os.environ["BENCH_NATIONAL_LAS"]) if os.environ.get("BENCH_NATIONAL_LAS") else None
    workers = os.environ.get("BENCH_WORKERS", "2")
    las, pupils, national = chosen_las(count)
    paths = NationalPaths(work / f"input-{len(las)}", work / "out")
    shutil.rmtree(paths.root, ignore_errors=True)  # the summary of this run alone
    if not paths.inputs.exists():
        generate(paths.inputs, seed=1, scale="national", fault_rate=0.02, by_la=True, only=tuple(las))
    env = os.environ | {"LARETURNS_KEY_HEALTH": os.environ.get("LARETURNS_KEY_HEALTH", secrets.token_hex(32)),
                        "LARETURNS_LEDGER_KEY": os.environ.get("LARETURNS_LEDGER_KEY", secrets.token_hex(32))}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "from pipelines.cli import app; app()", "run-national", "--input", str(paths.inputs), "--out",
                           str(paths.root), "--workers", workers, *(a for code in las for a in ("--la", code))], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if not paths.summary.exists():
        raise SystemExit(f"run-national wrote no summary:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    summary = json.loads(paths.summary.read_text())
    serial = sum(item["seconds"] for item in summary["las"])
    worker_peaks: dict[str, int] = {}
    for item in summary["las"]:
        worker_peaks[item["worker"]] = max(worker_peaks.get(item["worker"], 0), item["worker_peak_rss_mb"])
    extra = {"las": len(las), "delivered": len(summary["las"]), "failed": [f["la"] for f in summary["failed"]],
             "exit_code": done.returncode, "workers": int(workers), "pupils": pupils,
             "worker_peak_mb": sorted(worker_peaks.values()), "workers_total_peak_mb": sum(worker_peaks.values()),
             "largest_la_seconds": max((item["seconds"] for item in summary["las"]), default=0.0)}
    if count is not None and len(las) < 151:
        extra["national_minutes_scaled_by_pupils"] = round(seconds * national / pupils / 60, 1)
    emit(Measurement(f"national on Dask ({len(las)} LAs, {workers} workers)", pupils, seconds, peak_rss_mb(),
                     "the LAs one after another (sum of their flows)", serial, extra))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
