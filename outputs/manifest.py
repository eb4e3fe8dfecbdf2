"""Delivery manifests: what a folder holds, for whom, under which basis, from which run and policy.

The manifest is written last, beside the files it lists, so a folder with a manifest is a complete delivery;
anyone can re-hash the files against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from lxml import etree

from outputs.files import file_sha256, write_text_atomic
from schemas.catalog import MANIFEST
from schemas.specs.layout import LAYOUTS
from schemas.specs.run import RunConfig


def csv_rows(path: Path) -> int:
    """Data rows (lines after the header); fields never hold line breaks in lareturns' own files."""
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def file_entry(folder: Path, path: Path) -> dict:
    entry = {"file": path.relative_to(folder).as_posix(), "sha256": file_sha256(path), "bytes": path.stat().st_size}
    if path.suffix == ".csv":
        entry["rows"] = csv_rows(path)
    elif path.suffix == ".parquet":
        entry["rows"] = pl.scan_parquet(path).select(pl.len()).collect().item()
    elif path.suffix == ".xml":
        entry["records"] = xml_record_count(path)
    return entry


def xml_record_count(path: Path) -> int:
    """The people's records in a DfE XML return (YoungPersonsRecord, PupilChild: schemas/specs/layout.py)."""
    records = {layout.record for layout in LAYOUTS.values()}
    return sum(1 for _ in etree.iterparse(path, tag=sorted(records), resolve_entities=False, no_network=True,
                                             huge_tree=True))


def manifest(folder: Path, recipient: dict, run: dict, suppression: dict | None = None) -> dict:
    """recipient: name, legal_basis, level; run: run_id, period, policy_version, created_at."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    document = {"recipient": recipient, "run": run, "files": [file_entry(folder, p) for p in files]}
    if suppression is not None:
        document["suppression"] = suppression
    return document


def write_manifests(deliveries: Path, config: RunConfig, run: dict, protections: list[dict]) -> list[dict]:
    """A manifest in each recipient's folder, the policy version its statistics were protected under in the run
    record; returns each delivery as the auditor report lists it."""
    listed = []
    for recipient in config.recipients.values():
        folder = deliveries / recipient.key
        if not folder.exists():
            continue
        mine = {p["name"]: p["summary"] for p in protections if p["recipient"] == recipient.key}
        version = next(iter(mine.values()))["policy_version"] if mine else config.recipient_policy(recipient.key).version
        document = manifest(folder, recipient.manifest_entry(), run | {"policy_version": version}, mine or None)
        write_text_atomic(folder / MANIFEST, json.dumps(document, indent=2, sort_keys=True))
        listed.append({"recipient": recipient.key, "name": recipient.name, "legal_basis": recipient.legal_basis,
                       "files": document["files"]})
    return listed
