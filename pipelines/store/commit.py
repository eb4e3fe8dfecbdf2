"""Crash safety: a run's delivery and its ledger entry commit together, and what a killed run leaves is found,
reported, and completed or removed.

A run builds everything it delivers (04_deliveries/, 05_report/, 06_history/releases/<run_id>/) in its staging folder,
.staging-<run_id>, then:

1. writes its "run" ledger entry, holding the SHA-256 of every staged file: the delivery is pending;
2. moves the staged entries into place;
3. writes a "delivered" entry naming the run entry: the delivery is complete.

A run that dies before 1 has delivered nothing: its staging folder (and any other it left, such as validation's
under 01_validated/) is an orphan. One that dies after 1 has a pending entry, and its staging folder holds what was
not yet moved. The next run, and `lareturns retention`, recover before doing anything else: when the files in place
and those still staged together match the entry, they finish the move and close the entry ("delivered", marked as
completed by recovery); when they do not, nothing is moved and the entry is closed "abandoned". Then they remove
the orphans: staging folders, half-written files, and counts kept for a run the ledger never recorded. `lareturns
audit` reports the same leftovers without changing anything.

One process at a time works in a run folder: a run or a purge holds its lock (released by the system when the
process dies, however it dies), and a second one stops at once with one line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from outputs.files import (STAGING_PREFIX, copy_atomic, exclusive_lock, file_sha256, move_staged, staged_output,
                           staging_folder)
from pipelines.store.keys import ledger_signing_key
from pipelines.store.ledger import (append, chain_problems, completed_file_copy, file_entries, signature_problems,
                                    warehouse_entries)
from pipelines.store.warehouse import open_warehouse, run_inputs
from schemas.catalog import RunPaths

ACCUMULATE = (RunPaths(Path()).releases.as_posix(),)  # each run's copies of what it published are added, never replaced
CLOSING_KINDS = ("delivered", "abandoned")


class RunFolderBusy(RuntimeError):
    """Another run or purge is working in this run folder."""


@contextlib.contextmanager
def run_folder_lock(paths: RunPaths) -> Iterator[None]:
    with exclusive_lock(paths.lock, lambda: RunFolderBusy(f"{paths.root}: another run or purge is working in this "
                                                          "folder; wait for it to finish")):
        yield


def staged_delivery(paths: RunPaths, run_id: str):
    """The run's staging folder, moved into place when the block ends without error."""
    return staged_output(paths.root, accumulate=ACCUMULATE, name=run_id, fault="moving")


def run_started() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_record(run_id: str, period: str, returns: tuple[str, ...], started: str, recovered: list[str],
               corrections_reapplied: int) -> dict:
    """What the run's ledger entry, its manifests and its report say the run was."""
    return {"run_id": run_id, "period": period, "returns": list(returns), "created_at": started, "recovered": recovered,
            "corrections_reapplied": corrections_reapplied}


def record_run(paths: RunPaths, run: dict, staging: Path, configs: dict[str, str]) -> dict:
    """The run's entry, before the delivery moves into place: the inputs' hashes, every config file's hash, the
    hash of every file about to be delivered and of the decision records the audit reads. configs: each config
    file's hash as the run loaded it."""
    with open_warehouse(paths.warehouse) as connection:
        return append(connection, paths.ledger, "run", run | {"inputs": run_inputs(connection, run["run_id"]),
                                                             "config": configs, "outputs": output_hashes(staging),
                                                             "decisions": decision_hashes(paths)})


def record_delivery(paths: RunPaths, entry: dict) -> dict:
    """The entry that closes a run's: its delivery is in place."""
    with open_warehouse(paths.warehouse) as connection:
        return append(connection, paths.ledger, "delivered", {"run_id": entry["body"]["run_id"], "run_entry": entry["seq"]})


def output_hashes(root: Path) -> dict[str, str]:
    """Each delivered file (a recipient's, manifests included) and each report file under root -> SHA-256."""
    paths = RunPaths(root)
    files = [p for folder in (paths.deliveries, paths.report) for p in folder.rglob("*") if p.is_file()]
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(files)}


def decision_hashes(paths: RunPaths) -> dict[str, str]:
    """Each publication's decision records -> SHA-256: the records the audit's attack reads, which each run
    rewrites in place (they are not staged with the delivery)."""
    return {p.relative_to(paths.root).as_posix(): file_sha256(p) for p in paths.decision_files()}


def _runs(entries: list[dict], closed_by: tuple[str, ...], closed: bool) -> list[dict]:
    """The run entries that an entry of one of these kinds closes (closed) or that none does (not closed)."""
    closing = {e.get("body", {}).get("run_entry") for e in entries if e.get("kind") in closed_by}
    return [e for e in entries if e.get("kind") == "run" and (e.get("seq") in closing) == closed]


def pending_run(entries: list[dict]) -> dict | None:
    """The last run entry no "delivered" or "abandoned" entry closes: a delivery a crash interrupted."""
    runs = _runs(entries, CLOSING_KINDS, closed=False)
    return runs[-1] if runs else None


def latest_run(entries: list[dict]) -> dict | None:
    """The run entry the files in place should match: the newest one not abandoned (a pending one included, so
    that the audit checks what an interrupted delivery left)."""
    runs = _runs(entries, ("abandoned",), closed=False)
    return runs[-1] if runs else None


def delivered_runs(entries: list[dict]) -> list[dict]:
    """The run entries whose delivery completed, oldest first."""
    return _runs(entries, ("delivered",), closed=True)


@dataclass(frozen=True)
class Leftovers:
    """What crashed runs left in a run folder."""

    pending: dict | None  # the run entry of an interrupted delivery
    orphans: tuple[Path, ...]  # staging folders, half-written files, kept counts of unrecorded runs

    def lines(self, root: Path) -> list[str]:
        said = []
        if self.pending is not None:
            said.append(f"run {self.pending['body'].get('run_id')} (ledger entry {self.pending['seq']}) was "
                        "interrupted during its delivery")
        said += [f"left by an interrupted run: {p.relative_to(root).as_posix()}" for p in self.orphans]
        return said


def newest_entries(paths: RunPaths) -> list[dict]:
    """The longer of the ledger's two copies: a crash between writing them leaves the warehouse's ahead."""
    entries = file_entries(paths.ledger)
    if paths.warehouse.is_file():
        with open_warehouse(paths.warehouse) as connection:
            stored = warehouse_entries(connection)
        entries = stored if len(stored) > len(entries) else entries
    return entries


def leftovers(paths: RunPaths) -> Leftovers:
    entries = newest_entries(paths)
    pending = pending_run(entries)
    keep = staging_folder(paths.root, pending['body'].get('run_id')) if pending else None
    staging = outermost(p for p in paths.root.rglob(f"{STAGING_PREFIX}*") if p.is_dir() and p != keep)
    partial = [p for p in half_written(paths.root, recursive=True)
               if not any(folder in p.parents for folder in (*staging, *([keep] if keep else [])))]
    recorded = {e.get("body", {}).get("run_id") for e in entries if e.get("kind") == "run"}
    kept = paths.kept_counts
    unrecorded = [p for p in sorted(kept.iterdir()) if p.name not in recorded] if kept.is_dir() else []
    return Leftovers(pending, tuple(staging + partial + unrecorded))


def outermost(folders) -> list[Path]:
    """The folders not inside another of them (validation stages under 01_validated/, a delivery at the top)."""
    found = sorted(folders)
    return [f for f in found if not any(other in f.parents for other in found)]


HALF_WRITTEN = re.compile(r"^\..+\.[0-9a-f]{32}(\.partial|\.compact|\.compact\.wal)$")


def half_written(folder: Path, recursive: bool = False) -> list[Path]:
    """The files an atomic write, a landing rewrite or a warehouse compaction leaves when killed before its rename
    (.<name>.<32 hex>.partial or .compact): in the landing folder they hold raw exports."""
    candidates = folder.rglob(".*") if recursive else folder.glob(".*")
    return sorted(p for p in candidates if p.is_file() and HALF_WRITTEN.match(p.name))


def removed(root: Path, found: list[Path]) -> list[str]:
    said = []
    for path in found:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        said.append(f"removed, left by an interrupted run: {path.relative_to(root).as_posix()}")
    return said


def recovered(paths: RunPaths) -> list[str]:
    """Finish or close an interrupted delivery, complete a ledger copy a crash cut short, remove the orphans; one
    line for each thing done (names and counts, never content). The caller holds the run folder's lock.

    Recovery signs ledger entries, so it acts on a pending entry only when the whole chain is intact and signed by
    the ledger's key: otherwise whoever can write the run folder could have it sign for their own files. Such a
    folder is left as it is, for the audit to report."""
    said = []
    if paths.warehouse.is_file():
        with open_warehouse(paths.warehouse) as connection:
            added = completed_file_copy(connection, paths.ledger)
            if added:
                said.append(f"ledger.jsonl: {added} entries a crash kept from it copied from the warehouse's ledger")
            entries = file_entries(paths.ledger)
            pending = pending_run(entries)
            if pending is not None:
                problems = chain_problems(entries) + signature_problems(entries, ledger_signing_key().public_key())
                if problems:
                    return said + [f"run {pending['body'].get('run_id')}: its delivery was interrupted, but the ledger does "
                                   f"not verify ({problems[0]}): nothing was changed; audit the folder"]
                said.append(closed_delivery(connection, paths, pending))
    return said + removed(paths.root, list(leftovers(paths).orphans)) + restored_decisions(paths)


def restored_decisions(paths: RunPaths) -> list[str]:
    """The decision records of the run the files in place are from, put back from its copies when a later run was
    killed after rewriting them (the audit's attack reads them)."""
    entry = latest_run(file_entries(paths.ledger))
    recorded = (entry or {}).get("body", {}).get("decisions")
    if not recorded or decision_hashes(paths) == recorded:
        return []
    copies = paths.kept_decisions(entry["body"]["run_id"])
    if not all((copies / Path(f).name).is_file() and file_sha256(copies / Path(f).name) == h for f, h in recorded.items()):
        return [f"the decision records are not run {entry['body']['run_id']}'s and its copies are missing or changed: "
                "the next run replaces them"]
    for path in paths.decision_files():
        if path.relative_to(paths.root).as_posix() not in recorded:
            path.unlink()
    for name in recorded:
        copy_atomic(copies / Path(name).name, paths.root / name)
    return [f"decision records put back from run {entry['body']['run_id']}'s copies"]


def staged_outcome(paths: RunPaths, staging: Path) -> dict[str, str]:
    """The delivered and report files as they will be once the staging folder's entries are moved into place:
    each top-level entry still staged replaces the one in place."""
    moving = {p.name for p in staging.iterdir()} if staging.is_dir() else set()
    hashes = {f: h for f, h in output_hashes(paths.root).items() if f.split("/")[0] not in moving}
    return hashes | {f: h for f, h in output_hashes(staging).items() if f.split("/")[0] in moving}


def closed_delivery(connection, paths: RunPaths, entry: dict) -> str:
    """The pending delivery checked against its entry, then moved the rest of the way and closed; when the files
    do not match, nothing is moved (what is in place stays) and the entry is closed as abandoned."""
    run_id = entry["body"].get("run_id")
    staging = staging_folder(paths.root, run_id)
    recorded = entry["body"].get("outputs", {})
    outcome = staged_outcome(paths, staging)
    if outcome == recorded:
        if staging.is_dir():
            move_staged(staging, paths.root, ACCUMULATE)
        append(connection, paths.ledger, "delivered", {"run_id": run_id, "run_entry": entry["seq"], "by": "recovery"})
        return f"run {run_id}: its interrupted delivery completed ({len(recorded)} files, as its ledger entry records)"
    differing = sorted(set(recorded) ^ set(outcome) | {f for f in recorded if outcome.get(f, recorded[f]) != recorded[f]})
    append(connection, paths.ledger, "abandoned", {"run_id": run_id, "run_entry": entry["seq"],
                                                   "reason": f"{len(differing)} files differ from the entry"})
    return (f"run {run_id}: its interrupted delivery could not be completed ({len(differing)} files differ from its "
            "ledger entry); recorded as abandoned, the files in place left as they were: run the return again")
