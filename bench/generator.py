"""Generator throughput at a scale: python -m bench.generator SCALE OUT_DIR.

Baseline, in the same process: streaming the very CSVs it wrote through polars again (read and write),
the cost of the bytes alone. The ratio says how much generating costs beyond moving that much data.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import polars as pl

from bench.harness import Measurement, emit, timed
from pipelines.synthetic.generate import generate


def main(scale: str, out: Path) -> None:
    summary = {}

    def run() -> int:
        summary["rows"] = generate(out, seed=1, scale=scale).rows
        return sum(summary["rows"].values())

    rows, seconds, peak = timed(run)

    def copy_csvs() -> int:
        with tempfile.TemporaryDirectory(dir=out) as scratch:
            for name in summary["rows"]:
                pl.scan_csv(out / name, infer_schema=False).sink_csv(Path(scratch) / name)
        return rows

    _, baseline_seconds, _ = timed(copy_csvs)
    megabytes = sum((out / name).stat().st_size for name in summary["rows"]) / 1e6
    emit(Measurement(f"generate --scale {scale}", rows, seconds, peak, "polars CSV read+write of the output",
                     baseline_seconds, {"output_mb": round(megabytes), "pupils": summary["rows"]["pupils.csv"]}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
