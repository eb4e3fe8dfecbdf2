"""Secondary suppression for interval protection: the cheapest cells to suppress so that a cell can move far enough.

Linear independence (secondary.py) stops exact recovery, but a primary hemmed in by small suppressed cells can
still be pinned to a narrow interval. For such a cell and direction this solves the linear relaxation of the
Fischetti-Salazar subproblem: a change to the inner cells (none going below zero) that moves the cell by its
protection level, where each published cell that changes is charged its suppression cost per unit of change.
The published cells that change are then suppressed. The change is itself a table the attacker cannot rule out,
so the cell's interval reaches its protection level, and stays there whatever else is suppressed later.

Cells whose values the attacker has from elsewhere (already public, or published in the earlier release) are held
fixed: suppressing them would give no room. A release's nestings and any other facts the attacker knows hold too:
the change never lets a sub-population count more than the population that holds it.

The search starts in the cell's neighbourhood (its siblings under its parents in every dimension), which keeps
each LP small, and widens to grandparents and then the whole table only where the neighbourhood cannot do it.
"""

from __future__ import annotations

import highspy
import numpy as np
import polars as pl
from scipy import sparse

from .audit import loaded_solver
from .table import CELL_ID, VALUE, TableSet

NEIGHBOURHOOD_STEPS = (1, 2, 1_000)  # levels above the cell; the last covers the whole table
TOLERANCE = 1e-7


def widening_cells(table: TableSet, suppressed: set[int], cell: int, upward: bool, distance: float,
                   costs: np.ndarray, fixed: frozenset[int] = frozenset()) -> set[int] | None:
    """Published cells (none of `fixed`) whose suppression lets `cell` move `distance` up (or down); None when
    nothing can."""
    for steps in NEIGHBOURHOOD_STEPS:
        found = _cheapest_release(table, suppressed, cell, upward, distance, costs, table.neighbourhood(cell, steps), fixed)
        if found is not None:
            return found
    return None


def _cheapest_release(table: TableSet, suppressed: set[int], cell: int, upward: bool, distance: float,
                      costs: np.ndarray, inner: np.ndarray, fixed: frozenset[int]) -> set[int] | None:
    """The LP on the given inner cells (the rest held at their values); None if it is infeasible there."""
    part = table.membership_rows[inner].tocsc()  # the chosen inner cells x all cells
    touched = np.flatnonzero(np.diff(part.indptr) > 0)
    published = np.array([c for c in touched.tolist() if c not in suppressed], dtype=np.int64)
    rows = part[:, np.append(published, cell)].T.tocsc()  # published cells, then the moving cell
    n, p = len(inner), len(published)
    slack = sparse.vstack([sparse.identity(p, format="csc"), sparse.csc_matrix((1, p))]).tocsc()
    lower = np.append(np.zeros(p), distance if upward else -highspy.kHighsInf)
    upper = np.append(np.zeros(p), highspy.kHighsInf if upward else -distance)
    if table.nested_rows is not None:  # sub-populations keep within their populations: rows . (x + change) <= 0
        nested = table.nested_rows[:, inner].tocsr()
        used = np.flatnonzero(np.diff(nested.indptr) > 0)
        rows = sparse.vstack([rows, nested[used].tocsc()]).tocsc()
        slack = sparse.vstack([slack, sparse.csc_matrix((len(used), p))]).tocsc()
        lower = np.append(lower, np.full(len(used), -highspy.kHighsInf))
        upper = np.append(upper, -(table.nested_rows[used] @ table.inner_values))
    if table.facts is not None:  # and other facts hold: lower <= facts . (x + change) <= upper
        facts = table.facts.rows[:, inner].tocsr()
        used = np.flatnonzero(np.diff(facts.indptr) > 0)
        now = table.facts.rows[used] @ table.inner_values
        rows = sparse.vstack([rows, facts[used].tocsc()]).tocsc()
        slack = sparse.vstack([slack, sparse.csc_matrix((len(used), p))]).tocsc()
        lower = np.append(lower, table.facts.lower[used] - now)
        upper = np.append(upper, table.facts.upper[used] - now)
    a = sparse.hstack([rows, -slack, slack]).tocsc()
    room = np.where(np.isin(published, list(fixed)), 0.0, highspy.kHighsInf)  # a fixed cell cannot change
    h = loaded_solver(a, np.concatenate([np.zeros(n), costs[published], costs[published]]),
                      np.concatenate([-table.inner_values[inner], np.zeros(2 * p)]), lower, upper,
                      np.concatenate([np.full(n, highspy.kHighsInf), room, room]))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    x = np.asarray(h.getSolution().col_value)
    change = x[n:n + p] + x[n + p:]
    return set(published[change > TOLERANCE].tolist())


def interval_repairs(table: TableSet, suppressed: set[int], unsafe: pl.DataFrame, costs: np.ndarray,
                     fixed: frozenset[int] = frozenset()) -> tuple[set[int], set[int]]:
    """Cells to suppress as well so that every cell the audit found too narrow can move far enough (never a
    fixed cell), and the cells no pattern lets move far enough.

    Cells needing the most room go first, so the cells they release can serve the smaller ones after them.
    """
    added: set[int] = set()
    stuck: set[int] = set()
    for row in unsafe.sort(["upper_required", CELL_ID], descending=[True, False]).iter_rows(named=True):
        for upward, short, distance in (
            (True, row["upper"] < row[VALUE] + row["upper_required"] - TOLERANCE * 10, row["upper_required"]),
            (False, row["lower"] > row[VALUE] - row["lower_required"] + TOLERANCE * 10, row["lower_required"]),
        ):
            if not short:
                continue
            cells = widening_cells(table, suppressed | added, row[CELL_ID], upward, distance, costs, fixed)
            if cells is None:
                stuck.add(row[CELL_ID])
            else:
                added |= cells
    return added, stuck
