"""Disclosure control on generated tables: python -m bench.sdc SCALE WORK_DIR.

Tables of pupils by (district > school) x (ethnicity major > minor) x sex, threshold 10, from about 600 cells
to the whole county. For each size: the fast method (protect and audit), then the optimal method in the same
process as the baseline it is measured against (time-limited; when it falls back, that is reported), the
audit's time alone, and the ratio of their information loss (cost of the secondary cells).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import polars as pl

from bench.harness import Measurement, emit, peak_rss_mb
from disclosure_control.audit import audit
from disclosure_control.hierarchy import Hierarchy
from disclosure_control.policy import parse_policy
from disclosure_control.protect import protect
from disclosure_control.secondary import cell_costs
from disclosure_control.table import TableSpec, from_microdata
from pipelines.store.exports import read_export
from pipelines.synthetic.generate import generate
from schemas.config import load_mapping
from schemas.lookups import codeset

SCHOOL_COUNTS = (4, 20, 60, 165, 400)
OPTIMAL_SOLVES = 20_000  # attacker LPs: about a minute on the 837-cell table


def county_tables(data: Path):
    pupils = read_export(data, load_mapping(None)["pupils"]).frame.filter(pl.col("enrolment_status") != "S")
    schools = pl.read_csv(data / "reference" / "schools.csv", infer_schema=False).sort("urn")
    ethnicity = codeset("ethnicity", 2025).select(pl.col("code").alias("ethnicity"), "main_code", "ethnicity_major")
    pupils = pupils.join(ethnicity, on="ethnicity").join(schools.select(pl.col("urn").alias("school_urn"), "lad_code"), on="school_urn")
    majors = ethnicity.select("main_code", "ethnicity_major").unique()
    ethnic = {"Total": sorted(majors["ethnicity_major"].unique())} | {
        m: sorted(g["main_code"].unique()) for (m,), g in majors.group_by("ethnicity_major")}
    for n in SCHOOL_COUNTS:
        chosen = schools.head(n)
        place = {"Total": sorted(chosen["lad_code"].unique())} | {
            lad: sorted(g["urn"].to_list()) for (lad,), g in chosen.group_by("lad_code")}
        micro = pupils.filter(pl.col("school_urn").is_in(chosen["urn"].implode()))
        hierarchies = {"school_urn": Hierarchy.from_children("school_urn", place),
                       "main_code": Hierarchy.from_children("main_code", ethnic)}
        yield n, from_microdata(micro, [TableSpec("pupils", ("school_urn", "main_code", "sex"))], hierarchies)


def secondary_cost(result, costs) -> float:
    return float(costs[result.cells.filter(pl.col("status") == "secondary")["cell_id"].to_numpy()].sum())


def main(scale: str, work: Path) -> None:
    data = work / "input"
    if not (data / "pupils.csv").exists():
        generate(data, seed=1, scale=scale)
    policy = parse_policy({"threshold": 10, "optimal_solves": OPTIMAL_SOLVES})
    for n_schools, table in county_tables(data):
        started = time.perf_counter()
        fast = protect(table, policy, method="fast")
        fast_seconds = time.perf_counter() - started
        started = time.perf_counter()
        audit(table, set(fast.cells.filter(pl.col("status").is_in(["primary", "secondary"]))["cell_id"].to_list()),
              fast.audit.select("cell_id", "upper_required", "lower_required").filter(pl.col("upper_required") > 0))
        audit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        optimal = protect(table, policy, method="optimal")
        optimal_seconds = time.perf_counter() - started
        costs = cell_costs(table, policy)
        fast_loss, optimal_loss = secondary_cost(fast, costs), secondary_cost(optimal, costs)
        summary = fast.summary()
        emit(Measurement(
            f"protect {table.cells.height:,} cells ({n_schools} schools)", table.cells.height, fast_seconds, peak_rss_mb(),
            f"optimal ({optimal.method})", optimal_seconds,
            {"primary": summary["by_status"]["primary"], "secondary_fast": summary["by_status"]["secondary"],
             "secondary_optimal": optimal.summary()["by_status"]["secondary"], "audit_s": round(audit_seconds, 2),
             "audit_passed": summary["audit"]["passed"] and optimal.summary()["audit"]["passed"],
             "loss_fast_over_optimal": round(fast_loss / optimal_loss, 3) if optimal.method == "optimal" and optimal_loss else None},
        ))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
