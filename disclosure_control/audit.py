"""The interval audit: how much an attacker who sees every published cell can learn about each suppressed one.

The attacker's unknowns are the inner cells not revealed by a published cell of their own; they are
non-negative, every published cell fixes their sum, and where the release nests one population in another each
count of the smaller is at most the larger's (table.nested). A suppressed cell's feasible interval is the minimum
and maximum of its sum under those constraints, found by linear programming with HiGHS. The unknowns split into
independent groups (connected through published cells and nestings); each group's LP is built once and only its
objective changes between solves, so HiGHS warm-starts from the last basis.
"""

from __future__ import annotations

import math

import highspy
import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .table import CELL_ID, VALUE, TableSet

INTERVAL_COLUMNS = {CELL_ID: pl.Int64, "lower": pl.Float64, "upper": pl.Float64}
BATCH_ROUNDS = 8  # batches of LPs before single-cell solves: measured fastest on 16k-cell tables (8 vs 40: 1.9 s vs 2.5 s)
RECHECK_ROUNDS = 4  # cells re-checked after a repair are mostly truly narrow: go to exact solves sooner


class AuditError(RuntimeError):
    """The solver failed where a feasible table must exist: a bug, never a pass."""


def new_solver():
    """A silent HiGHS instance. The core class is used because highspy.Highs prints a banner on stdout
    when it sets up callbacks, which this library never uses (and output must stay clean)."""
    h = highspy._core._Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")  # models here are re-solved after small changes: warm-start instead
    return h


def loaded_solver(a: sparse.csc_matrix, cost: np.ndarray, col_lower: np.ndarray, row_lower: np.ndarray,
                  row_upper: np.ndarray, col_upper: np.ndarray | None = None):
    """A silent HiGHS instance holding the LP min cost.x, row_lower <= a x <= row_upper, col bounds (upper:
    none unless given). The one place the library builds an LP for HiGHS."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
    lp.col_cost_ = cost
    lp.col_lower_ = col_lower
    lp.col_upper_ = np.full(a.shape[1], highspy.kHighsInf) if col_upper is None else col_upper
    lp.row_lower_, lp.row_upper_ = row_lower, row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    h = new_solver()
    h.passModel(lp)
    return h


def _highs(a: sparse.csc_matrix, lower: np.ndarray, upper: np.ndarray):
    h = loaded_solver(a, np.zeros(a.shape[1]), np.zeros(a.shape[1]), lower, upper)
    h.setOptionValue("simplex_strategy", 4)  # only the objective changes between solves, so the basis stays
    # primal feasible: primal simplex re-solves about 10x faster than HiGHS's default dual here
    return h


def _run(h):
    """Solve; if the warm-started primal simplex stalls in numerical trouble (HiGHS says Unknown, seen on a
    48,000-cell linked table), solve once more from scratch with the dual simplex before giving up."""
    h.run()
    status = h.getModelStatus()
    if status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded):
        return status
    h.clearSolver()
    h.setOptionValue("simplex_strategy", 1)
    h.run()
    h.setOptionValue("simplex_strategy", 4)
    return h.getModelStatus()


def _solved(h, weights: np.ndarray, upward: bool) -> bool:
    """Maximise (or minimise) weights . x; False when unbounded, so any bound is reached."""
    n = h.getNumCol()
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.asarray(weights, dtype=float))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize if upward else highspy.ObjSense.kMinimize)
    status = _run(h)
    if status == highspy.HighsModelStatus.kUnbounded:
        return False
    if status != highspy.HighsModelStatus.kOptimal:
        raise AuditError(f"HiGHS returned {h.modelStatusToString(status)} on a table that has a feasible solution")
    return True


def _extreme(h, columns: np.ndarray, upward: bool) -> float:
    weights = np.zeros(h.getNumCol())
    weights[columns] = 1.0
    return h.getInfo().objective_function_value if _solved(h, weights, upward) else math.inf


class AttackModel:
    """What an attacker knows: every published cell's value, that counts are non-negative, the release's
    nestings and any other facts the table set carries. `suppressed` is the cells whose values the attacker does not know."""

    def __init__(self, table: TableSet, suppressed: set[int]):
        m = table.membership.tocsc()
        self.m, self.values, self.table = m, table.inner_values, table
        self.published = np.array([c for c in range(m.shape[1]) if c not in suppressed], dtype=np.int64)
        singles = self.published[np.diff(m.indptr)[self.published] == 1]
        self.known = np.zeros(m.shape[0], dtype=bool)
        self.known[m.indices[m.indptr[singles]]] = True
        unknown = np.flatnonzero(~self.known)
        self.position = np.full(m.shape[0], -1)
        self.position[unknown] = np.arange(len(unknown))
        pub = m[:, self.published].T.tocsr()  # published cells x inner cells
        known_values = np.where(self.known, self.values, 0.0)
        a = pub[:, unknown].tocsr()
        rows = np.flatnonzero(np.diff(a.indptr) > 0)  # published cells that constrain an unknown
        rhs = table.cell_values[self.published[rows]] - (pub @ known_values)[rows]
        blocks, lower, upper = [a[rows]], [rhs], [rhs]
        if table.nested is not None and table.nested.height:
            rows, bound = self._nesting_rows(table, suppressed)
            nested = rows[:, unknown].tocsr()
            used = np.flatnonzero(np.diff(nested.indptr) > 0)
            blocks.append(nested[used])
            lower.append(np.full(len(used), -np.inf))
            upper.append((bound - rows @ known_values)[used])
        if table.facts is not None:
            facts = table.facts.rows[:, unknown].tocsr()
            used = np.flatnonzero(np.diff(facts.indptr) > 0)
            fixed = (table.facts.rows @ known_values)[used]
            blocks.append(facts[used])
            lower.append(table.facts.lower[used] - fixed)
            upper.append(table.facts.upper[used] - fixed)
        self.a = sparse.vstack(blocks, format="csr")
        self.lower, self.upper = np.concatenate(lower), np.concatenate(upper)
        if len(unknown):
            graph = sparse.bmat([[None, self.a], [self.a.T, None]]).tocsr()
            _, groups = connected_components(graph, directed=False)
            self.group = groups[self.a.shape[0]:]
        else:
            self.group = np.array([], dtype=int)
        self.models: dict[int, tuple[object, np.ndarray]] = {}

    @staticmethod
    def _nesting_rows(table: TableSet, suppressed: set[int]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """small <= large for each nesting pair, with a published side written as its value: rows . x <= bound.
        (A published large cell makes the row a few small inner cells against a number, not its whole sum.)"""
        small, large = table.nested["small"].to_numpy(), table.nested["large"].to_numpy()
        hidden = np.zeros(table.cells.height, dtype=bool)
        hidden[list(suppressed)] = True
        m = table.membership.tocsc()
        rows = (m[:, small] @ sparse.diags(hidden[small].astype(float))
                - m[:, large] @ sparse.diags(hidden[large].astype(float))).T.tocsr()
        values = table.cell_values
        bound = np.where(hidden[large], 0.0, values[large]) - np.where(hidden[small], 0.0, values[small])
        return rows, bound

    def _model(self, g: int):
        if g not in self.models:
            members = np.flatnonzero(self.group == g)
            sub = self.a[:, members]
            used = np.flatnonzero(np.diff(sub.tocsr().indptr) > 0)
            self.models[g] = (_highs(sub[used].tocsc(), self.lower[used], self.upper[used]), members)
        return self.models[g]

    def _parts(self, cell: int):
        inner = self.m.indices[self.m.indptr[cell]:self.m.indptr[cell + 1]]
        variables = self.position[inner[~self.known[inner]]]
        return float(self.values[inner[self.known[inner]]].sum()), variables

    def reach(self, cell: int, upward: bool) -> float:
        """The cell's exact maximum (or minimum)."""
        total, variables = self._parts(cell)
        for g in np.unique(self.group[variables]):
            h, members = self._model(g)
            local = np.searchsorted(members, variables[self.group[variables] == g])
            total += _extreme(h, local, upward)
        return total

def certified_intervals(table: TableSet, suppressed: set[int], required: pl.DataFrame, rounds: int = BATCH_ROUNDS,
                        seed: int = 0, only: set[int] | None = None) -> pl.DataFrame:
    """Intervals each suppressed cell is certified to span, found by batches of LPs.

    Every LP solution is a table the attacker cannot rule out, so each cell's value in it is attainable.
    Maximising (then minimising) a randomly weighted sum of the cells not yet shown to reach their required
    bound pushes many of them at once; a handful of solves certify most cells. Cells still short after
    that get exact single-cell solves, so a cell is reported unsafe only on its true interval.
    """
    if not suppressed:
        return pl.DataFrame(schema={**INTERVAL_COLUMNS, "exact": pl.Boolean})
    attacker = AttackModel(table, suppressed)
    cells = np.array(sorted(suppressed if only is None else only & suppressed), dtype=np.int64)
    value = table.cell_values[cells]
    need = required.join(pl.DataFrame({CELL_ID: cells}), on=CELL_ID, how="right").fill_null(0.0)
    need = need.sort(CELL_ID)
    target_up = value + need["upper_required"].to_numpy()
    target_low = value - need["lower_required"].to_numpy()
    m = attacker.m[:, cells]
    known_part = m.T @ np.where(attacker.known, attacker.values, 0.0)
    unknown_rows = np.flatnonzero(attacker.position >= 0)
    cell_of_unknown = m[unknown_rows].T.tocsr()  # cells x unknowns
    low, high = value.copy(), value.copy()
    exact = np.zeros(len(cells), dtype=bool)
    if cell_of_unknown.shape[1]:
        h = _highs(attacker.a.tocsc(), attacker.lower, attacker.upper)
        rng = np.random.default_rng(seed)
        for _ in range(rounds):
            progress = False
            for upward in (True, False):
                short = np.flatnonzero(high < target_up - 1e-6) if upward else np.flatnonzero(low > target_low + 1e-6)
                if not len(short):
                    continue
                weights = cell_of_unknown[short].T @ rng.uniform(0.5, 1.5, len(short))
                before = (high.copy(), low.copy())
                if _solved(h, weights, upward):
                    reached = known_part + cell_of_unknown @ np.asarray(h.getSolution().col_value)
                    np.maximum(high, reached, out=high)
                    np.minimum(low, reached, out=low)
                else:  # unbounded: the cells along the solver's ray have no upper bound; the others learn nothing
                    high[cell_of_unknown @ _ray(h) > 1e-9] = math.inf
                progress |= bool((high > before[0] + 1e-9).any() or (low < before[1] - 1e-9).any())
            if not progress:
                break
        for i in range(len(cells)):
            for upward in (True, False):
                if (high[i] < target_up[i] - 1e-6) if upward else (low[i] > target_low[i] + 1e-6):
                    (high if upward else low)[i] = attacker.reach(int(cells[i]), upward)
                    exact[i] = True
    return pl.DataFrame({CELL_ID: cells, "lower": low, "upper": high, "exact": exact})


def _ray(h) -> np.ndarray:
    """A direction along which every constraint holds and the objective grows without bound (zero if HiGHS has
    none to give: then nothing is certified)."""
    _, has_ray, ray = h.getPrimalRay()
    return np.asarray(ray) if has_ray else np.zeros(h.getNumCol())


def audit(table: TableSet, suppressed: set[int], required: pl.DataFrame, only: set[int] | None = None,
          rounds: int = BATCH_ROUNDS) -> pl.DataFrame:
    """Certified intervals joined to each cell's required protection (cell_id, upper_required,
    lower_required); a cell is safe when its interval reaches value + upper_required and value -
    lower_required. `only` restricts the check to some suppressed cells; `rounds` caps the batches."""
    found = certified_intervals(table, suppressed, required, rounds=rounds, only=only).join(table.cells.select(CELL_ID, VALUE), on=CELL_ID)
    found = found.join(required, on=CELL_ID, how="left").with_columns(
        pl.col("upper_required").fill_null(0.0), pl.col("lower_required").fill_null(0.0))
    tolerance = 1e-6
    return found.with_columns(
        safe=(pl.col("upper") >= pl.col(VALUE) + pl.col("upper_required") - tolerance)
        & (pl.col("lower") <= pl.col(VALUE) - pl.col("lower_required") + tolerance),
        primary=pl.col(CELL_ID).is_in(required[CELL_ID].implode()),
    ).sort(CELL_ID)
