"""The tamper-evident ledger: one entry per run, purge and rectification, hash-chained and append-only.

Each entry holds the hash of the entry before it, and its own hash is SHA-256 over its canonical JSON, so
changing, removing or reordering any entry breaks every later link. Each entry is also signed (Ed25519 over its
hash) with the ledger's private key, kept outside the run folder (pipelines/store/keys.py): anyone who can write the run
folder can recompute a chain, but cannot sign an entry the auditor's public key accepts. The chain is kept twice: in the warehouse
(audit.ledger) and as a JSON-lines file beside it (ledger.jsonl), which an auditor can copy away and check with
`lareturns audit` without trusting the warehouse. Entries hold hashes, counts, recipients and policy versions,
never a value about a person.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from outputs.files import append_bytes, fault_point, write_bytes_atomic
from pipelines.store.keys import ledger_signing_key
from pipelines.store.warehouse import insert_ledger_entry, ledger_tail, ledger_texts

GENESIS = "0" * 64


def canonical(entry: dict) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(entry: dict) -> str:
    """SHA-256 of the entry without its own hash and signature."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k not in ("entry_hash", "signature")})).hexdigest()


def append(connection: duckdb.DuckDBPyConnection, jsonl: Path, kind: str, body: dict, to_file: bool = True) -> dict:
    """The new entry, chained to the last one and written to the warehouse and then the JSON-lines file. Inside a
    transaction, pass to_file=False and call completed_file_copy after the commit: a file copy written before the
    commit would hold an entry the warehouse rolls back if the process dies."""
    last = ledger_tail(connection)
    entry = {"seq": last[0] + 1 if last else 1, "kind": kind, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
             "prev_hash": last[1] if last else GENESIS, "body": body}
    entry["entry_hash"] = entry_hash(entry)
    entry["signature"] = base64.b64encode(ledger_signing_key().sign(entry["entry_hash"].encode())).decode()
    insert_ledger_entry(connection, entry["seq"], canonical(entry).decode(), entry["entry_hash"])
    if not to_file:
        return entry
    fault_point("ledger-copy")
    append_bytes(jsonl, canonical(entry) + b"\n")
    return entry


def completed_file_copy(connection: duckdb.DuckDBPyConnection, jsonl: Path) -> int:
    """The entries a crash kept from ledger.jsonl (written after the warehouse's copy) added to it, with a line it
    cut short removed; returns how many were added. Only a file that is exactly the start of the warehouse's chain
    is completed: any other difference is for the audit to report, not for this to paper over."""
    stored = [canonical(e) for e in warehouse_entries(connection)]
    lines = jsonl.read_bytes().split(b"\n") if jsonl.exists() else [b""]
    whole = [line for line in lines[:-1] if line.strip()]  # the last piece is empty, or a line cut short
    if len(whole) >= len(stored) or whole != stored[:len(whole)]:
        return 0
    write_bytes_atomic(jsonl, b"".join(line + b"\n" for line in stored))
    return len(stored) - len(whole)


def warehouse_entries(connection: duckdb.DuckDBPyConnection) -> list[dict]:
    return [json.loads(text) for text in ledger_texts(connection)]


def file_entries(jsonl: Path) -> list[dict]:
    """The exported entries; a line that is not JSON (cut short, edited) becomes an entry that fails the chain."""
    if not jsonl.exists():
        return []
    return [_parsed(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parsed(line: str) -> dict:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return {"unreadable": True}
    return entry if isinstance(entry, dict) else {"unreadable": True}


def signature_problems(entries: list[dict], public_key: Ed25519PublicKey) -> list[str]:
    """Every entry not signed by the ledger's private key (its public key given): a forged or re-signed entry."""
    problems = []
    for position, entry in enumerate(entries, start=1):
        try:
            public_key.verify(base64.b64decode(entry.get("signature", "")), str(entry.get("entry_hash")).encode())
        except (InvalidSignature, ValueError, TypeError):
            problems.append(f"entry {position}: not signed by the ledger's key")
    return problems


def ledger_problems(jsonl: Path) -> tuple[int, list[str]]:
    """The ledger file as a run finds it: how many entries, and every break in its chain or signatures (checked
    with the public half of the key the run signs with)."""
    entries = file_entries(jsonl)
    return len(entries), chain_problems(entries) + signature_problems(entries, ledger_signing_key().public_key())


def chain_problems(entries: list[dict]) -> list[str]:
    """Every break in the chain: a changed entry, a missing or reordered one, a wrong link."""
    problems, previous = [], GENESIS
    for position, entry in enumerate(entries, start=1):
        if entry.get("seq") != position:
            problems.append(f"entry {position}: sequence number {entry.get('seq')} (an entry is missing or out of order)")
        if entry.get("prev_hash") != previous:
            problems.append(f"entry {entry.get('seq')}: does not follow the entry before it (prev_hash differs)")
        if entry_hash(entry) != entry.get("entry_hash"):
            problems.append(f"entry {entry.get('seq')}: its content does not match its hash (changed after it was written)")
        previous = entry.get("entry_hash")
    return problems
