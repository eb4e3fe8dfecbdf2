"""Secondary suppression, fast method: greedy Gaussian elimination (after Langsrud's GaussSuppression).

Every cell is a sum of inner cells, a column of the membership matrix. A suppressed primary cell can be worked
out exactly from the published cells if and only if its column lies in the span of theirs. So the cells are
visited from the most to the least worth publishing; each is published unless that would bring some primary
column into the published span, in which case it is suppressed as a secondary. The span is kept in echelon
form with exact integer arithmetic, and each primary's column is kept reduced against it: publishing a cell
discloses a primary exactly when that primary's residual would become zero.

Safe by construction against exact recovery from the margins; the interval audit (audit.py) then checks the
protection level, which linear independence alone does not guarantee once counts cannot go below zero.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict

import numpy as np
import polars as pl

from .policy import Policy
from .table import CELL_ID, VALUE, TableSet

Vector = dict[int, int]


def _normalised(v: Vector) -> Vector:
    g = 0
    for x in v.values():
        g = math.gcd(g, x)
        if g == 1:
            return v
    if g > 1:
        for k in v:
            v[k] //= g
    return v


def _subtract(v: Vector, b: Vector, j: int, changed: list[int] | None = None) -> Vector:
    """Remove coordinate j from v using b (whose leading coordinate is j), in place and in integers.

    Only coordinates where b is non-zero can change; those that appear or vanish are appended to changed.
    """
    cb, cv = b[j], v[j]
    if cb not in (1, -1):
        for k in v:
            v[k] *= cb
        factor = cv
    else:
        factor = cv * cb  # v - (cv / cb) * b, exact because 1 / cb == cb
    for k, bk in b.items():
        value = v.get(k, 0) - factor * bk
        if value:
            if k not in v and changed is not None:
                changed.append(k)
            v[k] = value
        elif k in v:
            del v[k]
            if changed is not None:
                changed.append(k)
    return _normalised(v) if cb not in (1, -1) else v


def _parallel(r: Vector, b: Vector) -> bool:
    """Whether r is a multiple of b (so eliminating with b would leave nothing)."""
    if len(r) != len(b):
        return False
    j = min(b)
    rj, bj = r.get(j, 0), b[j]
    return rj != 0 and all(r.get(k, 0) * bj == bk * rj for k, bk in b.items())


class Echelon:
    """A span of integer vectors in echelon form: each basis vector led by its smallest coordinate."""

    def __init__(self) -> None:
        self.basis: dict[int, Vector] = {}

    def reduce(self, v: Vector) -> Vector:
        """v (a fresh dict, changed in place) minus its projection onto the span's pivots."""
        heap = [k for k in v if k in self.basis]
        heapq.heapify(heap)
        changed: list[int] = []
        while heap:
            j = heapq.heappop(heap)
            if j not in v:
                continue
            changed.clear()
            _subtract(v, self.basis[j], j, changed)
            for k in changed:
                if k in v and k > j and k in self.basis:
                    heapq.heappush(heap, k)
        return v

    def add(self, v: Vector) -> int:
        j = min(v)
        self.basis[j] = v
        return j


def columns(table: TableSet) -> list[Vector]:
    m = table.membership
    return [{int(i): 1 for i in m.indices[m.indptr[c]:m.indptr[c + 1]]} for c in range(m.shape[1])]


def publish_order(table: TableSet, policy: Policy) -> list[int]:
    """Cells from most to least worth publishing: totals (highest first), zeros, then the largest cells.

    Visiting cheap cells last makes them the ones suppressed: cost is the cell's value (or one per cell).
    """
    cost = pl.col(VALUE) if policy.cost == "value" else pl.lit(1)
    ordered = table.cells.sort(
        [pl.col("is_total").not_(), pl.col("depth"), pl.col(VALUE) != 0, cost, pl.col(CELL_ID)],
        descending=[False, False, False, True, False],
    )
    return ordered[CELL_ID].to_list()


def _sum(a: Vector, b: Vector) -> Vector:
    total = dict(a)
    for k, x in b.items():
        if total.setdefault(k, 0) + x:
            total[k] += x
        else:
            del total[k]
    return total


def _sum_parallel(a: Vector, b: Vector, v: Vector) -> bool:
    """Whether a + b is a multiple of v, rejecting cheaply where the coordinates already rule it out: a
    coordinate of only one of a, b cannot cancel, so it must be one of v's."""
    if any(k not in v and k not in b for k in a) or any(k not in v and k not in a for k in b):
        return False
    return _parallel(_sum(a, b), v)


def gauss_suppression(table: TableSet, primary: set[int], forced: set[int], policy: Policy,
                      pairs: list[tuple[int, int]] = (), known: frozenset[int] = frozenset()) -> set[int]:
    """Cells to suppress (primaries, forced cells and the secondaries found) so that no primary, and no sum of
    the given pairs of primaries, is recoverable. Known cells (the attacker has them from elsewhere) enter the
    published span first, whatever this release shows.

    A pair's sum is recoverable once the sum of the two residuals is: publishing v does that exactly when that
    sum is a multiple of v, so pairs need no residuals of their own (checked only for primaries v touches).
    """
    cols = columns(table)
    span = Echelon()
    residual: dict[int, Vector] = {p: dict(cols[p]) for p in primary}
    partners: dict[int, list[int]] = defaultdict(list)
    for a, b in pairs:
        partners[a].append(b)
        partners[b].append(a)
    holders: dict[int, set[int]] = defaultdict(set)  # coordinate -> primaries whose residual uses it
    for p, r in residual.items():
        for k in r:
            holders[k].add(p)
    suppressed = set(primary) | set(forced)
    order = publish_order(table, policy)
    for cell in [c for c in order if c in known] + [c for c in order if c not in known]:
        if cell in suppressed and cell not in known:
            continue
        v = span.reduce(dict(cols[cell]))
        if not v:
            continue  # already determined by what is published: publishing it adds nothing
        j = min(v)
        affected = list(holders.get(j, ()))
        if cell not in known and (any(_parallel(residual[p], v) for p in affected) or any(
                _sum_parallel(residual[p], residual[q], v) for p in affected for q in partners.get(p, ()))):
            suppressed.add(cell)  # publishing it would let someone work out a primary (or a pair's sum) exactly
            continue
        span.add(v)
        changed: list[int] = []
        for p in affected:
            changed.clear()
            _subtract(residual[p], v, j, changed)
            for k in changed:
                (holders[k].add if k in residual[p] else holders[k].discard)(p)
    return suppressed


class PairSums:
    """The published span and each pair's sum reduced against it: whether publishing one more cell lets a pair's
    sum be worked out is then one reduction, not a rebuild of the span (independent of any visiting order).

    A residual reduced against an echelon basis holds no pivot coordinate, so a sum lies in the span widened by a
    cell exactly when its residual is zero or a multiple of the cell's residual."""

    def __init__(self, table: TableSet, suppressed: set[int], pairs: list[tuple[int, int]]) -> None:
        self.cols = columns(table)
        self.span = Echelon()
        for cell in sorted(range(len(self.cols)), key=lambda c: (len(self.cols[c]), c)):  # the sparsest first:
            if cell not in suppressed:  # the span is the same in any order, and the basis stays sparse
                v = self.span.reduce(dict(self.cols[cell]))
                if v:
                    self.span.add(v)
        self.residuals = [self.span.reduce(_sum(self.cols[a], self.cols[b])) for a, b in pairs]

    def recovered_with(self, cell: int) -> bool:
        """Whether some pair's sum follows exactly from the published cells and this one."""
        v = self.span.reduce(dict(self.cols[cell]))
        return any(not r or (v and _parallel(r, v)) for r in self.residuals)

    def publish(self, cell: int) -> None:
        v = self.span.reduce(dict(self.cols[cell]))
        if v:
            self.span.add(v)
            self.residuals = [self.span.reduce(r) for r in self.residuals]


def cell_costs(table: TableSet, policy: Policy) -> np.ndarray:
    """What suppressing each cell costs, for the optimal method and the information-loss figures."""
    base = table.cell_values.copy() if policy.cost == "value" else np.ones(table.cells.height)
    base = np.maximum(base, 0.5)
    return np.where(table.cells["is_total"].to_numpy(), base * policy.total_cost_factor, base)
