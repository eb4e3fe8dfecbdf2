"""An intruder's linear-programming attack on everything published, independent of disclosure_control.

`lareturns audit` and every run use it to check a release without trusting the engine that protected it: it
shares no code with disclosure_control and reads only what anyone could hold: the published EES files (data and
meta), figures already public elsewhere, the earlier release of the same series, and the public specs, from
which the relations between publications are derived (pipelines/nodes/release.py, the same derivation the
engine is given). For every hidden value it finds the interval of counts consistent with all of it.

The unknowns are each file's finest cells (its finest area by the leaf levels of its filters), non-negative.
- Every published value is an equation in its file's unknowns (a rounded value an interval, `low` 1 to base/2).
- Files of one population count the same units: at the coarser of their finest areas, their sums over the
  filters they share are equal; a figure already public is an equation in the unknowns of the population's file
  that has its filters.
- A population within another: each such sum is at most the other's.
- A filter that is part of another filter's category: its categories other than the missing label add up to it.
- A filter whose files leave some categories out (the specs say which): an unknown remainder level makes up its
  Total, and the remainder is attacked like a hidden value wherever the file does not give it away.
- Differencing: the earlier release has unknowns of its own, and each file's finest cells differ from the
  earlier release's by at most `movers` units in all (an intruder who knows that one child left).
Intervals are certified from below: the values a hidden cell takes across solutions (each a table consistent
with everything published) lie inside its interval, and a cell that has not been seen to reach its target gets
exact solves. A target is what the caller needs to know (the protection level), by default one either way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import highspy
import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from schemas.catalog import meta_file

TOTAL = "Total"
REMAINDER = "(not published)"  # the unknown level of a filter's categories that its files leave out
LEVELS = {"Local authority": 0, "Local authority district": 1, "School": 2}
WITNESS_ROUNDS = 8
TOLERANCE = 1e-6


@dataclass(frozen=True)
class PublishedFile:
    """One EES table as published: its rows as text, its filters and its count column."""

    stem: str
    data: pl.DataFrame
    filters: tuple[str, ...]
    indicator: str
    rounding_base: int | None = None
    low: str = "low"  # the symbol for a count that rounds to zero but is not zero
    also: tuple[tuple[str, Callable[[dict], tuple[float, float]], float], ...] = ()  # other columns the intruder
    # knows, in each finest cell (its filter values), to lie between two multiples of this one (funding beside hours:
    # the entitlement's public hourly rates), each shown value to within a margin
    remainders: tuple[str, ...] = ()  # filters whose files leave some categories out (the specs say which): their
    # Total is more than the categories shown by an unknown remainder

    @classmethod
    def read(cls, path, rounding_base: int | None = None, indicator: str | None = None, low: str = "low") -> "PublishedFile":
        """The file with each filter's default (the meta's filter_default, else Total) read as Total."""
        data = pl.read_csv(path, infer_schema=False).with_columns(pl.all().fill_null(""))
        meta = pl.read_csv(meta_file(path), infer_schema=False).with_columns(pl.all().fill_null(""))
        listed = meta.filter(pl.col("col_type") == "Filter")
        defaults = dict(listed.select("col_name", "filter_default").iter_rows()) if "filter_default" in meta.columns else {}
        data = data.with_columns(pl.col(name).replace(default, TOTAL) for name, default in defaults.items() if default)
        return cls(path.stem, data, tuple(listed["col_name"].to_list()),
                   indicator or meta.filter(pl.col("col_type") == "Indicator")["col_name"][0], rounding_base, low)

    def node(self, row: dict) -> tuple[int, str]:
        """The row's area: (level, code)."""
        level = LEVELS.get(row.get("geographic_level", ""), -1)
        return level, {0: TOTAL, 1: row.get("lad_code", ""), 2: row.get("school_urn", "")}.get(level, "")


@dataclass
class Population:
    """The files one population is published in, and files of figures about it that others have published."""

    name: str
    files: list[PublishedFile] = field(default_factory=list)
    known: list[PublishedFile] = field(default_factory=list)


@dataclass(frozen=True)
class Relations:
    within: tuple[tuple[str, str], ...] = ()  # (smaller population, larger)
    part_of: tuple[tuple[str, str, str, str, str], ...] = ()  # (population, filter, its missing label, filter, label)


Key = tuple  # (release, file stem, area code, filter values...)


class _Model:
    """The LP: columns are unknowns, rows are (lower, upper)-bounded sums."""

    def __init__(self):
        self.index: dict[tuple, int] = {}
        self.rows: list[tuple[list[int], list[float], float, float]] = []

    def var(self, key: tuple) -> int:
        return self.index.setdefault(key, len(self.index))

    def add(self, cols: list[int], coefs: list[float], low: float, high: float) -> None:
        if cols:
            self.rows.append((cols, coefs, low, high))

    def matrix(self) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
        r, c, v = [], [], []
        for i, (cols, coefs, _, _) in enumerate(self.rows):
            r += [i] * len(cols)
            c += cols
            v += coefs
        a = sparse.csr_matrix((v, (r, c)), shape=(len(self.rows), len(self.index)))
        return a, np.array([low for *_, low, _ in self.rows]), np.array([high for *_, high in self.rows])


def _solver(a: sparse.csc_matrix, lower: np.ndarray, upper: np.ndarray):
    """A silent HiGHS LP over non-negative columns; only its objective changes between solves, so the primal
    simplex re-solves from the last basis."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
    lp.col_cost_ = np.zeros(a.shape[1])
    lp.col_lower_, lp.col_upper_ = np.zeros(a.shape[1]), np.full(a.shape[1], highspy.kHighsInf)
    lp.row_lower_, lp.row_upper_ = lower, upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    h = highspy._core._Highs()  # the core class prints no banner
    h.setOptionValue("output_flag", False)
    h.setOptionValue("simplex_strategy", 4)
    h.passModel(lp)
    return h


class _Part:
    """One connected part of the LP (unknowns tied together through rows), solved on its own."""

    def __init__(self, a: sparse.csr_matrix, lower: np.ndarray, upper: np.ndarray, columns: np.ndarray):
        self.columns = columns
        sub = a[:, columns].tocsr()
        rows = np.flatnonzero(np.diff(sub.indptr) > 0)
        self.h = _solver(sub[rows].tocsc(), lower[rows], upper[rows]) if len(rows) else None

    def solve(self, weights: np.ndarray, upward: bool) -> tuple[np.ndarray | None, float]:
        """The part's solution and objective for these weights on its columns (None and +-inf when unbounded)."""
        n = len(self.columns)
        if self.h is None:  # no row bounds these unknowns: any non-negative value fits
            if (weights > 0).any() if upward else (weights < 0).any():
                return None, np.inf if upward else -np.inf
            return np.zeros(n), 0.0
        self.h.changeColsCost(n, np.arange(n, dtype=np.int32), weights)
        self.h.changeObjectiveSense(highspy.ObjSense.kMaximize if upward else highspy.ObjSense.kMinimize)
        self.h.run()
        status = self.h.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return np.asarray(self.h.getSolution().col_value), self.h.getInfo().objective_function_value
        if status == highspy.HighsModelStatus.kUnbounded:
            return None, np.inf if upward else -np.inf
        if status == highspy.HighsModelStatus.kInfeasible:
            raise InfeasibleRelease("no table is consistent with everything published (and the mover assumption)")
        raise RuntimeError(f"the LP solver returned {self.h.modelStatusToString(status)}")


class _File:
    """A file's finest cells in one release, and the unknowns behind any of its rows."""

    def __init__(self, model: _Model, release: str, published: PublishedFile, areas: list[str], district_of: dict[str, str],
                 levels: dict[str, list[str]]):
        self.model, self.release, self.published = model, release, published
        self.areas, self.district_of, self.levels = areas, district_of, levels
        self.level = max((published.node(r)[0] for r in published.data.iter_rows(named=True)), default=0)

    def keys(self, area_level: int, area: str, values: dict[str, str]) -> list[tuple]:
        """The finest cells under an area (at a level) and filter values (a value, or every level for Total)."""
        if area_level == 0:
            mine = self.areas
        elif area_level == self.level:
            mine = [area]
        else:  # a district, over a file whose finest areas are schools
            mine = [a for a in self.areas if self.district_of.get(a) == area]
        choices = [[values[f]] if values.get(f, TOTAL) != TOTAL else self.levels[f] for f in self.published.filters]
        return [(self.release, self.published.stem, a, *c) for a in mine for c in itertools.product(*choices)]

    def cells(self, area_level: int, area: str, values: dict[str, str]) -> list[int]:
        """Unknowns under an area (at a level) and filter values."""
        return [self.model.var(key) for key in self.keys(area_level, area, values)]


def _structure(files: list[PublishedFile]) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """Finest areas, each school's district, and every filter's levels, over a file's versions in all releases."""
    areas, district_of, levels = set(), {}, {}
    finest = max((f.node(r)[0] for f in files for r in f.data.iter_rows(named=True)), default=0)
    for f in files:
        for row in f.data.iter_rows(named=True):
            level, code = f.node(row)
            if level == finest:
                areas.add(code)
            if level == 2:
                district_of[code] = row.get("lad_code", "")
        for name in f.filters:
            levels.setdefault(name, set()).update(set(f.data[name].to_list()) - {TOTAL}
                                                  | ({REMAINDER} if name in f.remainders else set()))
    return sorted(areas), district_of, {k: sorted(v) for k, v in levels.items()}


def _published_rows(model: _Model, file: _File, hidden: list[tuple[Key, list[int]]]) -> None:
    data = file.published
    half = data.rounding_base / 2 if data.rounding_base else 0.0
    for row in data.data.iter_rows(named=True):
        level, code = data.node(row)
        cells = file.cells(level, code, row)
        shown = row[data.indicator]
        if shown == data.low:
            model.add(cells, [1.0] * len(cells), 1.0, half)
        elif not shown.replace(".", "", 1).isdigit():
            hidden.append(((file.release, data.stem, code, *(row[f] for f in data.filters)), cells))
        elif data.rounding_base:
            model.add(cells, [1.0] * len(cells), max(float(shown) - half, 0.0), float(shown) + half)
        else:
            model.add(cells, [1.0] * len(cells), float(shown), float(shown))


def _remainders(file: _File) -> tuple[list[tuple[Key, list[int]]], dict[Key, float]]:
    """The categories a file leaves out: a row at a remainder filter's Total less its rows of the categories
    shown. Where that total and every one of them is published exactly, the remainder is read off the file (its
    value); elsewhere it is a hidden value to attack."""
    data, hidden, read_off = file.published, [], {}
    place = [c for c in ("geographic_level", "lad_code", "school_urn") if c in data.data.columns]
    value = {tuple(row[c] for c in (*place, *data.filters)): row[data.indicator] for row in data.data.iter_rows(named=True)}
    exact = lambda text: text is not None and text.isdigit() and not data.rounding_base  # noqa: E731
    for name in data.remainders:
        at = len(place) + data.filters.index(name)
        for row in data.data.iter_rows(named=True):
            if row[name] != TOTAL:
                continue
            coordinates = tuple(row[c] for c in (*place, *data.filters))
            siblings = [value.get(coordinates[:at] + (level,) + coordinates[at + 1:])
                        for level in file.levels[name] if level != REMAINDER]
            level, code = data.node(row)
            values = {f: (REMAINDER if f == name else row[f]) for f in data.filters}
            key = (file.release, data.stem, code, *values.values())
            if exact(value[coordinates]) and all(exact(s) for s in siblings):
                read_off[key] = float(int(value[coordinates]) - sum(int(s) for s in siblings))
            else:
                hidden.append((key, file.cells(level, code, values)))
    return hidden, read_off


def _tied_rows(model: _Model, file: _File, host: _File) -> None:
    """A file's other amounts: unknowns of their own in the finest cells of the population's file that has all its
    filters (`host`), each between its two multiples of the unknown there, and each shown value their sum."""
    for row in file.published.data.iter_rows(named=True):
        level, code = file.published.node(row)
        for column, bounds, margin in file.published.also:
            if not row[column].replace(".", "", 1).isdigit():
                continue
            keys = host.keys(level, code, {f: row[f] for f in file.published.filters})
            for key in keys:
                if ("also", column, *key) not in model.index:
                    low, high = bounds(dict(zip(host.published.filters, key[3:], strict=True)))
                    mine, other = model.var(key), model.var(("also", column, *key))
                    model.add([other, mine], [1.0, -low], 0.0, np.inf)
                    if np.isfinite(high):
                        model.add([other, mine], [1.0, -high], -np.inf, 0.0)
            model.add([model.var(("also", column, *k)) for k in keys], [1.0] * len(keys),
                      max(float(row[column]) - margin, 0.0), float(row[column]) + margin)


def _known_rows(model: _Model, published: PublishedFile, files: list[_File]) -> None:
    """Figures others publish about the population, as equations in the unknowns of the file of ours with the
    fewest filters that has all of theirs (a figure at an area finer than that file's, or a cross of filters no
    file of ours has, cannot be written in them and is left out)."""
    hosts = sorted((f for f in files if set(published.filters) <= set(f.published.filters)), key=lambda f: len(f.published.filters))
    if not hosts:
        return
    host = hosts[0]
    for row in published.data.iter_rows(named=True):
        level, code = published.node(row)
        shown = row[published.indicator]
        if level < 0 or level > host.level or not shown.isdigit() or any(row[f] not in (TOTAL, *host.levels[f]) for f in published.filters):
            continue
        cells = host.cells(level, code, {f: row[f] for f in published.filters})
        model.add(cells, [1.0] * len(cells), float(shown), float(shown))


def _pairs(model: _Model, f: _File, g: _File, low: float, high: float, sign: float,
           f_filter: tuple[str, list[str]] | None = None, g_value: tuple[str, str] | None = None) -> None:
    """For every area at the coarser of the two files' finest levels (both count by the same kind of geography:
    the specs relate no others) and every combination of their shared filters: low <= sum(f) - sign * sum(g) <=
    high. f_filter restricts f's sum to some levels of one filter (its categories but the missing label) and
    g_value fixes one of g's filters to one value (part_of)."""
    level = min(f.level, g.level)
    coarse = f if f.level <= g.level else g
    areas = [TOTAL] if level == 0 else sorted(set(f.areas) | set(g.areas) if f.level == g.level else coarse.areas)
    skip = {f_filter[0]} if f_filter else set()
    skip |= {g_value[0]} if g_value else set()
    shared = [x for x in f.published.filters if x in g.published.filters and x not in skip]
    for area in areas:
        for combo in itertools.product(*[sorted(set(f.levels[x]) & set(g.levels[x])) for x in shared]):
            values = dict(zip(shared, combo, strict=True))
            if f_filter:
                mine = [c for level_value in f_filter[1] for c in f.cells(level, area, values | {f_filter[0]: level_value})]
            else:
                mine = f.cells(level, area, values)
            theirs = g.cells(level, area, values | ({g_value[0]: g_value[1]} if g_value else {}))
            model.add(mine + theirs, [1.0] * len(mine) + [-sign] * len(theirs), low, high)


def attack(releases: dict[str, list[Population]], relations: Relations = Relations(), movers: int = 1,
           targets: dict[Key, tuple[float, float]] | None = None, bounded: set[str] | None = None) -> dict[Key, tuple[float, float]]:
    """(release, file stem, area, filter values...) -> an interval each hidden value is certified to span: its
    exact (min, max) where it falls short of the target, else the range it was seen to take.

    releases: label -> the populations published in it ("current" first, then at most one earlier release,
    whose files are matched to the current ones by name for differencing). targets: key -> (low, high) the
    interval must reach (default: one either way of the values seen, so only exact recovery is reported). A
    category the files leave out is in it too, at every row; in the current release, at its value where the
    file gives it away.
    bounded: the populations whose files the mover bound holds for (default: all)."""
    model, hidden, read_off = _built(releases, relations, movers, bounded)
    return _intervals(model, hidden, targets or {}) | {key: (value, value) for key, value in read_off.items()}


def consistent(releases: dict[str, list[Population]], relations: Relations, movers: int, bounded: set[str]) -> bool:
    """Whether some table fits everything published with at most `movers` changes in these populations' files:
    if none does, more changed there than the intruder assumes."""
    model, _, _ = _built(releases, relations, movers, bounded)
    a, lower, upper = model.matrix()
    h = _solver(a.tocsc(), lower, upper)
    h.run()
    return h.getModelStatus() == highspy.HighsModelStatus.kOptimal


def _built(releases: dict[str, list[Population]], relations: Relations, movers: int, bounded: set[str] | None
           ) -> tuple["_Model", list[tuple[Key, list[int]]], dict[Key, float]]:
    model, files = _Model(), {}
    stems = {}
    for label, populations in releases.items():
        for population in populations:
            for published in population.files:
                stems.setdefault(published.stem, []).append(published)
    shapes = {stem: _structure(versions) for stem, versions in stems.items()}
    hidden: list[tuple[Key, list[int]]] = []
    read_off: dict[Key, float] = {}
    labels = list(releases)
    for label, populations in releases.items():
        for population in populations:
            for published in population.files:
                file = _File(model, label, published, *shapes[published.stem])
                files[(label, population.name, published.stem)] = file
                _published_rows(model, file, hidden)
                left_out, known = _remainders(file)
                hidden += left_out
                if label == labels[0]:  # an earlier release's read-off remainders were as good as published
                    read_off |= known
            mine = [files[(label, population.name, p.stem)] for p in population.files]
            for f, g in itertools.combinations(mine, 2):
                _pairs(model, f, g, 0.0, 0.0, 1.0)
            for f in (f for f in mine if f.published.also):
                _tied_rows(model, f, max((g for g in mine if set(f.published.filters) <= set(g.published.filters)),
                                         key=lambda g: (len(g.published.filters), g.published.stem)))
            for published in population.known:
                _known_rows(model, published, mine)
        by_population = {p.name: [files[(label, p.name, q.stem)] for q in p.files] for p in populations}
        for small, large in relations.within:
            for f in by_population.get(small, []):
                for g in by_population.get(large, []):
                    _pairs(model, f, g, -np.inf, 0.0, 1.0)
        for name, part, missing, whole, label_value in relations.part_of:
            for f in by_population.get(name, []):
                for g in by_population.get(name, []):
                    if part in f.published.filters and whole not in f.published.filters and whole in g.published.filters \
                            and part not in g.published.filters:
                        _pairs(model, f, g, 0.0, 0.0, 1.0, (part, [v for v in f.levels[part] if v != missing]),
                               (whole, label_value))
    if len(labels) == 2:
        _differences(model, files, labels, movers, bounded)
    return model, hidden, read_off


def _differences(model: _Model, files: dict, labels: list[str], movers: int, bounded: set[str] | None) -> None:
    """Each file's finest cells in the two releases differ by at most `movers` units in all (for the files of
    the bounded populations; of the others the intruder knows nothing)."""
    now, before = labels
    earlier = {stem: f for (label, _, stem), f in files.items() if label == before}
    for (label, population, stem), f in files.items():
        if label != now or stem not in earlier or (bounded is not None and population not in bounded):
            continue
        cells = [key for key in f.model.index if key[0] == now and key[1] == stem]
        moved = []
        for key in cells:
            up, down = model.var(("moved+", *key)), model.var(("moved-", *key))
            model.add([model.index[key], model.var((before, *key[1:])), up, down], [1.0, -1.0, -1.0, 1.0], 0.0, 0.0)
            moved += [up, down]
        model.add(moved, [1.0] * len(moved), 0.0, float(movers))


def _intervals(model: _Model, hidden: list[tuple[Key, list[int]]], targets: dict[Key, tuple[float, float]]) -> dict:
    if not hidden:
        return {}
    a, lower, upper = model.matrix()
    n = a.shape[1]
    _, component = connected_components(sparse.bmat([[None, a], [a.T, None]]).tocsr(), directed=False)
    component = component[a.shape[0]:]
    parts = [_Part(a, lower, upper, np.flatnonzero(component == k)) for k in np.unique(component)]
    members = sparse.csr_matrix(([1.0] * sum(len(c) for _, c in hidden),
                                 ([i for i, (_, c) in enumerate(hidden) for _ in c], [x for _, c in hidden for x in c])),
                                shape=(len(hidden), n))
    low, high = np.full(len(hidden), np.inf), np.full(len(hidden), -np.inf)
    want = [targets.get(key) for key, _ in hidden]
    rng = np.random.default_rng(0)

    def short(i: int, upward: bool) -> bool:
        if want[i] is None:
            return high[i] - low[i] < 1 - TOLERANCE
        return high[i] < want[i][1] - TOLERANCE if upward else low[i] > want[i][0] + TOLERANCE

    def witness(weights: np.ndarray, upward: bool) -> np.ndarray:
        """A table consistent with everything published, pushed by the weights (unbounded parts left at 0)."""
        x = np.zeros(n)
        for part in parts:
            if weights[part.columns].any() or part.h is not None:
                found, _ = part.solve(weights[part.columns], upward)
                if found is not None:
                    x[part.columns] = found
        return x

    seen = members @ witness(np.zeros(n), True)
    low, high = np.minimum(low, seen), np.maximum(high, seen)
    for _ in range(WITNESS_ROUNDS):
        progress = False
        for upward in (True, False):
            todo = [i for i in range(len(hidden)) if short(i, upward) or want[i] is None]
            if not todo:
                continue
            seen = members @ witness(np.asarray(members[todo].T @ rng.uniform(0.5, 1.5, len(todo))).ravel(), upward)
            progress |= bool((seen > high + TOLERANCE).any() or (seen < low - TOLERANCE).any())
            low, high = np.minimum(low, seen), np.maximum(high, seen)
        if not progress:
            break
    for i in range(len(hidden)):
        for upward in (True, False):
            if short(i, upward):
                weights = np.zeros(n)
                weights[members[i].indices] = 1.0
                best = sum(part.solve(weights[part.columns], upward)[1] for part in parts
                           if weights[part.columns].any())
                if upward:
                    high[i] = best
                else:
                    low[i] = best
    return {key: (float(low[i]), float(high[i])) for i, (key, _) in enumerate(hidden)}


class InfeasibleRelease(ValueError):
    """No table fits the published files under the intruder's assumptions (for differencing: more units changed
    than the mover assumption allows, so that attack does not apply)."""
