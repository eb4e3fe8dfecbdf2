"""Secondary suppression, optimal method: Fischetti and Salazar's model, solved with HiGHS by constraint generation.

Binary y_c says cell c is suppressed; the master problem minimises the cost of the suppressed cells with every
primary suppressed. For a pattern y, an attacker LP per primary and direction (up, down) asks how far the cell
can move when the published cells hold their values and each suppressed cell c may range over
[a_c - a_c, a_c + total] (counts are non-negative; the table total bounds everything). When the attacker gets
closer than the protection level, LP duality gives a capacity cut that every protecting pattern satisfies:

    sum_c (alpha_c * UB_c + beta_c * LB_c) * y_c  >=  a_p + UPL_p - sum_c (alpha_c - beta_c) * a_c

where alpha, beta are the positive and negative parts of the row duals. A singleton pair's sum (singletons.py)
is one more target: it must be able to move up by one. A release's nestings are rows of the attacker's LP with
fixed bounds (at most zero), so they tighten the attacker without adding terms to a cut; cells the attacker knows
from elsewhere are never suppressed, and cells hidden in the earlier release always are.

Cuts are added until no attacker succeeds. The work is capped in attacker LPs solved and in branch-and-bound nodes
per master solve (never in seconds, so the pattern does not depend on the machine); past the cap the caller falls
back to the fast method and says so.
"""

from __future__ import annotations

import highspy
import numpy as np
import polars as pl
from scipy import sparse

from .audit import loaded_solver, new_solver
from .policy import Policy
from .secondary import cell_costs
from .table import CELL_ID, TableSet

TOLERANCE = 1e-6
MASTER_NODES = 20_000  # branch-and-bound nodes per master solve


class _Attacker:
    """One LP over the inner cells whose rows are all cells; row bounds follow the pattern y."""

    def __init__(self, table: TableSet):
        self.a = table.cell_values
        self.width_up = np.full(len(self.a), table.inner_values.sum())  # UB_c: the total bounds any cell
        self.width_down = self.a.copy()  # LB_c: a count cannot go below zero
        m = table.membership.T.tocsc()  # cells x inner, column-wise for HiGHS
        self.n_rows = m.shape[0]
        lower, upper = self.a.copy(), self.a.copy()
        if table.nested_rows is not None:
            m = sparse.vstack([m, table.nested_rows]).tocsc()
            lower = np.append(lower, np.full(table.nested_rows.shape[0], -highspy.kHighsInf))
            upper = np.append(upper, np.zeros(table.nested_rows.shape[0]))
        self.h = loaded_solver(m, np.zeros(m.shape[1]), np.zeros(m.shape[1]), lower, upper)
        self.cells = table.membership.tocsc()

    def set_pattern(self, y: np.ndarray) -> None:
        lower, upper = self.a - self.width_down * y, self.a + self.width_up * y
        self.lower, self.upper = lower, upper
        self.h.changeRowsBounds(self.n_rows, np.arange(self.n_rows, dtype=np.int32), lower, upper)

    def cut(self, cells: tuple[int, ...], upward: bool, target: float) -> tuple[np.ndarray, float] | None:
        """None when the attacker cannot take the cells' sum past target; else the cut's coefficients and
        right side."""
        n = self.h.getNumCol()
        cost = np.zeros(n)
        for cell in cells:
            cost[self.cells.indices[self.cells.indptr[cell]:self.cells.indptr[cell + 1]]] += 1.0 if upward else -1.0
        self.h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
        self.h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None  # unbounded: the attacker learns nothing
        best = self.h.getInfo().objective_function_value
        reach = best if upward else -best
        if (upward and reach >= target - TOLERANCE) or (not upward and reach <= target + TOLERANCE):
            return None
        dual = np.asarray(self.h.getSolution().row_dual)[:self.n_rows]  # nestings: bound 0, no term in the cut
        if abs(np.maximum(dual, 0) @ self.upper - np.maximum(-dual, 0) @ self.lower - best) > 1e-4 * max(1.0, abs(best)):
            dual = -dual  # HiGHS's sign convention for maximisation: pick the one that gives strong duality
        alpha, beta = np.maximum(dual, 0), np.maximum(-dual, 0)
        coefficients = alpha * self.width_up + beta * self.width_down
        needed = (target if upward else -target) - (alpha - beta) @ self.a
        return coefficients, needed


def goals(table: TableSet, required: pl.DataFrame, pairs: list[tuple[int, int]]) -> list[tuple[tuple[int, ...], bool, float]]:
    """(cells, upward, target): each primary must reach its protection level both ways; each singleton pair's
    sum must be able to move by one, so that it cannot be worked out exactly."""
    a = table.cell_values
    out = []
    for row in required.sort(CELL_ID).iter_rows(named=True):
        value = a[row[CELL_ID]]
        out += [((row[CELL_ID],), True, value + row["upper_required"]), ((row[CELL_ID],), False, value - row["lower_required"])]
    return out + [(pair, True, a[pair[0]] + a[pair[1]] + 1) for pair in pairs]


def optimal_suppression(table: TableSet, primary: set[int], required: pl.DataFrame, policy: Policy,
                        pairs: list[tuple[int, int]] = (), known: frozenset[int] = frozenset(),
                        forced: set[int] = frozenset()) -> tuple[set[int], str | None]:
    """The cheapest protecting pattern (never suppressing a known cell, always the forced ones), or (set(), a
    note saying why the fast method must be used)."""
    costs = cell_costs(table, policy)
    n = len(costs)
    targets = goals(table, required, pairs)
    attacker = _Attacker(table)
    master = new_solver()
    master.setOptionValue("mip_rel_gap", 0.0)
    master.setOptionValue("mip_max_nodes", MASTER_NODES)
    lower, upper = np.zeros(n), np.ones(n)
    lower[list((set(primary) | set(forced)) - known)] = 1.0
    upper[list(known)] = 0.0  # the attacker has it anyway: hiding it protects nothing
    for c in range(n):
        master.addCol(float(costs[c]), float(lower[c]), float(upper[c]), 0, np.array([], dtype=np.int32), np.array([]))
    master.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger))
    y = lower.copy()
    solves = 0
    while True:
        attacker.set_pattern(y)
        cuts = 0
        for cells, upward, target in targets:
            solves += 1
            if solves > policy.optimal_solves:
                return set(), f"the optimal method used its {policy.optimal_solves:,} attacker solves; the fast method was used instead"
            found = attacker.cut(cells, upward, target)
            if found is not None:
                coefficients, needed = found
                used = np.flatnonzero(coefficients > TOLERANCE)
                master.addRow(float(needed), highspy.kHighsInf, len(used), used.astype(np.int32), coefficients[used])
                cuts += 1
        if not cuts:
            return {int(c) for c in np.flatnonzero(y > 0.5)}, None
        master.run()
        if master.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return set(), f"the optimal method stopped ({master.modelStatusToString(master.getModelStatus())}); the fast method was used instead"
        y = np.round(np.asarray(master.getSolution().col_value))
