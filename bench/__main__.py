"""make bench: every scenario in its own process (so peak memory is its own), then one table.

BENCH_SCALES picks the scales (default "county,national"); BENCH_DIR is where data goes. `python -m bench national`
(make bench-national) runs the national Dask run alone (bench/national.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

SCALES = os.environ.get("BENCH_SCALES", "county,national").split(",")
WORK = Path(os.environ.get("BENCH_DIR", "out/bench"))


def scenarios() -> list[list[str]]:
    if sys.argv[1:] == ["national"]:
        return [[sys.executable, "-m", "bench.national", str(WORK / "national")]]
    runs = [("cli", "county")] + [(kind, scale) for kind in ("generator", "validation", "sdc", "release", "e2e")
                                  for scale in SCALES if kind not in ("sdc", "release") or scale == "county"]
    if ("release", "county") in runs:  # and at the size where per-population protection was first undone
        runs.insert(runs.index(("release", "county")) + 1, ("release", "8000"))
    return [[sys.executable, "-m", f"bench.{kind}", scale, str(WORK / f"{kind}-{scale}")] for kind, scale in runs]


def run(command: list[str]) -> list[dict]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        Console(stderr=True).print(f"[red]{' '.join(command)} failed:[/]\n{done.stderr[-2000:]}")
        return []
    return [json.loads(line[6:]) for line in done.stdout.splitlines() if line.startswith("BENCH ")]


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    table = Table(title="lareturns benchmarks (this machine)")
    for column in ("scenario", "rows", "seconds", "rows/s", "peak MB", "baseline", "baseline s", "ratio", "notes"):
        table.add_column(column, justify="left" if column in ("scenario", "baseline", "notes") else "right")
    for command in scenarios():
        for m in run(command):
            ratio = m["seconds"] / m["baseline_seconds"] if m["baseline_seconds"] else float("nan")
            table.add_row(m["scenario"], f"{m['rows']:,}", f"{m['seconds']:.1f}", f"{m['rows'] / m['seconds']:,.0f}",
                          f"{m['peak_rss_mb']:,.0f}", m["baseline"], f"{m['baseline_seconds']:.1f}", f"{ratio:.2f}x",
                          json.dumps(m["extra"]))
        shutil.rmtree(command[-1], ignore_errors=True)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
