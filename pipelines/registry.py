"""Where each dataset of a run lives: the one place that knows paths (transforms never see them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import schemas

PUBLICATIONS_DIR = Path(schemas.__file__).parent / "publications"
EXTRACTS_DIR = Path(schemas.__file__).parent / "extracts"
CONFIG_DIRS = ("policies", "publications", "extracts")
RETURN_NAMES = ("school_statistics", "early_years", "destinations", "health", "youth_support")  # a spec's `return`


@dataclass(frozen=True)
class ValidationPaths:
    """What a validation writes in its folder (a run's validated/, or `lareturns validate --out`)."""

    root: Path

    @property
    def quarantine(self) -> Path:
        """The analysts' quarantine files, <dataset>.csv: the rejected rows' raw fields (restricted)."""
        return self.root / "quarantine"

    @property
    def data_docs(self) -> Path:
        return self.root / "data_docs"

    @property
    def data_docs_index(self) -> Path:
        return self.data_docs / "index.html"

    @property
    def summary(self) -> Path:
        return self.root / "validation.json"

    @property
    def default_warehouse(self) -> Path:
        """Where `lareturns validate` keeps the warehouse when none is given: as a run folder does."""
        return RunPaths(self.root).warehouse


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def validated(self) -> Path:
        return self.root / "validated"

    @property
    def warehouse(self) -> Path:
        return self.root / "data" / "warehouse.duckdb"

    @property
    def ledger(self) -> Path:
        """The JSON-lines copy of the warehouse's hash-chained ledger (pipelines/ledger.py)."""
        return self.root / "ledger.jsonl"

    @property
    def deliveries(self) -> Path:
        return self.root / "deliveries"

    @property
    def work(self) -> Path:
        """Intermediate results passed between tasks by reference (decision records)."""
        return self.root / "data" / "work"

    def decisions(self, publication: str) -> Path:
        return self.work / f"{publication}.decisions.parquet"

    def delivery(self, recipient: str) -> Path:
        return self.deliveries / recipient

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def releases(self) -> Path:
        """Each run's published statistics as delivered, by run id (pipelines/history.py)."""
        return self.root / "releases"

    def release(self, run_id: str) -> Path:
        return self.releases / run_id

    @property
    def kept_counts(self) -> Path:
        """The counts each run's statistics were protected from, by run id: restricted, for differencing by the
        next run."""
        return self.root / "data" / "releases"

    def counts(self, run_id: str) -> Path:
        return self.kept_counts / run_id


def publication_spec(name: str) -> Path:
    return PUBLICATIONS_DIR / f"{name}.toml"


def publication_names() -> list[str]:
    return sorted(p.stem for p in PUBLICATIONS_DIR.glob("*.toml") if p.stem != "filters")


def extract_spec(name: str) -> Path:
    return EXTRACTS_DIR / f"{name}.toml"


def extract_names() -> list[str]:
    return sorted(p.stem for p in EXTRACTS_DIR.glob("*.toml"))


def config_files() -> list[Path]:
    """Every policy and spec file a run's outputs depend on (their hashes go in the ledger)."""
    root = Path(schemas.__file__).parent
    return sorted(p for folder in CONFIG_DIRS for p in (root / folder).glob("*.toml"))
