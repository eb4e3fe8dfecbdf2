"""What is already out: earlier releases under a run folder (found through the ledger), and files others publish.

Every run keeps a copy of the aggregate files it delivered in 06_history/releases/<run_id>/<recipient>/ (published
statistics only: never a record-level extract), and its ledger entry holds their hashes as delivered. The
earlier release of a publication is the newest earlier run whose entry recorded all of its table files; its
copies are trusted only if their hashes still match that entry. The run also keeps, restricted, the counts its
statistics were protected from (06_history/counts/<run_id>/: each population's inner cells and hierarchies), so
that the next run can model an intruder who holds both releases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from disclosure_control.hierarchy import ROOT, Hierarchy
from outputs.files import copy_atomic, file_sha256, read_csv_text, read_json, write_parquet_atomic, write_text_atomic
from pipelines.nodes.protection import EarlierRun
from pipelines.nodes.release import KnownFile, Problem
from pipelines.store.commit import delivered_runs
from pipelines.store.ledger import file_entries
from schemas.catalog import DELIVERIES, RunPaths, counts_files, ees_files, meta_file, table_file


class HistoryError(ValueError):
    """An earlier release the ledger records whose files are not as delivered."""


@dataclass(frozen=True)
class EarlierRelease:
    run_id: str
    period: str
    folder: Path  # 06_history/releases/<run_id>: <recipient>/<table>.csv and .meta.csv as delivered

    @property
    def label(self) -> str:
        return f"the {self.period} release (run {self.run_id})"

    def file(self, recipient: str, table: str) -> Path:
        return table_file(self.folder / recipient, table)


def earlier_release(paths: RunPaths, tables: list[tuple[str, str]], before: str | None = None) -> EarlierRelease | None:
    """The newest run (before the run `before`, if given) whose delivery completed with every one of these
    (recipient, table) files, if its copies are kept: they must be the files its ledger entry records."""
    wanted = [f"{DELIVERIES}/{recipient}/{f.name}" for recipient, t in tables for f in ees_files(Path(), t)]
    entries = delivered_runs(file_entries(paths.ledger))
    runs = [e.get("body", {}).get("run_id") for e in entries]
    if before is not None:
        entries = entries[:runs.index(before)] if before in runs else []
    for entry in reversed(entries):
        body = entry.get("body", {})
        outputs = body.get("outputs", {})
        if not all(name in outputs for name in wanted):
            continue
        folder = paths.release(body["run_id"])
        if not folder.is_dir():
            return None  # delivered before runs kept their releases: nothing to compare with
        for name in wanted:
            copy = folder / Path(name).relative_to(DELIVERIES)
            if not copy.is_file() or file_sha256(copy) != outputs[name]:
                raise HistoryError(f"{copy}: not the file the ledger records as delivered in run {body['run_id']} "
                                   "(changed or missing), so the earlier release cannot be trusted")
        return EarlierRelease(body["run_id"], body.get("period", "earlier"), folder)
    return None


def known_files(folder: Path) -> list[KnownFile]:
    """Every EES file (name.csv with its name.meta.csv) in the folder, as text."""
    if not folder.is_dir():
        raise HistoryError(f"{folder}: no such folder of published files")
    found = []
    for path in sorted(p for p in folder.glob("*.csv") if not p.stem.endswith(".meta")):  # not x.meta.csv
        meta_path = meta_file(path)
        if not meta_path.is_file():
            raise HistoryError(f"{path}: no {meta_path.name} beside it, so its filters and indicators are unknown")
        meta = read_csv_text(meta_path)
        if not {"col_name", "col_type"} <= set(meta.columns):
            raise HistoryError(f"{meta_path}: not an EES meta file (needs col_name and col_type)")
        kind = lambda t: tuple(meta.filter(pl.col("col_type") == t)["col_name"].to_list())  # noqa: E731
        found.append(KnownFile(path.name, published_text(path, meta), kind("Filter"), kind("Indicator")))
    return found


def published_text(path: Path, meta: pl.DataFrame) -> pl.DataFrame:
    """An EES file as text (blanks as ""), each filter's default (its meta's filter_default) read as the model's
    Total: the file says what its total is called, whatever today's specs call it."""
    data = read_csv_text(path).with_columns(pl.all().fill_null(""))
    if "filter_default" not in meta.columns:
        return data
    defaults = meta.filter((pl.col("col_type") == "Filter") & (pl.col("filter_default").fill_null("") != ""))
    return data.with_columns(pl.col(name).replace(default, ROOT)
                             for name, default in defaults.select("col_name", "filter_default").iter_rows() if name in data.columns)


def keep_counts(folder: Path, population: str, inner: pl.DataFrame, hierarchies: dict[str, Hierarchy]) -> None:
    """A population's inner cells and hierarchies (restricted: unsuppressed counts), for the next run."""
    inner_file, tree_file = counts_files(folder, population)
    write_parquet_atomic(inner, inner_file)
    write_text_atomic(tree_file,
                      json.dumps({d: [list(pair) for pair in h.parent_of] for d, h in hierarchies.items()}))


def kept_counts(folder: Path, population: str) -> tuple[pl.DataFrame, dict[str, Hierarchy]] | None:
    """What keep_counts kept in the folder, or None when it holds nothing for the population."""
    inner, tree = counts_files(folder, population)
    if not (inner.is_file() and tree.is_file()):
        return None
    pairs = read_json(tree)
    return pl.read_parquet(inner), {d: Hierarchy(d, tuple(tuple(p) for p in ps)) for d, ps in pairs.items()}


def earlier_for(paths: RunPaths, publications: list, keys: list[str], before: str | None = None
                ) -> tuple[EarlierRelease, dict[str, tuple[pl.DataFrame, dict[str, Hierarchy]]] | None] | None:
    """The newest earlier run (before the run `before`, if given) that delivered every one of these
    publications, with the counts it kept for each population (by key), or None for the counts if it kept none
    (a run before release-wide protection). The engine and the audit both take the earlier release from here, so
    they compare the same two releases."""
    found = earlier_release(paths, [(p.recipient, t.name) for p in publications for t in p.tables], before)
    if found is None:
        return None
    counts = {key: kept_counts(paths.counts(found.run_id), key) for key in keys}
    return found, None if any(c is None for c in counts.values()) else counts


def earlier_run(paths: RunPaths, problem: Problem) -> EarlierRun | None:
    """A problem's earlier release, its files read as delivered and its counts by population name."""
    found = earlier_for(paths, list(problem.publications), [p.key for p in problem.populations])
    if found is None:
        return None
    release, counts = found
    shown = {(p.recipient, t.name): published_text(path, read_csv_text(meta_file(path)))
             for p in problem.publications for t in p.tables for path in [release.file(p.recipient, t.name)]}
    return EarlierRun(release.label, shown, None if counts is None else {p.name: counts[p.key] for p in problem.populations})


def archive_counts(paths: RunPaths, run_id: str, populations: list[str]) -> None:
    """The counts the run kept beside its decision records, under its run id for the runs after it, and its decision records
    (for recovery to put back if a later run is killed after rewriting them)."""
    for population in populations:
        for work, kept in zip(counts_files(paths.protected, population), counts_files(paths.counts(run_id), population),
                              strict=True):
            copy_atomic(work, kept)
    for path in paths.decision_files():
        copy_atomic(path, paths.kept_decisions(run_id) / path.name)
