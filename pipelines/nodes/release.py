"""A run's release: every publication it delivers, to every recipient, protected as one problem.

Pure: publication specs and staged frames in, the release model and its relations out.

Populations. Publications that count the same units (the same dataset, unit, `where` and kind of geography) are
one population: their tables are linked tables over one set of units, so a cell at the same coordinates in two
of them is one cell with one status.

Relations, derived from the specs alone (never listed per pair of files), which the engine and the intruder both
use and the auditor report lists:
- same: publications that count one population;
- within: a population whose `where` implies another's, on the same dataset and geography, with its unit
  columns among the other's (so its rows are among the other's rows): each of its cells is at most its
  counterpart (absence pupils within pupils on roll; children within funded places);
- part_of: a filter whose categories other than its missing label count exactly the units in one category of
  another filter (filters.toml `part_of`: the bases for two-year-old funding add up to the two-year-olds).
Each relation the release uses is checked against the staged rows: one the data contradicts is a bug in a spec,
and stops the run, naming it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import polars as pl

from disclosure_control.hierarchy import ROOT, Hierarchy
from disclosure_control.policy import Policy
from disclosure_control.prior import Earlier
from disclosure_control.release import POPULATION, Nesting, population_cells, release_table, union_hierarchy
from disclosure_control.status import STATUSES, SUPPRESSED, Status
from disclosure_control.table import (CELL_ID, CONTRIBUTOR, VALUE, Amounts, TableSet, TableSpec, amounts_of, build,
                                      from_microdata)
from pipelines.nodes.publication import area_hierarchy, published_rows, rate_bounds
from schemas.calendar import Term
from schemas.specs.publication import AREA, Filter, Measure, Publication

ROW = "__row"  # the staged row a unit was counted from: how relations are checked against the data
FAMILY = {"school": "school", "school_district": "school", "residence": "residence"}  # whose districts


class ReleaseError(ValueError):
    """A relation between publications that the staged data contradicts: a spec is wrong."""


@dataclass(frozen=True)
class Population:
    """The units one or more publications count, with every table they publish about them."""

    publications: tuple[Publication, ...]

    @property
    def name(self) -> str:
        return self.publications[0].name

    @property
    def key(self) -> str:
        """A name for the population that does not change when a publication is added to it (its dataset, kind
        of geography and a digest of its unit and `where`): what a run keeps its counts under."""
        digest = hashlib.sha256(repr(population_key(self.first)).encode()).hexdigest()[:12]
        return f"{self.dataset}.{self.family}.{digest}"

    @property
    def first(self) -> Publication:
        return self.publications[0]

    @property
    def dataset(self) -> str:
        return self.first.dataset

    @property
    def unit(self) -> tuple[str, ...]:
        return self.first.unit

    @property
    def where(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return self.first.where

    @property
    def family(self) -> str:
        return FAMILY[self.first.geography]

    @property
    def geography(self) -> str:
        """Schools if any publication shows them (districts are their parents), else districts."""
        return "school" if any(p.geography == "school" for p in self.publications) else self.first.geography

    @property
    def area_source(self) -> str:
        return self.first.area_source

    @property
    def filters(self) -> tuple[Filter, ...]:
        return tuple({f.name: f for p in self.publications for f in p.filters}.values())

    @property
    def measures(self) -> tuple[Measure, ...]:
        return tuple({m.col_name: m for p in self.publications for m in p.measures}.values())

    def table_specs(self) -> list[TableSpec]:
        """Every table; a district-level table of a population counted by school stops at the districts."""
        return [TableSpec(t.name, (AREA, *(f.name for f in t.filters)),
                          ((AREA, 1),) if p.geography == "school_district" and self.geography == "school" else ())
                for p in self.publications for t in p.tables]


def population_key(publication: Publication) -> tuple:
    return (publication.dataset, tuple(sorted(publication.unit)),
            tuple(sorted((c, tuple(sorted(v))) for c, v in publication.where)), FAMILY[publication.geography])


def populations(publications: list[Publication]) -> list[Population]:
    groups: dict[tuple, list[Publication]] = {}
    for publication in sorted(publications, key=lambda p: p.name):
        groups.setdefault(population_key(publication), []).append(publication)
    return sorted((Population(tuple(group)) for group in groups.values()), key=lambda p: p.name)


def implies(narrow: Population, wide: Population) -> bool:
    """Every row that narrow's `where` keeps, wide's keeps too."""
    mine = dict(narrow.where)
    return all(column in mine and set(mine[column]) <= set(values) for column, values in wide.where)


@dataclass(frozen=True)
class Relation:
    kind: str  # same | within | part_of
    population: str  # the population it holds in (for within: the smaller one)
    other: str  # within: the larger population; part_of: "filter = label"; same: ""
    subject: str = ""  # part_of: the filter whose categories add up; same: the publications

    def describe(self) -> str:
        if self.kind == "same":
            return f"{self.subject} count the same units: a cell at the same coordinates is one cell with one status"
        if self.kind == "within":
            return (f"{self.population} counts some of the units {self.other} counts: each of its cells is at most "
                    f"the cell at the same coordinates in {self.other}")
        return (f"in {self.population}, the categories of {self.subject} other than its missing label add up to the "
                f"units with {self.other}")


def relations(groups: list[Population]) -> list[Relation]:
    """Every relation the specs imply between the populations (and, within one, between its filters)."""
    found = [Relation("same", p.name, "", " and ".join(q.name for q in p.publications)) for p in groups if len(p.publications) > 1]
    found += [Relation("within", narrow.name, wide.name) for narrow in groups for wide in groups
              if narrow is not wide and narrow.dataset == wide.dataset and narrow.family == wide.family
              and set(narrow.unit) <= set(wide.unit) and implies(narrow, wide)]
    for population in groups:
        names = {f.name: f for f in population.filters}
        found += [Relation("part_of", population.name, f"{f.part_of[0]} = {f.part_of[1]}", f.name)
                  for f in population.filters if f.part_of and f.part_of[0] in names]
    return found


def nestings(found: list[Relation]) -> list[Nesting]:
    return [Nesting(r.population, r.other) for r in found if r.kind == "within"]


def joined_groups(groups: list[Population], found: list[Relation]) -> list[tuple[Population, ...]]:
    """Populations joined by `within` relations (they share units), each set in name order: one protection
    problem each, since populations with no relation between them share no unit."""
    component = {p.name: p.name for p in groups}

    def root(name: str) -> str:
        while component[name] != name:
            name = component[name]
        return name

    for relation in found:
        if relation.kind == "within":
            component[root(relation.population)] = root(relation.other)
    return [tuple(p for p in groups if root(p.name) == key) for key in sorted({root(p.name) for p in groups})]


@dataclass(frozen=True)
class Problem:
    """Populations joined by relations: protected together, as one model (populations with no relation between
    them share no unit, so they are separate problems)."""

    populations: tuple[Population, ...]
    table: TableSet
    relations: tuple[Relation, ...]

    @property
    def publications(self) -> tuple[Publication, ...]:
        return tuple(p for population in self.populations for p in population.publications)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.populations)


@dataclass(frozen=True)
class Release:
    """The populations of a run's publications, their rows and tables, and the problems that join them."""

    groups: tuple[Population, ...]
    rows: dict[str, pl.DataFrame]  # population -> one row per unit counted (ROW, area, filters, measures and
    # their contributors)
    unplaced: dict[str, int]  # population -> units left out for want of a known area
    parts: dict[str, TableSet]  # population -> its linked tables
    relations: tuple[Relation, ...]
    earlier_parts: dict[str, TableSet] = field(default_factory=dict)  # population -> the earlier release's tables

    def with_earlier(self, counts: dict[str, tuple[pl.DataFrame, dict[str, Hierarchy]]]) -> "Release":
        """The release with each population that has an earlier release counted over both releases' combinations
        (a combination only one of them has is a zero in the other): an intruder who compares them cannot tell a
        zero from a row that is missing, and the pattern can hide a count that fell to zero."""
        parts, then = dict(self.parts), {}
        for name, (inner, hierarchies) in counts.items():
            parts[name], then[name] = common_support(self.group(name), self.parts[name], inner, hierarchies)
        return replace(self, parts=parts, earlier_parts=then)

    @property
    def empty(self) -> tuple[Population, ...]:
        """Populations with no units: nothing to protect, their publications are published empty."""
        return tuple(p for p in self.groups if p.name not in self.parts)

    @cached_property
    def problems(self) -> tuple[Problem, ...]:
        out = []
        counted = [p for p in self.groups if p.name in self.parts]
        for members in joined_groups(counted, [r for r in self.relations if {r.population, r.other} <= set(self.parts)
                                               or (r.kind != "within" and r.population in self.parts)]):
            names = {p.name for p in members}
            mine = tuple(r for r in self.relations if r.population in names)
            out.append(Problem(members, release_table({n: self.parts[n] for n in names}, nestings(list(mine))), mine))
        return tuple(out)

    def group(self, name: str) -> Population:
        return next(p for p in self.groups if p.name == name)

    def population_of(self, publication: str) -> Population:
        return next(p for p in self.groups if publication in {q.name for q in p.publications})

    def problem_of(self, publication: str) -> Problem:
        population = self.population_of(publication)
        return next(problem for problem in self.problems if population in problem.populations)

    def amounts(self, problem: Problem, table: TableSet, academic_year: int) -> list[Amounts]:
        """Each measure its populations publish, as an amount in the cells of the problem's model (`table`: the
        model, grown by any figures others publish), its providers as contributors, published for the cells of
        the populations that carry it; a tied one with the multiples the public rates allow in each inner cell."""
        out = []
        measures = {m.col_name: m for p in problem.populations for m in p.measures}
        for measure in (measures[name] for name in sorted(measures)):
            carriers = [p for p in problem.populations if measure.col_name in {m.col_name for m in p.measures}]
            if any(measure not in p.measures for p in carriers):
                raise ReleaseError(f"{measure.col_name}: publications of one problem define it differently")
            rows = [self.rows[p.name].select(
                pl.lit(p.name).alias(POPULATION),
                *[(pl.col(d) if d in self.parts[p.name].dimensions else pl.lit(ROOT)).alias(d) for d in table.dimensions[1:]],
                pl.col(measure.contributor).alias(CONTRIBUTOR), pl.col(measure.col_name).alias(VALUE)) for p in carriers]
            cells = table.cells.filter(pl.col(POPULATION).is_in([p.name for p in carriers]))[CELL_ID]
            out.append(amounts_of(table, measure.col_name, pl.concat(rows), frozenset(cells.to_list()), measure.tied_to,
                                  inner_multiples(table, measure, carriers, academic_year) if measure.tied_to else None))
        return out

    def publication_cells(self, cells: pl.DataFrame, publication: Publication) -> pl.DataFrame:
        """One publication's decision records (or any frame of its problem's cells) as its own tables name them:
        the area and its filters, cells of its tables only."""
        population, problem = self.population_of(publication.name), self.problem_of(publication.name)
        mine = population_cells(cells, problem.table, population.name, self.parts[population.name])
        tables = [t.name for t in publication.tables]
        others = [f.name for f in population.filters if f.name not in {g.name for g in publication.filters}]
        return (mine.with_columns(pl.col("tables").list.set_intersection(tables))
                .filter(pl.col("tables").list.len() > 0).drop(others))


def inner_multiples(table: TableSet, measure: Measure, carriers: list[Population], academic_year: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest multiple a tied measure can be of the measure it is tied to in each inner cell of the
    model, from the public rates of the codes in the cell's category of the rate filter."""
    spec = next(f for p in carriers for f in p.filters if f.name == measure.rate[0])
    by_label, everything = rate_bounds(measure, spec, academic_year)
    labels = table.inner[measure.rate[0]].to_list()
    bounds = np.array([by_label.get(label, everything) for label in labels]).reshape(-1, 2)
    return bounds[:, 0].copy(), bounds[:, 1].copy()


def build_release(frames: dict[str, pl.DataFrame], publications: list[Publication], term: Term, schools: pl.DataFrame,
                  postcodes: pl.DataFrame) -> Release:
    """The release of these publications from the staged frames, its relations checked against the rows.

    A population within others is counted from their rows only: where a unit has several rows, each population
    keeps its first, and the first row passing a narrower `where` need not be the one the wider kept. Its units
    left out are then those with no known area and those whose row the wider populations did not keep."""
    for publication in publications:
        check_period(frames[publication.dataset], publication, term)
    groups = populations(publications)
    found = relations(groups)
    wider = {p.name: [r.other for r in found if r.kind == "within" and r.population == p.name] for p in groups}
    rows, unplaced, parts = {}, {}, {}
    for population in sorted(groups, key=lambda p: (len(wider[p.name]), p.name)):  # a wider population has fewer
        frame = frames[population.dataset].with_row_index(ROW)
        counted, left_out = published_rows(frame, population, term, schools, postcodes, keep=(ROW,))
        if wider[population.name]:
            units = counted.height + left_out
            for other in wider[population.name]:
                frame = frame.filter(pl.col(ROW).is_in(rows[other][ROW].implode()))
            counted, _ = published_rows(frame, population, term, schools, postcodes, keep=(ROW,))
            left_out = units - counted.height
        rows[population.name], unplaced[population.name] = counted, left_out
        if counted.height:  # a population with no units this term (a small LA's cohort) is published empty
            parts[population.name] = from_microdata(counted, population.table_specs(),
                                                    {AREA: area_hierarchy(population, schools, postcodes)})
    check_relations(found, rows, groups)
    return Release(tuple(groups), rows, unplaced, parts, tuple(found))


def check_period(frame: pl.DataFrame, publication: Publication, term: Term) -> None:
    """A publication of the run's term needs rows of that term: exports of other terms only are one clear line,
    naming the terms they cover (a run without --period reports on today's term)."""
    for column, values in publication.where:
        if "{period}" in values and frame.height and not frame.filter(pl.col(column).cast(pl.String) == term.label).height:
            covered = sorted(frame[column].cast(pl.String).drop_nulls().unique().to_list())
            raise ReleaseError(f"{publication.dataset}: the exports hold no rows for {term} (they cover "
                               f"{', '.join(covered)}); run for one of those with --period")


def check_relations(found: list[Relation], rows: dict[str, pl.DataFrame], groups: list[Population]) -> None:
    """Each relation against the staged rows; the first one the data contradicts stops the run."""
    filters = {f.name: f for p in groups for f in p.filters}
    for relation in found:
        mine = rows[relation.population]
        if relation.kind == "within":
            outside = mine.join(rows[relation.other], on=ROW, how="anti").height
            if outside:
                raise ReleaseError(f"{relation.describe()}: but {outside} of its units are not among {relation.other}'s, "
                                   "so a spec is wrong")
        elif relation.kind == "part_of":
            spec = filters[relation.subject]
            other, label = spec.part_of
            broken = mine.filter((pl.col(spec.name) != spec.missing) != (pl.col(other) == label)).height
            if broken:
                raise ReleaseError(f"{relation.describe()}: but {broken} units break it, so a spec is wrong")


def file_coordinates(table: TableSet, population: str, filters: list[str], frame: pl.DataFrame, area: pl.Series) -> pl.DataFrame:
    """Each row of an EES-style file about a population as coordinates of a problem's model (the file's filters
    as given, every other dimension at Total)."""
    dims = table.dimensions
    return frame.select(*[pl.lit(population).alias(POPULATION) if d == POPULATION else
                          (area.alias(d) if d == AREA else (pl.col(d) if d in filters else pl.lit(ROOT)).alias(d))
                          for d in dims])


def shown_cells(table: TableSet, coordinates: pl.DataFrame, shown: pl.Series) -> pl.DataFrame:
    """cell_id and the text shown, for the coordinates that name a cell of the model."""
    dims = list(table.dimensions)
    return (coordinates.with_columns(shown.alias("shown")).join(table.cells.select(CELL_ID, *dims), on=dims)
            .select(CELL_ID, "shown"))


def common_support(population: Population, part: TableSet, inner: pl.DataFrame,
                   hierarchies: dict[str, Hierarchy]) -> tuple[TableSet, TableSet]:
    """A population's tables now and in the earlier release (from the counts its run kept), both over every
    combination of codes either counted."""
    dims = list(part.dimensions)
    trees = {d: union_hierarchy(d, [part.hierarchies[d], hierarchies[d]]) for d in dims}
    combos = pl.concat([part.inner.select(dims), inner.select(dims)]).unique()
    specs, complete = population.table_specs(), len(population.table_specs()) == 1
    now, then = (build(specs, combos.join(frame.select(*dims, VALUE), on=dims, how="left").with_columns(pl.col(VALUE).fill_null(0)),
                       trees, complete) for frame in (part.inner, inner))
    return now, then


def earlier_release_of(table: TableSet, shown: pl.DataFrame, policy: Policy, label: str,
                       model: TableSet | None = None) -> Earlier:
    """The earlier release as an intruder holds it: the cells its files showed (a count, rounded or `low`) and
    the cells they hid, of `table`, and the model of its counts if its run kept them (then `table` is that model).
    shown: cell_id, the text shown. Refused when a count its files showed is not the count its run kept."""
    hidden = set(shown.filter(pl.col("shown") == policy.symbols["suppressed"])[CELL_ID].to_list())
    if model is not None and policy.rounding_base is None:
        counts = shown.filter(pl.col("shown").str.contains(r"^\d+$")).join(model.cells.select(CELL_ID, VALUE), on=CELL_ID)
        if (counts["shown"].cast(pl.Int64) != counts[VALUE]).any():
            raise ReleaseError(f"{label}: its published files do not match the counts its run kept")
    published = set(shown.filter(pl.col("shown").str.contains(r"^\d+(\.\d+)?$")
                                 | (pl.col("shown") == policy.symbols["low"]))[CELL_ID].to_list())
    return Earlier(model, frozenset(published), frozenset(hidden), label)


@dataclass(frozen=True)
class KnownFile:
    """An EES-format file that others have published (the DfE's own school-level figures from the same census)."""

    name: str
    data: pl.DataFrame  # every cell as text
    filters: tuple[str, ...]
    indicators: tuple[str, ...]

    def publication(self, publications: list[Publication]) -> Publication | None:
        """The publication whose units and categories the file counts: the one whose count it reports, with a
        table of exactly the file's filters (or, failing that, with every filter it has: the file is a margin of
        its tables); None when none does; refused when several do. Publications share the data dictionary's
        indicator names (pupil_count), so the filters tell them apart."""
        counting = [p for p in publications if p.indicator in self.indicators]
        matches = [p for p in counting if any({f.name for f in t.filters} == set(self.filters) for t in p.tables)] or [
            p for p in counting if set(self.filters) <= {f.name for f in p.filters}]
        if len(matches) > 1:
            raise ReleaseError(f"{self.name}: its figures could be of {' or '.join(p.name for p in matches)}; "
                               "keep one such file per publication")
        return matches[0] if matches else None


def ours(frame: pl.DataFrame, time: tuple[str, str], la_code: str) -> pl.Expr:
    """The rows of an EES-style file about this release's period and LA (every row, for a file without those
    columns); the engine and the intruder read figures others publish through this one test."""
    here = pl.lit(True)
    if "time_period" in frame.columns:
        here &= pl.col("time_period") == time[0]
    if "time_identifier" in frame.columns:
        here &= pl.col("time_identifier") == time[1]
    if "new_la_code" in frame.columns:
        here &= pl.col("new_la_code") == la_code
    return here


def known_figures(table: TableSet, population: str, known: KnownFile, publication: Publication, time: tuple[str, str],
                  la_code: str, area: pl.Series) -> tuple[TableSet, pl.DataFrame, int]:
    """The model grown by a cell for each figure of the file about this release's units (its period and LA, areas
    and categories the model has), and those cells: cell_id, value. Also how many figures were left out."""
    data = known.data.with_columns(area.alias("__area")).with_row_index("__row", offset=1)
    usable = data.filter(pl.col("__area").is_not_null() & pl.col(publication.indicator).str.contains(r"^\d+$")
                         & ours(data, time, la_code))
    for dim in (AREA, *known.filters):
        nodes = set(table.hierarchies[dim].nodes)
        usable = usable.filter(pl.col("__area" if dim == AREA else dim).is_in(list(nodes)))
    coordinates = file_coordinates(table, population, list(known.filters), usable, usable["__area"])
    grown, ids = table.with_cells(coordinates)
    figures = pl.DataFrame({CELL_ID: ids, "value": usable[publication.indicator].cast(pl.Int64), "row": usable["__row"]})
    counted = figures.join(grown.cells.select(CELL_ID, pl.col("value").alias("ours")), on=CELL_ID)
    wrong = counted.filter(pl.col("value") != pl.col("ours"))
    if wrong.height:
        raise ReleaseError(f"{known.name}: row {wrong['row'][0]} (and {wrong.height - 1} more) is not this release's count "
                           f"of the same units, so the file is not about {publication.name}'s population")
    return grown, figures.select(CELL_ID, "value"), data.height - usable.height


def empty_cells(publication: Publication) -> pl.DataFrame:
    """The decision records of a publication with no units: none, in the columns every reader expects."""
    text = [AREA, *(f.name for f in publication.filters), "status", "display", "rule", "reason"]
    return pl.DataFrame(schema={CELL_ID: pl.Int64, **{c: pl.String for c in text}, VALUE: pl.Int64,
                                "tables": pl.List(pl.String), "is_total": pl.Boolean, "lower": pl.Float64,
                                "upper": pl.Float64, "exact": pl.Boolean, "safe": pl.Boolean, "protected": pl.Boolean,
                                "protected_against_both": pl.Boolean,
                                **{c: t for m in publication.measures
                                   for c, t in ((m.col_name, pl.Float64), (f"{m.col_name}_protected", pl.Boolean))}})


def publication_summary(cells: pl.DataFrame, problem: dict) -> dict:
    """A publication's share of its problem's protection summary: its own cells, the problem's audit verdict."""
    counts = dict(cells.group_by("status").len().iter_rows())
    secondary = cells.filter(pl.col("status") == Status.SECONDARY)
    hidden = cells.filter(pl.col("status").is_in(list(SUPPRESSED)))
    primaries = cells.filter((pl.col("status") == Status.PRIMARY) & pl.col("lower").is_not_null())
    return {**problem, "cells": cells.height, "by_status": {s: counts.get(s, 0) for s in STATUSES},
            "information_loss": {"secondary_cells": secondary.height, "secondary_value": float(secondary["value"].sum())},
            "audit": {**problem["audit"], "suppressed_cells": hidden.height,
                      "unsafe_cells": int((hidden["safe"] == False).sum()),  # noqa: E712 (null: not audited)
                      "narrowest_primary_interval": primaries.select((pl.col("upper") - pl.col("lower")).min()).item()
                      if primaries.height else None}}
