"""Release-wide protection against per-publication protection: python -m bench.release SCALE WORK_DIR.

The county's whole release (every publication of the census), validated once, then protected two ways in the
same process: one population at a time, as lareturns did before (the baseline), and release-wide, each problem
(populations joined by the relations their specs imply) as one model. For each: seconds and information loss
(secondary cells and their total value), and whether the independent intruder, given the relations, narrows a
protected cell below its protection level in the per-population pattern (the reason for paying the difference).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import polars as pl

from bench.harness import Measurement, emit, peak_rss_mb
from disclosure_control.audit import audit
from disclosure_control.primary import primary_cells
from disclosure_control.prior import required_protection
from disclosure_control.protect import protect
from disclosure_control.release import release_table
from pipelines.flows.validate import run_validation
from pipelines.nodes.release import build_release
from pipelines.store.warehouse import staged_frames
from pipelines.synthetic.generate import generate
from schemas.calendar import Term
from schemas.catalog import RETURN_NAMES
from schemas.config import load_run_config

HIDDEN = ("primary", "secondary")


def loss(cells: pl.DataFrame) -> tuple[int, float]:
    secondary = cells.filter(pl.col("status") == "secondary")
    return secondary.height, float(secondary["value"].sum())


def main(scale: str, work: Path) -> None:
    data = work / "input"
    if not (data / "pupils.csv").exists():
        generate(data, seed=1, scale=scale)
    warehouse = work / "warehouse.duckdb"
    if not warehouse.exists():
        run_validation(data, work / "01_validated", Term(2025, "spring"), warehouse)
    config = load_run_config()
    publications = config.publications_of(RETURN_NAMES)
    frames = staged_frames(warehouse, (*sorted({p.dataset for p in publications}), "schools", "postcodes"))
    release = build_release(frames, publications, Term.parse("2026-spring"), frames["schools"], frames["postcodes"])
    per_population = {"seconds": 0.0, "secondary": 0, "value": 0.0, "unsafe_in_release": 0}
    release_wide = {"seconds": 0.0, "secondary": 0, "value": 0.0}
    cells = 0
    for problem in release.problems:
        policy = config.problem_policy(problem.publications)
        hidden, offset = set(), 0
        for population in sorted(problem.populations, key=lambda p: p.name):
            alone = release_table({population.name: release.parts[population.name]})
            started = time.perf_counter()
            result = protect(alone, policy)
            per_population["seconds"] += time.perf_counter() - started
            n, value = loss(result.cells)
            per_population["secondary"] += n
            per_population["value"] += value
            hidden |= {c + offset for c in result.cells.filter(pl.col("status").is_in(HIDDEN))["cell_id"].to_list()}
            offset += alone.cells.height
        required = required_protection(problem.table, set(primary_cells(problem.table, policy)["cell_id"]), policy)
        per_population["unsafe_in_release"] += int((~audit(problem.table, hidden, required)["safe"]).sum())
        started = time.perf_counter()
        result = protect(problem.table, policy)
        release_wide["seconds"] += time.perf_counter() - started
        n, value = loss(result.cells)
        release_wide["secondary"] += n
        release_wide["value"] += value
        cells += problem.table.cells.height
    emit(Measurement(
        f"release-wide protection ({scale})", cells, release_wide["seconds"], peak_rss_mb(),
        "one population at a time", per_population["seconds"],
        {"secondary_release_wide": release_wide["secondary"], "secondary_per_population": per_population["secondary"],
         "secondary_value_release_wide": release_wide["value"], "secondary_value_per_population": per_population["value"],
         "loss_ratio": round(release_wide["value"] / per_population["value"], 3) if per_population["value"] else None,
         "per_population_cells_narrowed_in_the_release": per_population["unsafe_in_release"],
         "problems": len(release.problems), "relations": len(release.relations)}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
