"""Generate a synthetic county (or country) as MIS exports: one LA at a time, appended to each file (or each LA
in a folder of its own).

Each LA has its own random stream, seeded from the run's seed and the LA's place in the plan, so output
depends only on the seed and scale and memory is bounded by the largest LA, not by the country.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from outputs.files import CsvAppender, copy_folder, staged_output, write_csv
from schemas.calendar import DEFAULT_ACADEMIC_YEAR
from schemas.catalog import CODESETS_DIR, reference_folder

from .datasets import DATASET_COLUMNS, la_datasets
from .faults import FAULT_COLUMNS, inject
from .people import Context, destination_only_people, pupils_on_roll, side_stream
from .plan import LaPlan, la_postcodes, plan_las
from .settings import la_providers, la_schools, provider_details


@dataclass
class Summary:
    rows: dict[str, int] = field(default_factory=dict)
    faults: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={c: pl.String for c in FAULT_COLUMNS}))
    las: int = 0
    schools: int = 0
    providers: int = 0


@dataclass
class _Reference:
    schools: list[pl.DataFrame] = field(default_factory=list)
    providers: list[pl.DataFrame] = field(default_factory=list)
    geography: list[pl.DataFrame] = field(default_factory=list)


def generate(
    out: Path,
    seed: int = 1,
    scale: str = "county",
    fault_rate: float | None = None,
    academic_year: int = DEFAULT_ACADEMIC_YEAR,
    progress: Callable[[LaPlan], None] | None = None,
    by_la: bool = False,
    only: tuple[str, ...] = (),
) -> Summary:
    """The exports in one folder, or (by_la) in a folder per LA named by its old LA code, as each LA's MIS would
    send them; `only` keeps those LAs of the plan (old LA codes). An LA's rows are the same either way."""
    if fault_rate is not None and not 0 <= fault_rate <= 0.5:
        raise ValueError(f"--faults must be a rate between 0 and 0.5, not {fault_rate}")
    plans = plan_las(scale, seed)
    unknown = sorted(set(only) - {plan.old_la_code for plan in plans})
    if unknown:
        raise ValueError(f"--la {unknown[0]}: no LA of the {scale} plan has that old LA code")
    plans = [plan for plan in plans if not only or plan.old_la_code in only]
    summary = Summary(las=len(plans))
    with staged_output(out) as staging:
        for folder, group in ([(staging / p.old_la_code, [p]) for p in plans] if by_la else [(staging, plans)]):
            folder.mkdir(exist_ok=True)
            _write_exports(folder, group, seed, fault_rate, academic_year, progress, summary)
    return summary


def _write_exports(folder: Path, plans: list[LaPlan], seed: int, fault_rate: float | None, academic_year: int,
                   progress: Callable[[LaPlan], None] | None, summary: Summary) -> None:
    """The plans' LAs appended to one set of export files in the folder, with their reference data and faults
    (added to the summary)."""
    reference, fault_lists = _Reference(), []
    writers = {name: CsvAppender(folder / f"{name}.csv") for name in DATASET_COLUMNS}
    try:
        for plan in plans:
            frames = _la_frames(plan, seed, academic_year, reference)
            if fault_rate is not None:
                fault_rng = np.random.default_rng([seed, plan.index + 1, 1])
                for name in frames:
                    frames[name], listing = inject(frames[name], name, fault_rate, fault_rng, writers[name].rows + 1)
                    fault_lists.append(listing)
            for name, frame in frames.items():
                writers[name].append(frame)
            if progress:
                progress(plan)
    finally:
        for writer in writers.values():
            writer.close()
    for name, writer in writers.items():
        summary.rows[f"{name}.csv"] = summary.rows.get(f"{name}.csv", 0) + writer.rows
    _write_reference(reference_folder(folder), reference)
    if fault_rate is not None:
        faults = pl.concat(fault_lists).sort("file", "source_row")
        write_csv(faults, folder / "faults.csv")
        summary.faults = pl.concat([summary.faults, faults]) if summary.faults.height else faults
    summary.schools += sum(f.height for f in reference.schools)
    summary.providers += sum(f.height for f in reference.providers)


def _la_frames(plan: LaPlan, seed: int, academic_year: int, reference: _Reference) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng([seed, plan.index + 1])
    postcodes = la_postcodes(plan, rng)
    schools = la_schools(plan, postcodes, rng)
    providers = la_providers(plan, postcodes, schools, rng)
    provider_stream = side_stream(rng)
    ctx = Context(plan, academic_year, rng, postcodes, schools)
    on_roll = pupils_on_roll(ctx)
    frames = la_datasets(ctx, on_roll, destination_only_people(ctx, on_roll), providers)
    la_columns = [pl.lit(plan.old_la_code).alias("old_la_code"), pl.lit(plan.new_la_code).alias("new_la_code"),
                  pl.lit(plan.la_name).alias("la_name"), pl.lit(plan.region_code).alias("region_code"),
                  pl.lit(plan.region_name).alias("region_name")]
    reference.schools.append(schools.select(
        "urn", "laestab", "school_name", "phase", "establishment_type", "nc_low", "nc_high", "has_nursery",
        "postcode", "ward_code", "lad_code", "lad_name", *la_columns,
    ))
    reference.providers.append(provider_details(providers.filter(pl.col("provider_type") != "SCH"), provider_stream)
                               .select("provider_urn", "ofsted_urn", "provider_name", "provider_type", "postcode",
                                       "ward_code", "lad_code", "lad_name", "hours_open_per_week", "weeks_open_per_year",
                                       "eyts_staff", "eyts_staff_with_children", *la_columns))
    reference.geography.append(postcodes.select("postcode", "ward_code", "ward_name", "lad_code", "lad_name", *la_columns))
    return frames


def _write_reference(folder: Path, reference: _Reference) -> None:
    folder.mkdir(parents=True)
    write_csv(pl.concat(reference.schools), folder / "schools.csv")
    write_csv(pl.concat(reference.providers), folder / "early_years_providers.csv")
    write_csv(pl.concat(reference.geography), folder / "geography.csv")
    copy_folder(CODESETS_DIR, folder / "codesets")
