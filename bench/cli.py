"""Command start-up: python -m bench.cli SCALE OUT_DIR (the scale is unused: start-up does not depend on it).

Each command runs as a fresh process, as an analyst starts it, the median of five. Baseline, in the same
harness: a bare interpreter (`python -c pass`), what any Python command costs before it imports anything.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import Measurement, emit

RUNS = 5


def median_seconds(command: list[str]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = out / "tiny.csv"
    table.write_text("school,sex\nA,F\nA,M\nB,F\nB,M\nB,F\n")
    command = [str(Path(sys.executable).parent / "lareturns")]  # the installed command, as an analyst runs it
    bare = median_seconds([sys.executable, "-c", "pass"])
    for name, target, args in (("lareturns --help", 0.5, ["--help"]),
                               ("lareturns protect (a 5-row table)", 1.0,
                                ["protect", str(table), "--dims", "school,sex", "--out", str(out / "tiny_out.csv")])):
        seconds = median_seconds(command + args)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # of the commands run so far
        emit(Measurement(name, 1, seconds, peak, "python -c pass", bare, {"runs": RUNS, "target_s": target}))


if __name__ == "__main__":
    main(Path(sys.argv[2]))
