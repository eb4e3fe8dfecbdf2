"""The whole release protected as one: each problem (publications over linked units) under its one policy, with
what is already public as the intruder's prior: figures others publish (known files) and this release's earlier
edition. Pure: the release model, what was published before and the run's config in; each publication's
decision records, its summary, and the counts to keep for the next run out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from disclosure_control.hierarchy import ROOT, Hierarchy
from disclosure_control.policy import Policy, as_mapping
from disclosure_control.prior import Earlier, Prior
from disclosure_control.protect import protect
from disclosure_control.release import release_table
from disclosure_control.rounding import round_published
from disclosure_control.table import CELL_ID, TableSet
from pipelines.nodes.ees import area_nodes, current_names, time_columns
from pipelines.nodes.release import (KnownFile, Problem, Release, ReleaseError, earlier_release_of, empty_cells,
                                     file_coordinates, known_figures, nestings, publication_summary, shown_cells)
from schemas.calendar import Term
from schemas.specs.publication import Filter, Publication
from schemas.specs.run import RunConfig

Counts = tuple[pl.DataFrame, dict[str, Hierarchy]]  # a population's inner cells and hierarchies


@dataclass(frozen=True)
class EarlierRun:
    """A problem's earlier release as it was delivered: what its files showed, and the counts its run kept by
    population name (None: it kept none, a run before release-wide protection)."""

    label: str
    shown: dict[tuple[str, str], pl.DataFrame]  # (recipient, table) -> the file as delivered, blanks as ""
    counts: dict[str, Counts] | None


@dataclass(frozen=True)
class ProtectedRelease:
    decisions: dict[str, pl.DataFrame]  # publication -> its cells' decision records
    protections: list[dict]  # each publication's summary, in protection order
    counts: dict[str, Counts]  # population key -> the counts to keep for the next run
    relations: list[str]
    known: list[dict]  # the known files' figures used
    populations: list[str]  # keys of the populations with counts

    def summary(self) -> dict:
        return {"protections": self.protections, "relations": self.relations, "known": self.known,
                "populations": self.populations}


def protected_release(release: Release, earlier: dict[tuple, EarlierRun], known: list[KnownFile], config: RunConfig,
                      la_code: str, term: Term,
                      progress: Callable[[str, int, int], None] = lambda text, done, total: None) -> ProtectedRelease:
    """progress(text, done, total) is told after each protection problem (its publications protected together)."""
    release = release.with_earlier({name: current_counts(counts, release.group(name).filters, run.label)
                                    for run in earlier.values() if run.counts for name, counts in run.counts.items()})
    decisions, protections, counts, used = {}, [], {}, []
    for done, problem in enumerate(release.problems, 1):
        policy = config.problem_policy(problem.publications)
        table, public = problem.table, {}
        for known_file in known:
            publication = known_file.publication(list(problem.publications))
            if publication is not None:
                population = release.population_of(publication.name).name
                time = tuple(pl.select(time_columns(term, publication.time)).row(0))
                table, figures, left_out = known_figures(table, population, known_file, publication, time, la_code,
                                                         area_nodes(known_file.data))
                public |= {cell: known_file.name for cell in figures[CELL_ID].to_list()}
                used.append({"file": known_file.name, "publication": publication.name, "figures": figures.height,
                             "left_out": left_out})
        run = earlier.get(problem.names)
        before = problem_earlier(release, problem, table, run, policy) if run else None
        amounts = release.amounts(problem, table, term.academic_year)
        policy = policy if amounts else policy.for_counts()  # its magnitude rules are for the amounts alone
        result = round_published(protect(table, policy, prior=Prior(public, before), amounts=amounts))
        cells = result.cells
        summary = result.summary()
        for population in problem.populations:
            part = release.parts[population.name]
            counts[population.key] = (part.inner.filter(pl.col("value") > 0), part.hierarchies)
        progress(f"{', '.join(p.name for p in problem.publications)}: {summary['cells']:,} cells, "
                 f"{summary['by_status'].get('primary', 0):,} primary, {summary['by_status'].get('secondary', 0):,} "
                 "secondary", done, len(release.problems))
        for publication in problem.publications:
            decisions[publication.name] = mine = release.publication_cells(cells, publication)
            population = release.population_of(publication.name)
            protections.append(protection(publication, release.rows[population.name].height,
                                          release.unplaced[population.name], publication_summary(mine, summary), policy,
                                          [p.name for p in problem.publications], before.label if before else None))
    for population in release.empty:
        policy = config.problem_policy(population.publications)
        summary = {"cells": 0, "by_status": {}, "information_loss": {}, "audit": {"passed": True}, "method": policy.method,
                   "policy_version": policy.version, "notes": [f"no units in {term}: published empty"]}
        for publication in population.publications:
            decisions[publication.name] = cells = empty_cells(publication)
            protections.append(protection(publication, 0, release.unplaced[population.name],
                                          publication_summary(cells, summary), policy, [publication.name], None))
    return ProtectedRelease(decisions, protections, counts, [r.describe() for r in release.relations], used,
                            [p.key for p in release.groups if p.name in release.parts])


def protection(publication: Publication, units: int, without_area: int, summary: dict, policy: Policy,
               protected_with: list[str], earlier: str | None) -> dict:
    return {"name": publication.name, "title": publication.title, "recipient": publication.recipient,
            "files": [t.name for t in publication.tables], "units": units, "units_without_area": without_area,
            "summary": summary, "policy": as_mapping(policy), "protected_with": protected_with, "earlier": earlier}


def problem_earlier(release: Release, problem: Problem, table: TableSet, run: EarlierRun, policy: Policy) -> Earlier:
    """The earlier release as an intruder holds it: the model of its counts and what its files showed; without
    its counts, what its files showed at this release's cells (so that its hidden cells stay hidden)."""
    if run.counts is None:
        shown = pl.concat([earlier_shown(table, release, publication, run) for publication in problem.publications])
        return earlier_release_of(table, shown, policy, run.label)
    parts = {p.name: release.earlier_parts[p.name] for p in problem.populations}
    model = release_table(parts, nestings(list(problem.relations)))
    shown = pl.concat([earlier_shown(model, release, publication, run) for publication in problem.publications])
    return earlier_release_of(model, shown, policy, run.label, model)


RENAMED = "if it was renamed since, give its earlier name as `was` in schemas/publications/filters.toml"


def current_counts(counts: Counts, filters: tuple[Filter, ...], label: str) -> Counts:
    """The counts an earlier run kept under today's filter names and labels (see current_names). Refused where
    they cannot be: a filter they lack, or a category of a filter with its own labels that it no longer has (a
    renamed label would otherwise be counted as a category of its own, zero today)."""
    inner, hierarchies = counts
    inner = current_names(inner, filters)
    missing = [f.name for f in filters if f.name not in inner.columns]
    if missing:
        raise ReleaseError(f"{label}: the counts its run kept have no filter {missing[0]!r}; {RENAMED}")
    for spec in filters:
        if spec.labels and not spec.codeset:
            gone = sorted(set(inner[spec.name].unique().to_list()) - {v for _, v in spec.labels} - {spec.missing, ROOT})
            if gone:
                raise ReleaseError(f"{label}: the counts its run kept have {spec.name} {gone[0]!r}, no longer one of its "
                                   "labels; if it was relabelled since, map it in `was.labels` in "
                                   "schemas/publications/filters.toml")
    by_name = {f.name: f for f in filters} | {f.was: f for f in filters if f.was in hierarchies and f.name not in hierarchies}

    def current(dimension: str, hierarchy: Hierarchy) -> tuple[str, Hierarchy]:
        spec = by_name.get(dimension)
        if spec is None:  # the area (or a filter no publication of the population has any more)
            return dimension, hierarchy
        labels = dict(spec.was_labels)
        return spec.name, Hierarchy(spec.name, tuple((labels.get(c, c), labels.get(p, p)) for c, p in hierarchy.parent_of))
    return inner, dict(current(d, h) for d, h in hierarchies.items())


def earlier_shown(table: TableSet, release: Release, publication: Publication, run: EarlierRun) -> pl.DataFrame:
    """cell_id (of the earlier release's model) and what its files of the publication's tables showed there."""
    population = release.population_of(publication.name).name
    frames = []
    for published in publication.tables:
        data = current_names(run.shown[(publication.recipient, published.name)], published.filters)
        missing = [f.name for f in published.filters if f.name not in data.columns]
        if missing:
            raise ReleaseError(f"{run.label}: its file {published.name} has no filter {missing[0]!r}; {RENAMED}")
        if publication.indicator not in data.columns:
            raise ReleaseError(f"{run.label}: its file {published.name} has no indicator {publication.indicator!r}, so "
                               "it cannot be compared with this release")
        coordinates = file_coordinates(table, population, [f.name for f in published.filters], data, area_nodes(data))
        frames.append(shown_cells(table, coordinates, data[publication.indicator]))
    return pl.concat(frames).unique(CELL_ID, keep="first", maintain_order=True)
