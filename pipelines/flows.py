"""Prefect flows: thin wiring of the pure transforms, the disclosure-control library and the writers.

Tasks pass data by reference (the warehouse, decision-record files, delivery folders), never as frames, so a
regional deployment can run them on Dask workers over a shared file system. Task caching is off: hashing frames
for the cache costs seconds and a return must be recomputed from its inputs anyway.

Deliveries and the auditor report are written into a staging folder and moved into place only when every task
has passed, the leak scan included: a run that fails leaves no delivery.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from disclosure_control.policy import as_mapping
from disclosure_control.protect import protect
from outputs.ees import ees_data, ees_meta, geography_rows, school_geography, write_ees
from outputs.manifest import write_manifest
from outputs.report import write_report
from pipelines.io import read_json, staged_output, write_parquet_atomic
from pipelines.leakscan import identifier_values, scan
from pipelines.policies import load_disclosure_policy, load_publication, load_recipients
from pipelines.registry import RunPaths, publication_spec
from pipelines.transforms.school_statistics import SCHOOL, counted_pupils, linked_tables, school_hierarchy
from pipelines.validate import new_run_id, run_validation
from pipelines.warehouse import staged_frames
from schemas.calendar import parse_term_label

TASK = {"cache_policy": NO_CACHE, "persist_result": False}
PUBLICATION = "publication"


class LeakFound(RuntimeError):
    """An outbound file holds a direct identifier its recipient is not entitled to; nothing was delivered."""


@task(**TASK)
def validate_exports(input_dir: Path, paths: RunPaths, academic_year: int, run_id: str) -> dict:
    run_validation(input_dir, paths.validated, academic_year, paths.warehouse, run_id=run_id)
    return read_json(paths.validated / "validation.json")


@task(**TASK)
def protect_school_statistics(paths: RunPaths, academic_year: int, policy_file: Path | None) -> dict:
    """Decision records of the linked school tables, written to the work area; returns their summary."""
    frames = staged_frames(paths.warehouse, ("pupils", "schools"))
    publication = load_publication(publication_spec("school_statistics"))
    policy = load_disclosure_policy(policy_file)
    tables = linked_tables(counted_pupils(frames["pupils"], publication, academic_year), publication,
                           school_hierarchy(frames["schools"]))
    result = protect(tables, policy)
    write_parquet_atomic(result.cells, paths.decisions("school_statistics"))
    return {"summary": result.summary(), "policy": as_mapping(policy)}


@task(**TASK)
def publish_school_statistics(paths: RunPaths, folder: Path, academic_year: int, term: str) -> list[Path]:
    """One EES file pair per table, plus the decision-free Parquet of each for analysts."""
    publication = load_publication(publication_spec("school_statistics"))
    cells = pl.read_parquet(paths.decisions("school_statistics"))
    geography = geography_rows(school_geography(staged_frames(paths.warehouse, ("schools",))["schools"]))
    files = []
    for table in publication.tables:
        data = ees_data(cells, table.name, SCHOOL, table.filter, publication.indicator, geography, academic_year, term)
        files += write_ees(folder, table.name, data, ees_meta(table.filter, table.label, publication.indicator,
                                                               publication.indicator_label))
    return files


@task(**TASK)
def leak_scan(paths: RunPaths, datasets: tuple[str, ...], files: list[Path], entitled: frozenset[str]) -> int:
    """Every direct identifier staged from the inputs, looked for in every file about to go out."""
    identifiers = identifier_values(list(staged_frames(paths.warehouse, datasets).values()))
    leaks = scan(files, identifiers, set(entitled))
    if leaks:
        raise LeakFound("; ".join(str(leak) for leak in leaks[:5]))
    return len(files)


def suppressed_cells(paths: RunPaths, name: str) -> list[dict]:
    """Each suppressed cell named by its codes (school or district, then each filter), for the auditor report."""
    dims = [SCHOOL, *(t.filter for t in load_publication(publication_spec(name)).tables)]
    cells = pl.read_parquet(paths.decisions(name)).filter(pl.col("status").is_in(["primary", "secondary"]))
    return cells.select(pl.concat_str(dims, separator=" / ").alias("cell"), "status", "reason", "lower", "upper").to_dicts()


@flow(name="census_return")
def census_return(input_dir: Path, out: Path, period: str = "2026-spring", policy_file: Path | None = None) -> dict:
    """Validate the exports, build and protect the statistics, write the deliveries and the auditor report."""
    academic_year, term = parse_term_label(period)
    paths, run_id = RunPaths(Path(out)), new_run_id()
    run = {"run_id": run_id, "period": period, "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    validation = validate_exports(Path(input_dir), paths, academic_year, run_id)
    with staged_output(paths.root) as staging:
        protection = protect_school_statistics(paths, academic_year, policy_file)
        folder = RunPaths.delivery(staging, PUBLICATION)
        files = publish_school_statistics(paths, folder, academic_year, term)
        staged = tuple(d["dataset"] for d in validation["datasets"])
        recipient = load_recipients()[PUBLICATION]
        leak_scan(paths, staged, files, recipient.fields)
        write_manifest(folder, recipient.manifest_entry(), run | {"policy_version": protection["summary"]["policy_version"]},
                       {"school_statistics": protection["summary"]})
        document = {"run": run, "validation": validation | {"data_docs": str((paths.validated / "data_docs" / "index.html").resolve())},
                    "tables": [{"name": "school_statistics", **protection, "suppressed": suppressed_cells(paths, "school_statistics")}]}
        write_report(RunPaths.report(staging), document)
    report = (paths.root / "report" / "auditor_report.html").resolve()
    create_markdown_artifact(f"[Auditor report]({report.as_uri()}) for run {run_id}", key="auditor-report",
                             description="lareturns auditor report")
    return {"run_id": run_id, "deliveries": str(paths.root / "deliveries"), "report": str(report),
            "audit_passed": protection["summary"]["audit"]["passed"]}
