"""`lareturns audit RUN_DIR`: check a run's outputs without trusting the pipeline's own reports.

Every check works from what is on disk: the ledger (both copies), the delivered files, the published EES files and
the warehouse's staged identifiers. It recomputes rather than reads back: file hashes against the ledger's, the
chain's links, an interval attack on every published release (pipelines/intruder.py, which shares no code with
the engine that protected it), and the leak scan. Each finding says what failed and where, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.intruder import attack
from pipelines.io import file_sha256
from pipelines.leakscan import leaks_by_recipient
from pipelines.ledger import chain_problems, file_entries, warehouse_entries
from pipelines.policies import load_disclosure_policy, load_publication, load_recipients
from pipelines.registry import RunPaths, publication_names, publication_spec
from pipelines.warehouse import open_warehouse


@dataclass(frozen=True)
class Finding:
    check: str
    passed: bool
    detail: str


def ledger_findings(paths: RunPaths) -> tuple[list[Finding], dict | None]:
    """The chain in both copies, and whether they agree; returns the latest run entry."""
    with open_warehouse(paths.warehouse) as connection:
        stored = warehouse_entries(connection)
    exported = file_entries(paths.ledger)
    findings = [Finding("ledger chain (warehouse)", not (p := chain_problems(stored)), "; ".join(p) or f"{len(stored)} entries"),
                Finding("ledger chain (ledger.jsonl)", not (q := chain_problems(exported)), "; ".join(q) or f"{len(exported)} entries")]
    same = [e.get("entry_hash") for e in stored] == [e.get("entry_hash") for e in exported]
    findings.append(Finding("ledger copies agree", same, "identical" if same else
                            f"the warehouse holds {len(stored)} entries and ledger.jsonl {len(exported)}, or they differ"))
    runs = [e for e in stored if e.get("kind") == "run"]
    return findings, runs[-1] if runs else None


def hash_findings(paths: RunPaths, entry: dict | None) -> list[Finding]:
    """Every delivered and report file against the latest run's ledger entry, and no file the ledger lacks."""
    if entry is None:
        return [Finding("outputs recorded in the ledger", False, "the ledger has no run")]
    recorded = entry["body"]["outputs"]
    on_disk = {p.relative_to(paths.root).as_posix() for folder in (paths.deliveries, paths.report)
               for p in folder.rglob("*") if p.is_file()}
    changed = sorted(f for f in recorded if f in on_disk and file_sha256(paths.root / f) != recorded[f])
    missing, extra = sorted(set(recorded) - on_disk), sorted(on_disk - set(recorded))
    return [Finding("file hashes match the ledger", not changed, f"changed: {', '.join(changed)}" if changed else f"{len(recorded)} files"),
            Finding("every recorded file is there", not missing, f"missing: {', '.join(missing)}" if missing else "all present"),
            Finding("no unrecorded file", not extra, f"not in the ledger: {', '.join(extra)}" if extra else "none")]


def attack_findings(paths: RunPaths) -> list[Finding]:
    """The interval attack on every published release: no suppressed value narrower than one person."""
    recipients, findings = load_recipients(), []
    for name in publication_names():
        publication = load_publication(publication_spec(name))
        folder = paths.deliveries / publication.recipient
        files = [folder / f"{t.name}.csv" for t in publication.tables]
        if not all(f.exists() for f in files):
            continue
        base = load_disclosure_policy(recipients[publication.recipient].policy).rounding_base
        narrow = [key for key, (low, high) in attack(files, base).items() if high - low < 1 - 1e-6]
        findings.append(Finding(f"interval attack on {name}", not narrow,
                                f"{len(narrow)} suppressed values can be worked out, e.g. {' / '.join(narrow[0])}" if narrow
                                else f"{len(files)} linked files, no suppressed value narrower than one"))
    return findings


def leak_findings(paths: RunPaths) -> list[Finding]:
    return [Finding(f"leak scan of {recipient}", not leaks, "; ".join(map(str, leaks[:3])) or "no identifier")
            for recipient, leaks in leaks_by_recipient(paths.deliveries, paths.warehouse).items()]


def anchor_findings(paths: RunPaths, expected: str | None) -> list[Finding]:
    """The chain still holds an entry the auditor recorded outside the run folder (the hash `lareturns run` prints
    and its Prefect artifact keeps): without such an anchor, cutting the newest entries from both copies of the
    chain would leave a shorter chain that is still whole."""
    if expected is None:
        return []
    hashes = [e.get("entry_hash") for e in file_entries(paths.ledger)]
    found = expected in hashes
    return [Finding("ledger holds the recorded entry", found,
                    f"entry {hashes.index(expected) + 1} of {len(hashes)}" if found
                    else "not in the chain: entries were cut from its end, or it was rewritten")]


def verify_run(root: Path, expected_entry: str | None = None) -> list[Finding]:
    paths = RunPaths(root)
    ledger, entry = ledger_findings(paths)
    return (ledger + anchor_findings(paths, expected_entry) + hash_findings(paths, entry) + attack_findings(paths)
            + leak_findings(paths))


def latest_entry_hash(root: Path) -> str | None:
    entries = file_entries(RunPaths(root).ledger)
    return entries[-1].get("entry_hash") if entries else None
