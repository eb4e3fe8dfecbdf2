"""An intruder's linear-programming attack on a set of linked EES files, independent of disclosure_control.

`lareturns audit` and the tests run it to check a release without trusting the engine that protected it: it
shares no code with disclosure_control, reads only the published files (data and meta), as anyone could, and for every suppressed value finds the
smallest and largest count consistent with everything published. The files of one release share their area
margins (and, for attainment and destinations, the outcome filter): the unknowns are each file's finest cells
(finest area x its filter levels), tied together through one shared unknown per finest area and shared filter
levels. For fractional counts this is exactly the joint table's feasible region projected onto each file, since
for each shared cell any set of file margins with one total can be coupled into a joint table; an attack over
the joint table could not narrow any cell further.

Rounded values (a base given by the caller) become intervals: v +/- base/2, and `low` is 1 to base/2.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
from scipy.optimize import linprog
from scipy.sparse import coo_matrix


TOTAL = "Total"
WITNESS_ROUNDS = 8


def text_csv(path: Path) -> pl.DataFrame:
    """Every cell as the text in the file, an empty cell as ''."""
    return pl.read_csv(path, infer_schema=False).with_columns(pl.all().fill_null(""))


def _finest(frame: pl.DataFrame) -> tuple[str, dict[str, str]]:
    """The finest area column and each finest area's district (itself for districts)."""
    if "school_urn" in frame.columns:
        schools = frame.filter(pl.col("geographic_level") == "School")
        return "school_urn", dict(schools.select("school_urn", "lad_code").unique().iter_rows())
    districts = frame.filter(pl.col("geographic_level") == "Local authority district")["lad_code"].unique()
    return "lad_code", {d: d for d in districts}


def attack(files: list[Path], rounding_base: int | None = None) -> dict[tuple, tuple[float, float]]:
    """(file stem, area, filter values...) -> an interval each suppressed value is certified to span: its exact
    (min, max) where that is narrower than one, else the range it was seen to take across feasible tables."""
    data = {f.stem: text_csv(f) for f in files}
    meta = {f.stem: text_csv(f.with_name(f.stem + ".meta.csv")) for f in files}
    filters = {n: meta[n].filter(pl.col("col_type") == "Filter")["col_name"].to_list() for n in data}
    count = {n: meta[n].filter(pl.col("col_type") == "Indicator")["col_name"][0] for n in data}
    shared = [f for f in filters[files[0].stem] if all(f in filters[n] for n in data)]
    area_column, district_of = _finest(next(iter(data.values())))
    areas = sorted(district_of)
    levels = {f: sorted(set().union(*(set(data[n][f]) for n in data if f in filters[n])) - {TOTAL})
              for n in data for f in filters[n]}

    unknowns: dict[tuple, int] = {}
    for n in data:
        for combo in itertools.product(areas, *[levels[f] for f in filters[n]]):
            unknowns[(n, *combo)] = len(unknowns)
    for combo in itertools.product(areas, *[levels[f] for f in shared]):
        unknowns[("shared", *combo)] = len(unknowns)

    def members(n: str, node: str, values: dict[str, str]) -> list[int]:
        in_area = areas if node == TOTAL else [a for a in areas if a == node or district_of[a] == node]
        choices = [[values[f]] if values[f] != TOTAL else levels[f] for f in filters[n]]
        return [unknowns[(n, a, *c)] for a in in_area for c in itertools.product(*choices)]

    eq_rows, eq_values, ub_rows, ub_values, hidden, coupling = [], [], [], [], [], []
    half = rounding_base / 2 if rounding_base else 0.0
    for n, frame in data.items():
        for row in frame.iter_rows(named=True):
            node = row[area_column] or row["lad_code"] or TOTAL
            cells = members(n, node, row)
            shown = row[count[n]]
            if shown == "low":
                ub_rows += [cells, cells]
                ub_values += [("-", -1.0), ("+", half)]
            elif not shown.isdigit():
                hidden.append(((n, node, *(row[f] for f in filters[n])), cells))
            elif rounding_base:
                ub_rows += [cells, cells]
                ub_values += [("-", -max(float(shown) - half, 0.0)), ("+", float(shown) + half)]
            else:
                eq_rows.append(cells)
                eq_values.append(float(shown))
        own = [f for f in filters[n] if f not in shared]
        for combo in itertools.product(areas, *[levels[f] for f in shared]):
            values = dict(zip(shared, combo[1:], strict=True)) | {f: TOTAL for f in own}
            cells = [unknowns[(n, combo[0], *c)] for c in itertools.product(
                *[[values[f]] if values[f] != TOTAL else levels[f] for f in filters[n]])]
            coupling.append((cells, unknowns[("shared", *combo)]))  # the file's cells add up to the shared one

    def matrix(rows: list[list[int]], signs: list[float], minus: list[int | None]) -> coo_matrix:
        r, c, v = [], [], []
        for i, (cells, sign, other) in enumerate(zip(rows, signs, minus, strict=True)):
            r += [i] * len(cells) + ([i] if other is not None else [])
            c += cells + ([other] if other is not None else [])
            v += [sign] * len(cells) + ([-sign] if other is not None else [])
        return coo_matrix((v, (r, c)), shape=(len(rows), len(unknowns)))

    a_eq = matrix(eq_rows + [c for c, _ in coupling], [1.0] * (len(eq_rows) + len(coupling)),
                  [None] * len(eq_rows) + [s for _, s in coupling]).tocsr()
    eq_values += [0.0] * len(coupling)
    a_ub = matrix(ub_rows, [-1.0 if s == "-" else 1.0 for s, _ in ub_values], [None] * len(ub_rows)).tocsr() if ub_rows else None
    b_ub = [v for _, v in ub_values] if ub_rows else None
    def solve(objective: np.ndarray, key: tuple):
        solved = linprog(objective, A_eq=a_eq, b_eq=eq_values, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
        if solved.status not in (0, 3):
            raise RuntimeError(f"{key}: the LP solver failed ({solved.message})")
        return solved

    # Witnesses first: each solution is a table consistent with the release, so the values a hidden cell takes
    # across solutions lie inside its interval. Cells seen to move by one or more need no solve of their own.
    seen = np.array([[np.inf, -np.inf]] * len(hidden))
    rng = np.random.default_rng(0)
    for _ in range(WITNESS_ROUNDS if hidden else 0):
        objective = np.zeros(len(unknowns))
        for (_, cells), sign in zip(hidden, rng.choice([-1.0, 1.0], len(hidden)), strict=True):
            objective[cells] += sign
        for direction in (1, -1):
            solved = solve(direction * objective, ("witness",))
            if solved.status == 0:
                sums = np.array([solved.x[cells].sum() for _, cells in hidden])
                seen[:, 0], seen[:, 1] = np.minimum(seen[:, 0], sums), np.maximum(seen[:, 1], sums)
    found = {}
    for (key, cells), (low, high) in zip(hidden, seen, strict=True):
        if high - low >= 1:
            found[key] = (low, high)
            continue
        objective = np.zeros(len(unknowns))
        objective[cells] = 1.0
        bounds = [solve(sign * objective, key) for sign in (1, -1)]
        found[key] = tuple(np.inf if b.status == 3 else sign * b.fun for b, sign in zip(bounds, (1, -1), strict=True))
    return found
