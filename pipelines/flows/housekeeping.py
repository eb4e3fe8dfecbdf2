"""Prefect flows that look after the data rather than produce a return: thin wiring over pipelines/governance/purge.py.

retention_purge deletes the records whose retention period has ended (schemas/policies/retention.toml) from each
output root's warehouse and from the landing folder, and records each purge in that root's ledger. The schedule
(schemas/policies/schedule.toml) runs it monthly; pipelines/flows/serve.py serves it beside the returns. It is a
module-level function under its own name because a scheduled run imports its flow by name in a new process.

Logs and the artifact hold counts per dataset only, never a value from a row.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from outputs.files import restrict_new_files
from pipelines.flows.prefect_api import without_tracebacks
from pipelines.governance.purge import purge
from pipelines.governance.retention import parse_day
from schemas.calendar import england_day
from schemas.catalog import RunPaths
from schemas.config import load_access_group
from schemas.specs.retention import RetentionError

TASK = {"cache_policy": NO_CACHE, "persist_result": False}


def run_dirs(out: Path) -> list[Path]:
    """The output roots to purge: out itself when it holds a warehouse, else each folder in it that does (the
    schedule's `returns` folder holds one root per scheduled return, all fed from one landing folder)."""
    if RunPaths(out).warehouse.is_file():
        return [out]
    roots = sorted(p for p in out.iterdir() if RunPaths(p).warehouse.is_file()) if out.is_dir() else []
    if not roots:
        raise RetentionError(f"{out}: no warehouse here or in its folders ({RunPaths(Path()).warehouse}); nothing to purge")
    return roots


def purge_day(today: str | None) -> dt.date:
    """As given, or the day the run was scheduled for in England (a late run purges as of its own day)."""
    if today:
        return parse_day(today)
    return england_day(flow_run.scheduled_start_time)


@task(**TASK, task_run_name="purge-{out.name}")
def purge_run_dir(input_dir: Path, out: Path, today: dt.date, dry_run: bool, mapping: Path | None) -> dict:
    """One root's purge. The landing folder is shared: the first root's purge deletes its expired records, so the
    roots after it find none there, and each ledger records only what its own purge deleted."""
    result = purge(input_dir, out, today, dry_run, mapping=mapping)
    logger = get_run_logger()
    for line in result.recovery:
        logger.info(f"{out.name} interrupted runs: {line}")
    for p in result.datasets:
        logger.info(f"{out.name} {p.dataset} ({p.rule}): {'would delete' if dry_run else 'deleted'} staging "
                    f"{p.staging}, quarantine {p.quarantine}, landing {p.landing}; undated kept "
                    f"{p.undated_quarantine} quarantined, {p.undated_landing} landing")
    return {"out": str(out), "ledger_entry": result.ledger_entry["seq"] if result.ledger_entry else None,
            "compacted": result.compacted, "recovery": result.recovery,
            "datasets": [p.ledger_entry() for p in result.datasets]}


@flow(name="retention_purge")
def retention_purge(input_dir: Path, out: Path, today: str | None = None, dry_run: bool = False,
                    mapping: Path | None = None) -> dict:
    """Delete records past their retention period from the warehouse(s) and the landing folder (dry_run: count)."""
    restrict_new_files(group=load_access_group())  # rewritten exports and compacted warehouses stay owner-only
    without_tracebacks()
    day = purge_day(today)
    runs = [purge_run_dir(Path(input_dir), root, day, dry_run, mapping) for root in run_dirs(Path(out))]
    rows = [f"| {Path(r['out']).name} | {d['dataset']} | {d['rule']} | {d['deleted']['staging']} | "
            f"{d['deleted']['quarantine']} | {'-' if d['deleted']['landing'] is None else d['deleted']['landing']} | "
            f"{d['undated_kept']['quarantine']} / {d['undated_kept']['landing']} |" for r in runs for d in r["datasets"]]
    create_markdown_artifact(
        f"Retention purge as of {day.isoformat()}{' (dry run: nothing deleted)' if dry_run else ''}\n\n"
        "| output root | dataset | rule | staging | quarantine | landing | undated kept (quarantine / landing) |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows),
        key="retention-purge", description="Records deleted per dataset (counts only)")
    return {"today": day.isoformat(), "dry_run": dry_run, "runs": runs}


HOUSEKEEPING = {"retention": retention_purge}
