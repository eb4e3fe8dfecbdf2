"""Prefect flows: thin wiring of the pure transforms, the disclosure-control library and the writers.

A return (school statistics, early years, destinations, health) is the publications and extracts whose specs
name it (schemas/publications/, schemas/extracts/). Each return has its own flow; census_return runs them all
on one validation of the exports. Either way the run ends the same: every recipient's folder is leak-scanned,
gets its manifest, and the auditor report is written.

Tasks pass data by reference (the warehouse, decision-record files, delivery folders), never as frames, so a
regional deployment can run them on Dask workers over a shared file system. Task caching is off: hashing frames
for the cache costs seconds and a return must be recomputed from its inputs anyway.

Deliveries and the auditor report are written into a staging folder and moved into place only when every task
has passed, the leak scan included: a run that fails leaves no delivery. The move and the ledger commit together,
and a run recovers whatever an interrupted one left before it starts (pipelines/commit.py).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from disclosure_control.policy import Policy, PolicyError, as_mapping
from disclosure_control.prior import Earlier, Prior
from disclosure_control.protect import ProtectionError, protect
from disclosure_control.release import release_table
from disclosure_control.rounding import round_published
from disclosure_control.status import SUPPRESSED, Status
from disclosure_control.table import CELL_ID
from outputs.ees import area_nodes, district_geography, ees_data, ees_meta, geography_rows, time_columns, write_ees
from outputs.manifest import write_manifest
from outputs.report import write_report
from pipelines.commit import decision_hashes, output_hashes, recovered, run_folder_lock, staged_delivery
from pipelines.history import EarlierRelease, archive_counts, earlier_for, keep_counts, known_files
from pipelines.io import (copy_atomic, fault_point, file_sha256, read_csv_text, read_json, restrict_new_files,
                          write_csv_atomic, write_parquet_atomic)
from pipelines.keys import ledger_signing_key, pseudonymisation_key
from pipelines.ledger import append
from pipelines.leakscan import leaks_by_recipient
from pipelines.policies import load_access_group, load_disclosure_policy, load_extract, load_publication, load_recipients
from pipelines.prefect_api import without_tracebacks
from pipelines.schedule import current_period
from pipelines.rectify import reapply_rectifications
from pipelines.registry import (RETURN_NAMES, RunPaths, ValidationPaths, config_files, extract_names, extract_spec, publication_names,
                                publication_spec)
from pipelines.transforms.extract import Extract, extract_rows
from pipelines.transforms.publication import Publication, share_percents
from pipelines.transforms.release import (build_release, earlier_release_of, empty_cells, file_coordinates, known_figures,
                                          nestings, publication_summary, shown_cells)
from pipelines.validate import new_run_id, run_validation
from pipelines.verify import release_attack
from pipelines.warehouse import open_warehouse, run_inputs, staged_frames
from schemas.calendar import parse_term_label

TASK = {"cache_policy": NO_CACHE, "persist_result": False}
PLACES = ("schools", "postcodes")  # reference datasets that place a unit in the area hierarchy


class LeakFound(RuntimeError):
    """An outbound file holds a direct identifier its recipient is not entitled to; nothing was delivered."""


def publications_of(return_name: str) -> list[Publication]:
    return [p for p in (load_publication(publication_spec(n)) for n in publication_names()) if p.return_name == return_name]


def extracts_of(return_name: str) -> list[Extract]:
    recipients = load_recipients()
    return [e for e in (load_extract(extract_spec(n), recipients) for n in extract_names()) if e.return_name == return_name]


def publication_policy(publication: Publication, policy_file: Path | None) -> Policy:
    """The recipient's policy, unless the run names one for all its statistics."""
    return load_disclosure_policy(policy_file or load_recipients()[publication.recipient].policy)


@task(**TASK)
def record_in_ledger(paths: RunPaths, run: dict, staging: Path) -> dict:
    """The run's ledger entry, written before the delivery moves into place (pipelines/commit.py): the inputs'
    hashes, every config file's hash, and the hash of every file about to be delivered."""
    with open_warehouse(paths.warehouse) as connection:
        return append(connection, paths.ledger, "run", run | {"inputs": run_inputs(connection, run["run_id"]),
                                                             "config": config_hashes(), "outputs": output_hashes(staging),
                                                             "decisions": decision_hashes(paths)})


@task(**TASK)
def record_delivered(paths: RunPaths, entry: dict) -> dict:
    """The entry that closes the run's: its delivery is in place."""
    with open_warehouse(paths.warehouse) as connection:
        return append(connection, paths.ledger, "delivered", {"run_id": entry["body"]["run_id"], "run_entry": entry["seq"]})


def config_hashes() -> dict[str, str]:
    return {f"{p.parent.name}/{p.name}": file_sha256(p) for p in config_files()}


@task(**TASK)
def validate_exports(input_dir: Path, paths: RunPaths, academic_year: int, run_id: str) -> dict:
    run_validation(input_dir, paths.validated, academic_year, paths.warehouse, run_id=run_id)
    return read_json(ValidationPaths(paths.validated).summary)


@task(**TASK)
def reapply_corrections(paths: RunPaths) -> int:
    """Rectifications recorded earlier, applied again to the staging just reloaded from the exports (which still
    hold the wrong values until the MIS is fixed), so every later extract reflects them."""
    with open_warehouse(paths.warehouse) as connection:
        return reapply_rectifications(connection)


@task(**TASK)
def protect_release(paths: RunPaths, returns: tuple[str, ...], academic_year: int, period: str,
                    policy_file: Path | None, known_dir: Path | None) -> dict:
    """Every publication of the run protected as one release (with what is already out): decision records per
    publication and the counts behind them in the work area; returns their summaries and the relations used."""
    publications = [p for name in returns for p in publications_of(name)]
    if not publications:
        return {"protections": [], "relations": [], "known": [], "populations": []}
    frames = staged_frames(paths.warehouse, (*sorted({p.dataset for p in publications}), *PLACES))
    release = build_release(frames, publications, academic_year, period, frames["schools"], frames["postcodes"])
    earlier_runs = {problem.names: found for problem in release.problems if (found := earlier_of(paths, problem))}
    release = release.with_earlier({name: counts for _, kept in earlier_runs.values() if kept for name, counts in kept.items()})
    known = known_files(known_dir) if known_dir else []
    time = tuple(pl.select(time_columns(academic_year, parse_term_label(period)[1])).row(0))
    la_code = district_geography(frames["schools"])["new_la_code"].unique().to_list()[0]
    protections, used = [], []
    for problem in release.problems:
        policy = problem_policy(problem, policy_file)
        table, public = problem.table, {}
        for known_file in known:
            publication = known_file.publication(list(problem.publications))
            if publication is not None:
                population = release.population_of(publication.name).name
                table, figures, left_out = known_figures(table, population, known_file, publication, time, la_code,
                                                         area_nodes(known_file.data))
                public |= {cell: known_file.name for cell in figures[CELL_ID].to_list()}
                used.append({"file": known_file.name, "publication": publication.name, "figures": figures.height,
                             "left_out": left_out})
        found = earlier_runs.get(problem.names)
        earlier = problem_earlier(release, problem, table, found[0], found[1] is not None, policy) if found else None
        result = round_published(protect(table, policy, prior=Prior(public, earlier)))
        cells = result.cells.join(release.measure_totals(problem), on=CELL_ID, how="left")
        summary = result.summary()
        for population in problem.populations:
            part = release.parts[population.name]
            keep_counts(paths.work, population.key, part.inner.filter(pl.col("value") > 0), part.hierarchies)
        for publication in problem.publications:
            mine = release.publication_cells(cells, publication)
            write_parquet_atomic(mine, paths.decisions(publication.name))
            population = release.population_of(publication.name)
            protections.append({"name": publication.name, "title": publication.title, "recipient": publication.recipient,
                                "files": [t.name for t in publication.tables], "units": release.rows[population.name].height,
                                "units_without_area": release.unplaced[population.name],
                                "summary": publication_summary(mine, summary), "policy": as_mapping(policy),
                                "protected_with": [p.name for p in problem.publications],
                                "earlier": earlier.label if earlier else None})
    for population in release.empty:
        policy = problem_policy(population, policy_file)
        summary = {"cells": 0, "by_status": {}, "information_loss": {}, "audit": {"passed": True}, "method": policy.method,
                   "policy_version": policy.version, "notes": [f"no units in {period}: published empty"]}
        for publication in population.publications:
            cells = empty_cells(publication)
            write_parquet_atomic(cells, paths.decisions(publication.name))
            protections.append({"name": publication.name, "title": publication.title, "recipient": publication.recipient,
                                "files": [t.name for t in publication.tables], "units": 0,
                                "units_without_area": release.unplaced[population.name],
                                "summary": publication_summary(cells, summary), "policy": as_mapping(policy),
                                "protected_with": [publication.name], "earlier": None})
    return {"protections": protections, "relations": [r.describe() for r in release.relations], "known": used,
            "populations": [p.key for p in release.groups if p.name in release.parts]}


def earlier_of(paths: RunPaths, problem) -> tuple[EarlierRelease, dict | None] | None:
    """The problem's earlier release and the counts its run kept, by population name (None if it kept none)."""
    found = earlier_for(paths, list(problem.publications), [p.key for p in problem.populations])
    if found is None:
        return None
    return found[0], None if found[1] is None else {p.name: found[1][p.key] for p in problem.populations}


def problem_earlier(release, problem, table, found: EarlierRelease, counted: bool, policy: Policy) -> Earlier:
    """The earlier release as an intruder holds it: the model of its counts and what its files showed; without
    its counts, what its files showed at this release's cells (so that its hidden cells stay hidden)."""
    if not counted:
        shown = pl.concat([earlier_shown(table, release, publication, found) for publication in problem.publications])
        return earlier_release_of(table, shown, policy, found.label)
    parts = {p.name: release.earlier_parts[p.name] for p in problem.populations}
    model = release_table(parts, nestings(list(problem.relations)))
    shown = pl.concat([earlier_shown(model, release, publication, found) for publication in problem.publications])
    return earlier_release_of(model, shown, policy, found.label, model)


def earlier_shown(table, release, publication: Publication, earlier: EarlierRelease) -> pl.DataFrame:
    """cell_id (of the earlier release's model) and what its files of the publication's tables showed there."""
    population = release.population_of(publication.name).name
    frames = []
    for published in publication.tables:
        data = read_csv_text(earlier.file(publication.recipient, published.name)).with_columns(pl.all().fill_null(""))
        coordinates = file_coordinates(table, population, [f.name for f in published.filters], data, area_nodes(data))
        frames.append(shown_cells(table, coordinates, data[publication.indicator]))
    return pl.concat(frames).unique(CELL_ID, keep="first", maintain_order=True)


def problem_policy(problem, policy_file: Path | None) -> Policy:
    """The one policy a problem is protected under: the run's, or its recipients' (which must agree, since its
    publications share units)."""
    if policy_file is not None:
        return load_disclosure_policy(policy_file)
    recipients = load_recipients()
    files = sorted({recipients[p.recipient].policy for p in problem.publications})
    if len(files) > 1:
        raise PolicyError(f"{' and '.join(p.name for p in problem.publications)} count related units but their "
                          f"recipients' policies differ ({', '.join(f.name for f in files)}); a release protected as one "
                          "problem needs one policy")
    return load_disclosure_policy(files[0])


@task(**TASK, task_run_name="publish-{name}")
def publish(paths: RunPaths, name: str, staging: Path, academic_year: int, term: str, policy_file: Path | None) -> list[Path]:
    """One EES file pair per table (and the same table as Parquet, for analysts, if the recipient takes it)."""
    publication = load_publication(publication_spec(name))
    recipient = load_recipients()[publication.recipient]
    cells = pl.read_parquet(paths.decisions(name))
    percents = share_percents(cells, publication, publication_policy(publication, policy_file)) if publication.share else None
    places = staged_frames(paths.warehouse, PLACES)
    districts = district_geography(places["postcodes"] if publication.geography == "residence" else places["schools"])
    geography = geography_rows(districts, places["schools"] if publication.geography == "school" else None)
    folder, files = RunPaths(staging).delivery(recipient.key), []
    for table in publication.tables:
        data = ees_data(cells, table, publication, geography, academic_year, term, percents)
        if "ees" in recipient.formats or "csv" in recipient.formats:
            files += write_ees(folder, table.name, data, ees_meta(table, publication))
        if "parquet" in recipient.formats:
            files.append(folder / "parquet" / f"{table.name}.parquet")
            write_parquet_atomic(data, files[-1])
    return files


@task(**TASK, task_run_name="extract-{name}")
def write_extract(paths: RunPaths, name: str, staging: Path, academic_year: int, period: str) -> int:
    """The record-level (or summary) extract as CSV in the recipient's column order; returns its rows."""
    recipient_by_key = load_recipients()
    extract = load_extract(extract_spec(name), recipient_by_key)
    recipient = recipient_by_key[extract.recipient]
    key = pseudonymisation_key(recipient.entitlement.key_id) if recipient.entitlement.pseudonymise else None
    frame = staged_frames(paths.warehouse, (extract.dataset,))[extract.dataset]
    rows = extract_rows(frame, extract, recipient.entitlement, academic_year, period, key)
    write_csv_atomic(rows, RunPaths(staging).delivery(recipient.key) / f"{name}.csv")
    return rows.height


@task(**TASK)
def leak_scan(paths: RunPaths, staging: Path) -> int:
    """Every direct identifier staged from the inputs, looked for in every file about to go to any recipient."""
    found = leaks_by_recipient(RunPaths(staging).deliveries, paths.warehouse)  # staging mirrors the run's layout
    leaks = [leak for recipient_leaks in found.values() for leak in recipient_leaks]
    if leaks:
        raise LeakFound("; ".join(str(leak) for leak in leaks[:5]))
    return len(found)


def suppressed_cells(paths: RunPaths, name: str) -> list[dict]:
    """Each suppressed cell named by its area and filter values, with its status, the rule behind it and the
    interval the audit proved an intruder can narrow it to (what anyone can compute), never its value: for the
    auditor report, which may leave the building."""
    dims = list(load_publication(publication_spec(name)).dimensions)
    cells = pl.read_parquet(paths.decisions(name)).filter(pl.col("status").is_in(list(SUPPRESSED)))
    return cells.select(pl.concat_str(dims, separator=" / ").alias("cell"), "status",
                        pl.col("rule").fill_null("protects a primary"), "lower", "upper").to_dicts()


def evidence_cells(paths: RunPaths, name: str) -> list[dict]:
    """Every suppressed cell with its value and the decision's reason: for the restricted evidence file only."""
    dims = list(load_publication(publication_spec(name)).dimensions)
    cells = pl.read_parquet(paths.decisions(name)).filter(pl.col("status").is_in(list(SUPPRESSED)))
    return cells.select(pl.concat_str(dims, separator=" / ").alias("cell"), "status", "rule", "value", "reason", "lower",
                        "upper", "protected", "protected_against_both").to_dicts()


@flow(name="return-outputs", flow_run_name="{return_name}")
def return_outputs(return_name: str, paths: RunPaths, staging: Path, academic_year: int, period: str,
                   policy_file: Path | None) -> dict:
    """One return's statistics (protected already, with the whole release) and extracts, written into the staging
    folder."""
    term = parse_term_label(period)[1]
    for publication in publications_of(return_name):
        publish(paths, publication.name, staging, academic_year, term, policy_file)
    extracts = []
    for extract in extracts_of(return_name):
        if term in extract.terms:
            extracts.append({"name": extract.name, "title": extract.title, "recipient": extract.recipient,
                             "rows": write_extract(paths, extract.name, staging, academic_year, period)})
    return {"return": return_name, "extracts": extracts}


@task(**TASK)
def attack_release(paths: RunPaths, staging: Path, protections: list[dict], known_dir: Path | None) -> list[dict]:
    """The independent intruder on the release about to be delivered (with the figures already public and the
    earlier release): a protected cell it can narrow below its protection level stops the run."""
    publications = [load_publication(publication_spec(p["name"])) for p in protections]
    findings = release_attack(paths, RunPaths(staging).deliveries, publications,
                              {p["name"]: p["policy"] for p in protections}, known_dir)
    failed = [f for f in findings if not f.passed]
    if failed:
        raise ProtectionError("; ".join(f"{f.check}: {f.detail}" for f in failed))
    return [f.__dict__ for f in findings]


def archive_release(staging: Path, run_id: str, protections: list[dict]) -> None:
    """Copies of the published statistics as delivered, kept under releases/<run_id>/ for the next run."""
    for protection in protections:
        source = RunPaths(staging).delivery(protection["recipient"])
        for name in protection["files"]:
            for suffix in (".csv", ".meta.csv"):
                copy_atomic(source / f"{name}{suffix}", RunPaths(staging).release(run_id) / protection["recipient"] / f"{name}{suffix}")


def deliver(input_dir: Path, out: Path, period: str, policy_file: Path | None, returns: tuple[str, ...],
            known_dir: Path | None = None) -> dict:
    """Finish what an interrupted run left, validate once, protect the whole release, run the returns, then
    leak-scan, attack, manifest and report every recipient's delivery, and commit it with its ledger entry."""
    academic_year, _ = parse_term_label(period)
    paths, run_id = RunPaths(Path(out)), new_run_id()
    restrict_new_files(paths.root, load_access_group())  # a scheduled run starts in a process of its own
    without_tracebacks()
    ledger_signing_key()  # a run that could not sign its ledger entry stops before any work, not after all of it
    with run_folder_lock(paths):
        return delivered(Path(input_dir), paths, run_id, academic_year, period, policy_file, returns, known_dir)


def delivered(input_dir: Path, paths: RunPaths, run_id: str, academic_year: int, period: str, policy_file: Path | None,
              returns: tuple[str, ...], known_dir: Path | None) -> dict:
    run = {"run_id": run_id, "period": period, "returns": list(returns),
           "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "recovered": recovered(paths)}
    validation = validate_exports(input_dir, paths, academic_year, run_id)
    run["corrections_reapplied"] = reapply_corrections(paths)
    release = protect_release(paths, returns, academic_year, period, policy_file, known_dir)
    protections = release["protections"]
    with staged_delivery(paths, run_id) as staging:
        outputs = [return_outputs(name, paths, staging, academic_year, period, policy_file) for name in returns]
        leak_scan(paths, staging)
        attack = attack_release(paths, staging, protections, known_dir)
        archive_release(staging, run_id, protections)
        deliveries = []
        for recipient in load_recipients().values():
            folder = RunPaths(staging).delivery(recipient.key)
            if not folder.exists():
                continue
            mine = {p["name"]: p["summary"] for p in protections if p["recipient"] == recipient.key}
            policy_version = next(iter(mine.values()))["policy_version"] if mine else load_disclosure_policy(recipient.policy).version
            manifest = write_manifest(folder, recipient.manifest_entry(), run | {"policy_version": policy_version}, mine or None)
            deliveries.append({"recipient": recipient.key, "name": recipient.name, "legal_basis": recipient.legal_basis,
                               "files": read_json(manifest)["files"]})
        document = {"run": run,
                    "validation": validation | {"data_docs": str(ValidationPaths(paths.validated).data_docs_index.resolve())},
                    "tables": [p | {"suppressed": suppressed_cells(paths, p["name"])} for p in protections],
                    "relations": release["relations"], "known_published": release["known"], "attack": attack,
                    "extracts": [e for o in outputs for e in o["extracts"]], "deliveries": deliveries}
        write_report(RunPaths(staging).report, document,
                     {"run": run, "tables": [{"name": p["name"], "cells": evidence_cells(paths, p["name"])} for p in protections]})
        archive_counts(paths, run_id, release["populations"])
        fault_point("staged")
        entry = record_in_ledger(paths, run, staging)
        fault_point("pending")
    fault_point("moved")
    closing = record_delivered(paths, entry)
    report = (paths.report / "auditor_report.html").resolve()
    create_markdown_artifact(f"[Auditor report]({report.as_uri()}) for run {run_id} ({', '.join(returns)}); ledger entry "
                             f"{closing['seq']}, SHA-256 {closing['entry_hash']}",
                             key="auditor-report", description="lareturns auditor report")
    return {"run_id": run_id, "period": period, "deliveries": str(paths.deliveries), "report": str(report),
            "recovered": run["recovered"], "run_entry": entry["seq"],
            "ledger_entry": closing["seq"], "ledger_hash": closing["entry_hash"],
            "audit_passed": all(p["summary"]["audit"]["passed"] for p in protections),
            "publications": [{"name": p["name"], "recipient": p["recipient"], "cells": p["summary"]["cells"],
                              "primary": p["summary"]["by_status"][Status.PRIMARY], "secondary": p["summary"]["by_status"][Status.SECONDARY],
                              "passed": p["summary"]["audit"]["passed"]} for p in protections],
            "delivered": [{"recipient": d["recipient"], "files": len(d["files"]),
                           "folder": str(paths.delivery(d["recipient"]))} for d in deliveries]}


def run_period(period: str | None) -> str:
    """The term a run reports on: as given, or (a scheduled run) the term of its scheduled start."""
    return period or current_period(flow_run.scheduled_start_time)


# One flow per return. Each is a module-level function named as in RETURNS, because a scheduled run imports
# its flow by name in a new process.
@flow(name="census_return")
def census_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                  known_dir: Path | None = None) -> dict:
    """Every return on one validation of the exports: the whole census."""
    return deliver(input_dir, out, run_period(period), policy_file, RETURN_NAMES, known_dir)


@flow(name="school_statistics_return")
def school_statistics_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                             known_dir: Path | None = None) -> dict:
    """Pupils by characteristic, attainment and absence, for publication."""
    return deliver(input_dir, out, run_period(period), policy_file, ("school_statistics",), known_dir)


@flow(name="early_years_return")
def early_years_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                       known_dir: Path | None = None) -> dict:
    """Funding statistics, the termly provider headcount and (in spring) the DfE early years census."""
    return deliver(input_dir, out, run_period(period), policy_file, ("early_years",), known_dir)


@flow(name="destinations_return")
def destinations_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                        known_dir: Path | None = None) -> dict:
    """The NCCIS extract for the DfE and destination statistics."""
    return deliver(input_dir, out, run_period(period), policy_file, ("destinations",), known_dir)


@flow(name="health_return")
def health_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                  known_dir: Path | None = None) -> dict:
    """NCMP prevalence and the pseudonymised NCMP extract for the health body."""
    return deliver(input_dir, out, run_period(period), policy_file, ("health",), known_dir)


@flow(name="youth_support_return")
def youth_support_return(input_dir: Path, out: Path, period: str | None = None, policy_file: Path | None = None,
                         known_dir: Path | None = None) -> dict:
    """Pupils aged 13 and over for youth support services, within each one's opt-out."""
    return deliver(input_dir, out, run_period(period), policy_file, ("youth_support",), known_dir)


RETURNS = {"census": census_return, "school_statistics": school_statistics_return, "early_years": early_years_return,
           "destinations": destinations_return, "health": health_return, "youth_support": youth_support_return}
