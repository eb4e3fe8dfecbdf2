"""Delivery manifests: what a folder holds, for whom, under which basis, from which run and policy.

The manifest is written last, beside the files it lists, so a folder with a manifest is a complete delivery;
anyone can re-hash the files against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from pipelines.io import file_sha256

MANIFEST = "manifest.json"


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
    return entry


def write_manifest(folder: Path, recipient: dict, run: dict, suppression: dict | None = None) -> Path:
    """recipient: name, legal_basis, level; run: run_id, period, policy_version, created_at."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {"recipient": recipient, "run": run, "files": [file_entry(folder, p) for p in files]}
    if suppression is not None:
        manifest["suppression"] = suppression
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return path
