"""Where everything is: every config file and spec folder lareturns reads, and the layout of a run folder with its
stages in the order a run passes through them, and the files in them. The one module that knows paths
(tests/test_layout.py finds no path joined from a literal elsewhere).

A run folder (`lareturns run census --out RUN`):

    01_validated/     quarantine/<dataset>.csv, data_docs/, validation.json      (restricted)
    02_warehouse/     warehouse.duckdb: staged rows, quarantine, ledger         (restricted)
    03_protected/     <publication>.decisions.parquet and each population's counts  (restricted)
    04_deliveries/    <recipient>/: the files each recipient receives, with its manifest
    05_report/        the auditor report, and its restricted evidence file
    06_history/       releases/<run_id>/: what each run published, for the next run's differencing attack;
                      counts/<run_id>/: the counts they were protected from   (restricted)
    ledger.jsonl      the signed, hash-chained copy of the warehouse's ledger
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

SCHEMAS_DIR = Path(__file__).parent
POLICIES_DIR = SCHEMAS_DIR / "policies"
PUBLICATIONS_DIR = SCHEMAS_DIR / "publications"
EXTRACTS_DIR = SCHEMAS_DIR / "extracts"
CONTRACTS_DIR = SCHEMAS_DIR / "contracts"
CODESETS_DIR = SCHEMAS_DIR / "codesets"
DFE_LOOKUPS_DIR = SCHEMAS_DIR / "reference" / "dfe-lookups"
FORMATS_DIR = SCHEMAS_DIR / "formats"  # the XML schemas of the DfE returns, written from their specifications
DISCLOSURE_POLICY = POLICIES_DIR / "disclosure.toml"
RECIPIENTS = POLICIES_DIR / "recipients.toml"
ACCESS = POLICIES_DIR / "access.toml"
RETENTION = POLICIES_DIR / "retention.toml"
SCHEDULE = POLICIES_DIR / "schedule.toml"
FILTERS = PUBLICATIONS_DIR / "filters.toml"
DATA_DOCS_ASSETS = SCHEMAS_DIR / "reference" / "data-docs-assets.toml"  # Data Docs' CDN assets, pinned to npm releases
# where the install (python -m pipelines.assurance.docs_assets) keeps those releases' files: with the environment
INSTALLED_DOCS_ASSETS = Path(sys.prefix) / "share" / "lareturns" / "data-docs-assets"
CONFIG_DIRS = (POLICIES_DIR, PUBLICATIONS_DIR, EXTRACTS_DIR)
DELIVERIES = "04_deliveries"  # also the prefix of a delivered file's name in the ledger and manifests
# What a run reads from outside its folder, by the names its tasks declare (pipelines/flows/returns.py stage):
OUTSIDE = {"inputs": "the landing folder of MIS exports", "known": "figures others publish (--known)"}
RETURN_NAMES = ("school_statistics", "early_years", "destinations", "health", "youth_support")  # a spec's `return`


@dataclass(frozen=True)
class ValidationPaths:
    """What a validation writes in its folder (a run's 01_validated/, or `lareturns validate --out`)."""

    root: Path

    @property
    def quarantine(self) -> Path:
        """The analysts' quarantine files, <dataset>.csv: the rejected rows' raw fields (restricted)."""
        return self.root / "quarantine"

    def quarantine_file(self, dataset: str) -> Path:
        return self.quarantine / f"{dataset}.csv"

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
        return self.root / "01_validated"

    @property
    def warehouse(self) -> Path:
        return self.root / "02_warehouse" / "warehouse.duckdb"

    @property
    def lock(self) -> Path:
        """Held by the run or purge working in the folder."""
        return self.root / ".lareturns.lock"

    @property
    def ledger(self) -> Path:
        """The JSON-lines copy of the warehouse's hash-chained ledger (pipelines/store/ledger.py)."""
        return self.root / "ledger.jsonl"

    @property
    def deliveries(self) -> Path:
        return self.root / DELIVERIES

    @property
    def protected(self) -> Path:
        """Each publication's cell decisions (read by the audit) and each population's counts, passed between tasks by
        reference."""
        return self.root / "03_protected"

    def decisions(self, publication: str) -> Path:
        return self.protected / f"{publication}{DECISIONS}"

    def decision_files(self) -> list[Path]:
        """Every publication's decision records in the folder, in name order."""
        return sorted(self.protected.glob(f"*{DECISIONS}"))

    def delivery(self, recipient: str) -> Path:
        return self.deliveries / recipient

    def delivered_file(self, recipient: str, name: str, suffix: str = ".csv") -> Path:
        """A recipient's extract or EES data file by its stem (an XML return: suffix .xml)."""
        return table_file(self.delivery(recipient), name, suffix)

    @property
    def report_files(self) -> ReportFiles:
        return ReportFiles(self.report)

    @property
    def report(self) -> Path:
        return self.root / "05_report"

    @property
    def releases(self) -> Path:
        """Each run's published statistics as delivered, by run id (pipelines/store/history.py)."""
        return self.root / "06_history" / "releases"

    def release(self, run_id: str) -> Path:
        return self.releases / run_id

    @property
    def kept_counts(self) -> Path:
        """The counts each run's statistics were protected from, by run id: restricted, for differencing by the
        next run."""
        return self.root / "06_history" / "counts"

    def earlier_layout(self) -> list[str]:
        """The places a run folder had before its stages were numbered, that are here: such a folder's ledger and
        history would be misread (its entries name deliveries/ and releases/), so runs and purges refuse it."""
        return [name for name in ("data", "validated", "deliveries", "report", "releases") if (self.root / name).exists()]

    def counts(self, run_id: str) -> Path:
        return self.kept_counts / run_id

    def kept_decisions(self, run_id: str) -> Path:
        """The decision records a run delivered with, for recovery to put back."""
        return self.counts(run_id) / "decisions"


@dataclass(frozen=True)
class ReportFiles:
    """The auditor report (it may leave the building) and its evidence (restricted: hidden values)."""

    folder: Path

    @property
    def json(self) -> Path:
        return self.folder / "auditor_report.json"

    @property
    def html(self) -> Path:
        return self.folder / "auditor_report.html"

    @property
    def evidence_json(self) -> Path:
        return self.folder / f"{EVIDENCE}.json"

    @property
    def evidence_html(self) -> Path:
        return self.folder / f"{EVIDENCE}.html"


EVIDENCE = "auditor_evidence"
DECISIONS = ".decisions.parquet"
MANIFEST = "manifest.json"  # in each recipient's delivery folder


def format_schema(layout: str) -> Path:
    """The XML schema of a DfE layout (nccis_xml: formats/nccis.xsd)."""
    return FORMATS_DIR / f"{layout.removesuffix('_xml')}.xsd"


def docs_static(site: Path) -> Path:
    """The folder of a Data Docs site where GX writes its own styles, fonts and images."""
    return site / "static"


def docs_vendor(site: Path) -> Path:
    """Where a Data Docs site keeps its copies of the pinned assets, one folder per package release."""
    return docs_static(site) / "vendor"


def table_file(folder: Path, name: str, suffix: str = ".csv") -> Path:
    """A delivered table by its stem: <name>.csv (data or extract), <name>.meta.csv (its EES metadata), or
    parquet/<name>.parquet."""
    return folder / "parquet" / f"{name}{suffix}" if suffix == ".parquet" else folder / f"{name}{suffix}"


def meta_file(data_file: Path) -> Path:
    """The EES metadata file beside a data file."""
    return data_file.with_name(f"{data_file.stem}.meta.csv")


def ees_files(folder: Path, name: str) -> tuple[Path, Path]:
    """An EES data file and its metadata file, as the EES screener pairs them."""
    return table_file(folder, name), table_file(folder, name, ".meta.csv")


def counts_files(folder: Path, population: str) -> tuple[Path, Path]:
    """A population's kept inner cells and its hierarchies."""
    return folder / f"{population}.inner.parquet", folder / f"{population}.hierarchies.json"


def reference_folder(out: Path) -> Path:
    """Where `lareturns generate` writes the county's reference data (schools, providers, geography)."""
    return out / "reference"


def publication_spec(name: str) -> Path:
    return PUBLICATIONS_DIR / f"{name}.toml"


def publication_names() -> list[str]:
    return sorted(p.stem for p in PUBLICATIONS_DIR.glob("*.toml") if p != FILTERS)


def extract_spec(name: str) -> Path:
    return EXTRACTS_DIR / f"{name}.toml"


def extract_names() -> list[str]:
    return sorted(p.stem for p in EXTRACTS_DIR.glob("*.toml"))


def config_files() -> list[Path]:
    """Every policy and spec file a run's outputs depend on (their hashes go in the ledger)."""
    return sorted(p for folder in CONFIG_DIRS for p in folder.glob("*.toml"))


def policy_file(name: str) -> Path:
    """A disclosure policy named by a recipient (recipients.toml's `policy`)."""
    return POLICIES_DIR / name


def contract_file(dataset: str) -> Path:
    return CONTRACTS_DIR / f"{dataset}.toml"


def contract_names() -> list[str]:
    return sorted(p.stem for p in CONTRACTS_DIR.glob("*.toml"))


def codeset_file(name: str) -> Path:
    return CODESETS_DIR / f"{name}.csv"


def codeset_names() -> list[str]:
    return sorted(p.stem for p in CODESETS_DIR.glob("*.csv"))


def dfe_lookup_file(name: str) -> Path:
    return DFE_LOOKUPS_DIR / f"{name}.csv"


@dataclass(frozen=True)
class NationalPaths:
    """A national run's folders: the LAs' exports, a folder per LA named by its old LA code (`lareturns generate
    --by-la`), and its output, a run folder per LA (RunPaths) beside the national summary."""

    inputs: Path
    root: Path

    def las(self) -> list[str]:
        """The LAs whose exports are in the input: folders named by a 3-digit old LA code."""
        return sorted(p.name for p in self.inputs.iterdir() if p.is_dir() and p.name.isdigit() and len(p.name) == 3)

    def la_input(self, la: str) -> Path:
        return self.inputs / la

    def la_run(self, la: str) -> Path:
        return self.root / la

    @property
    def summary(self) -> Path:
        return self.root / "national.json"
