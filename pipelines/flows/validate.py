"""Validate a folder of MIS exports: read all, check all, then write (warehouse, quarantine files, reports).

Ordering is the guarantee: every file is read and checked before anything is written, so a file-level problem
stops the run with nothing written downstream.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from outputs.files import staged_output, write_csv, write_text_atomic
from pipelines.assurance.docs_assets import installed_assets
from pipelines.assurance.expectations import build_data_docs
from pipelines.nodes.validation import Validated, validate_frame
from pipelines.store.exports import FileProblem, RawExport, export_path, read_export
from pipelines.store.warehouse import Reconciliation, load_validated, open_warehouse, previous_row_count
from schemas.calendar import Term
from schemas.catalog import ValidationPaths
from schemas.config import load_mapping
from schemas.contract import load_contract
from schemas.rules import Period

EXPORT_DATASETS = ("pupils", "early_years", "destinations", "ncmp", "schools", "postcodes", "providers")


@dataclass
class DatasetResult:
    dataset: str
    source_file: str
    validated: Validated
    reconciliation: Reconciliation
    ignored_columns: tuple[str, ...]
    expectations: dict = field(default_factory=dict)
    blank_lines: int = 0  # skipped, never a row

    def summary(self) -> dict:
        return {
            "dataset": self.dataset,
            "source_file": self.source_file,
            "rows_read": self.reconciliation.rows_read,
            "blank_lines_skipped": self.blank_lines,
            "rows_staged": self.reconciliation.rows_staged,
            "rows_quarantined": self.reconciliation.rows_quarantined,
            "rows_with_warnings": self.validated.warnings["source_row"].n_unique(),
            "rule_counts": self.validated.rule_counts.to_dicts(),
            "ignored_columns": list(self.ignored_columns),
            "expectations": self.expectations,
        }


@dataclass
class ValidationRun:
    run_id: str
    term: Term
    results: list[DatasetResult]
    not_found: list[str]
    warehouse: Path
    out: Path


Progress = Callable[[str, int, int], None]  # what was done, how many steps of how many


def new_run_id() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def read_exports(folder: Path, mapping: Path | None, datasets: tuple[str, ...]) -> tuple[list[RawExport], list[str]]:
    specs = load_mapping(mapping)
    found = [name for name in datasets if export_path(folder, specs[name].file).exists()]
    if not found:
        raise FileProblem(f"{folder}: none of the exports ({', '.join(specs[n].file for n in datasets)}) is there")
    return [read_export(folder, specs[name]) for name in found], [specs[n].file for n in datasets if n not in found]


def run_validation(
    input_dir: Path,
    out: Path,
    term: Term,
    warehouse: Path | None = None,
    mapping: Path | None = None,
    datasets: tuple[str, ...] = EXPORT_DATASETS,
    run_id: str | None = None,
    progress: Progress = lambda text, done, total: None,
) -> ValidationRun:
    """progress(text, done, total) is told after each export's row rules, with its counts, then after the
    Great Expectations suites (the slowest step)."""
    run_id = run_id or new_run_id()
    period = Period(term)
    warehouse = warehouse or ValidationPaths(out).default_warehouse
    assets = installed_assets()
    exports, not_found = read_exports(input_dir, mapping, datasets)
    checked = []
    for raw in exports:
        checked.append((raw, validated := validate_frame(raw.frame, load_contract(raw.dataset), period)))
        progress(f"{raw.dataset}: {raw.frame.height:,} rows read, {validated.quarantine.height:,} quarantined",
                 len(checked), len(exports) + 1)
    results = []
    with staged_output(out) as staging, open_warehouse(warehouse) as connection:
        previous = {raw.dataset: previous_row_count(connection, raw.dataset) for raw, _ in checked}
        outcomes = build_data_docs([(load_contract(raw.dataset), validated.staged, previous[raw.dataset]) for raw, validated in checked],
                                   ValidationPaths(staging).data_docs, run_id, period, assets)
        progress(f"Great Expectations: {sum(o['success'] for o in outcomes.values())} of {len(outcomes)} suites passed",
                 len(exports) + 1, len(exports) + 1)
        for raw, validated in checked:  # the warehouse is written last: anything failing above leaves it as it was
            reconciliation = load_validated(connection, run_id, load_contract(raw.dataset), validated, raw.path.name,
                                            raw.sha256, raw.frame.height, term)
            write_csv(validated.quarantine, ValidationPaths(staging).quarantine_file(raw.dataset))
            results.append(DatasetResult(raw.dataset, raw.path.name, validated, reconciliation, raw.ignored_columns,
                                         outcomes.get(raw.dataset, {}), raw.blank_lines))
        report = {"run_id": run_id, "period": term.label, "academic_year": term.academic_year,
                  "datasets": [r.summary() for r in results],
                  "not_found": not_found, "warehouse": str(warehouse)}
        write_text_atomic(ValidationPaths(staging).summary, json.dumps(report, indent=2, default=str))
    return ValidationRun(run_id, term, results, not_found, warehouse, out)


def top_rules(validated: Validated, n: int = 3) -> str:
    errors_first = validated.rule_counts.sort(pl.col("severity") != "error", maintain_order=True)
    rows = errors_first.head(n).iter_rows(named=True)
    return ", ".join(f"{r['rule_id']} ({r['rows']:,})" for r in rows) or "-"
