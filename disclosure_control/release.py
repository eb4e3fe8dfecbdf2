"""A release: the linked tables of several populations, protected as one problem.

A population is the units that one or more publications count (pupils on roll; pupils with attendance records;
children in funded places). Each is a TableSet of linked tables. Where one population is contained in another,
every count of the smaller is at most the matching count of the larger, and an intruder who knows that can
narrow a hidden cell that neither publication alone gives away. So the release joins the populations into one
model: a `population` dimension names each cell's population (a cell of one population at the same coordinates
in two publications is one cell), the inner cells of every population are the attacker's unknowns, and each
nesting pairs every cell of the inner population with its counterpart in the outer one (the same coordinates),
which it can never exceed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse

from .hierarchy import ROOT, Hierarchy
from .table import CELL_ID, INNER_ID, VALUE, Facts, TableError, TableSet

POPULATION = "population"


@dataclass(frozen=True)
class Nesting:
    """Every unit of `inner` is a unit of `outer`, counted in the same categories."""

    inner: str
    outer: str


def union_hierarchy(dim: str, hierarchies: list[Hierarchy]) -> Hierarchy:
    """One tree for a dimension that several populations count at different depths (districts; schools within
    districts): every part's tree must be a cut of it."""
    parent: dict[str, str] = {}
    for hierarchy in hierarchies:
        for child, up in hierarchy.parent_of:
            if parent.setdefault(child, up) != up:
                raise TableError(f"dimension {dim!r}: {child!r} has parent {parent[child]!r} in one population "
                                 f"and {up!r} in another")
    return Hierarchy(dim, tuple(parent.items()))


def _widened(frame: pl.DataFrame, name: str, dimensions: tuple[str, ...], offset_column: str, offset: int) -> pl.DataFrame:
    return frame.with_columns(pl.col(offset_column) + offset, pl.lit(name).alias(POPULATION),
                              *[pl.lit(ROOT).alias(d) for d in dimensions[1:] if d not in frame.columns])


def release_table(parts: dict[str, TableSet], nestings: Sequence[Nesting] = ()) -> TableSet:
    """One model of every population's tables (parts: population name -> its linked tables), with the nestings'
    inequalities. Populations come in name order, so cell numbers do not depend on the order given."""
    names = sorted(parts)
    unknown = [n for nesting in nestings for n in (nesting.inner, nesting.outer) if n not in parts]
    if unknown:
        raise TableError(f"nesting names population {unknown[0]!r}, which the release does not have")
    kinds = {parts[n].magnitude for n in names}
    if len(kinds) > 1:
        raise TableError("a release cannot mix count and magnitude tables")
    dimensions = (POPULATION, *dict.fromkeys(d for n in names for d in parts[n].dimensions))
    hierarchies = {POPULATION: Hierarchy.flat(POPULATION, names)} | {
        d: union_hierarchy(d, [parts[n].hierarchies[d] for n in names if d in parts[n].dimensions])
        for d in dimensions[1:]}
    inner_offsets = np.cumsum([0] + [parts[n].inner.height for n in names])
    cell_offsets = np.cumsum([0] + [parts[n].cells.height for n in names])
    inner = pl.concat([_widened(parts[n].inner, n, dimensions, INNER_ID, int(inner_offsets[i]))
                       .select(INNER_ID, *dimensions, VALUE) for i, n in enumerate(names)], how="vertical_relaxed")
    cells = pl.concat([_widened(parts[n].cells, n, dimensions, CELL_ID, int(cell_offsets[i]))
                       .select(CELL_ID, *dimensions, VALUE, "tables", "is_total", "depth") for i, n in enumerate(names)],
                      how="vertical_relaxed")
    membership = sparse.block_diag([parts[n].membership for n in names], format="csc")
    contributions = None
    if kinds == {True}:
        contributions = pl.concat([parts[n].contributions.with_columns(pl.col(CELL_ID) + int(cell_offsets[i]))
                                   for i, n in enumerate(names)])
    joined = TableSet(dimensions, hierarchies, tuple(t for n in names for t in parts[n].tables), inner, cells,
                      membership, contributions)
    if not nestings:
        return joined
    nested = pl.concat([_nesting_pairs(joined, nesting) for nesting in nestings]).sort("small", "large")
    facts = Facts.stacked(*(_nesting_facts(joined, parts, nesting) for nesting in nestings))
    return TableSet(dimensions, hierarchies, joined.tables, inner, cells, membership, contributions, nested, facts)


def _nesting_pairs(table: TableSet, nesting: Nesting) -> pl.DataFrame:
    """small, large: each cell of the inner population and its counterpart in the outer one (the same
    coordinates; dimensions only one of them has at Total). Refused when a count contradicts the nesting."""
    dims = list(table.dimensions[1:])
    cells = table.cells.select(CELL_ID, POPULATION, *dims, VALUE)
    small = cells.filter(pl.col(POPULATION) == nesting.inner).drop(POPULATION)
    large = cells.filter(pl.col(POPULATION) == nesting.outer).drop(POPULATION)
    pairs = small.join(large, on=dims, suffix="_large")
    broken = pairs.filter(pl.col(VALUE) > pl.col(f"{VALUE}_large"))
    if broken.height:
        raise TableError(f"population {nesting.inner!r} is not within {nesting.outer!r}: {broken.height} of its "
                         f"{pairs.height} cells count more units than their counterparts")
    return pairs.select(pl.col(CELL_ID).alias("small"), pl.col(f"{CELL_ID}_large").alias("large"))


def _nesting_facts(table: TableSet, parts: dict[str, TableSet], nesting: Nesting) -> Facts | None:
    """small <= large where only one of the two populations has a cell: at every coordinate of either's cells over
    the dimensions both count by, the inner population's inner cells under it sum to at most the outer's (a cross
    of categories only one of them publishes is still a cross both have)."""
    shared = [d for d in parts[nesting.inner].dimensions if d in parts[nesting.outer].dimensions]
    others = [d for d in table.dimensions[1:] if d not in shared]
    cells = table.cells.filter(pl.col(POPULATION).is_in([nesting.inner, nesting.outer])
                               & pl.all_horizontal([pl.col(d) == ROOT for d in others] or [pl.lit(True)]))
    lonely = cells.group_by(shared).agg(pl.col(POPULATION).n_unique().alias("n")).filter(pl.col("n") == 1).sort(shared)
    rows = []
    for coordinates in lonely.select(shared).iter_rows(named=True):
        small = table.under(coordinates | {POPULATION: nesting.inner})
        if not len(small):
            continue
        large = table.under(coordinates | {POPULATION: nesting.outer})
        if table.inner_values[small].sum() > table.inner_values[large].sum():
            raise TableError(f"population {nesting.inner!r} is not within {nesting.outer!r}: it counts more units at "
                             f"{', '.join(f'{d} {v}' for d, v in coordinates.items())}")
        rows.append((small, large))
    if not rows:
        return None
    r = np.concatenate([np.full(len(s) + len(g), i) for i, (s, g) in enumerate(rows)])
    c = np.concatenate([np.concatenate([s, g]) for s, g in rows])
    v = np.concatenate([np.concatenate([np.ones(len(s)), -np.ones(len(g))]) for s, g in rows])
    return Facts(sparse.csr_matrix((v, (r, c)), shape=(len(rows), table.inner.height)), np.full(len(rows), -np.inf),
                 np.zeros(len(rows)))


def population_cells(cells: pl.DataFrame, release: TableSet, name: str, part: TableSet) -> pl.DataFrame:
    """The release's decision records (or any frame of its cells) for one population, numbered and named as in
    the population's own TableSet."""
    mine = cells.filter(pl.col(POPULATION) == name).sort(CELL_ID)
    offset = int(release.cells.filter(pl.col(POPULATION) == name)[CELL_ID].min())
    return mine.with_columns(pl.col(CELL_ID) - offset).drop(d for d in release.dimensions if d not in part.dimensions)


EARLIER, MOVED = " (earlier)", "(moved)"


def differencing_model(current: TableSet, earlier: TableSet, movers: int, bounded: set[str]) -> TableSet:
    """The current release's model joined to the earlier release's, for an intruder who holds both and knows
    that at most `movers` units joined or left each of the `bounded` populations in between (of the others it
    knows nothing: more changed there than it assumes).

    The current cells keep their numbers; the earlier cells follow, their population named with " (earlier)".
    For every combination of codes either release counts, two more unknowns carry the change (up and down), and
    facts tie them: now - then - up + down = 0, and up + down summed over a bounded population is at most
    `movers`."""
    if current.dimensions != earlier.dimensions:
        raise TableError("the earlier release does not have the same dimensions")
    dims = list(current.dimensions)
    union = current.inner.select(INNER_ID, *dims, VALUE).join(
        earlier.inner.select(INNER_ID, *dims, VALUE), on=dims, how="full", coalesce=True, suffix="_then")
    union = union.with_columns(change=pl.col(VALUE).fill_null(0) - pl.col(f"{VALUE}_then").fill_null(0)).sort(dims)
    n_now, n_then, n_union = current.inner.height, earlier.inner.height, union.height
    then = earlier.inner.with_columns(pl.col(INNER_ID) + n_now, pl.col(POPULATION) + EARLIER)
    changes = [union.select(pl.lit(MOVED).alias(POPULATION), *[pl.lit(ROOT).alias(d) for d in dims[1:]],
                            pl.col("change").clip(lower_bound=0).alias(VALUE) if up else (-pl.col("change")).clip(lower_bound=0).alias(VALUE))
               for up in (True, False)]
    d_inner = pl.concat(changes).with_row_index(INNER_ID, offset=n_now + n_then).with_columns(pl.col(INNER_ID).cast(pl.Int64))
    inner = pl.concat([current.inner.select(INNER_ID, *dims, VALUE), then.select(INNER_ID, *dims, VALUE),
                       d_inner.select(INNER_ID, *dims, VALUE)], how="vertical_relaxed")
    offset = current.cells.height
    cells = pl.concat([current.cells, earlier.cells.with_columns(pl.col(CELL_ID) + offset, pl.col(POPULATION) + EARLIER,
                                                               pl.col("tables").list.eval(pl.lit("earlier:") + pl.element()))
                       .select(current.cells.columns)], how="vertical_relaxed")
    membership = sparse.block_diag([current.membership, earlier.membership,
                                    sparse.csc_matrix((2 * n_union, 0))], format="csc")
    rows = np.arange(n_union)
    link_now = union[INNER_ID].to_numpy()
    link_then = union[f"{INNER_ID}_then"].to_numpy()
    has_now, has_then = ~np.isnan(link_now.astype(float)), ~np.isnan(link_then.astype(float))
    up = n_now + n_then + rows
    down = up + n_union
    link = sparse.csr_matrix((
        np.concatenate([np.ones(has_now.sum()), -np.ones(has_then.sum()), -np.ones(n_union), np.ones(n_union)]),
        (np.concatenate([rows[has_now], rows[has_then], rows, rows]),
         np.concatenate([link_now[has_now].astype(np.int64), link_then[has_then].astype(np.int64) + n_now, up, down]))),
        shape=(n_union, inner.height))
    populations = sorted(bounded)
    which = np.array([populations.index(p) if p in bounded else -1 for p in union[POPULATION].to_list()])
    mine = which >= 0
    bound = sparse.csr_matrix((np.ones(2 * mine.sum()), (np.concatenate([which[mine], which[mine]]),
                                                           np.concatenate([up[mine], down[mine]]))),
                              shape=(len(populations), inner.height))
    facts = Facts.stacked(current.facts.widened(inner.height, 0) if current.facts else None,
                          earlier.facts.widened(inner.height, n_now) if earlier.facts else None,
                          Facts(sparse.vstack([link, bound], format="csr"), np.zeros(n_union + len(populations)),
                                np.concatenate([np.zeros(n_union), np.full(len(populations), float(movers))])))
    names = sorted(set(inner[POPULATION].to_list()))
    hierarchies = {POPULATION: Hierarchy.flat(POPULATION, names)} | {
        d: union_hierarchy(d, [current.hierarchies[d], earlier.hierarchies[d]]) for d in dims[1:]}
    nested = None
    if current.nested is not None:
        nested = pl.concat([current.nested, earlier.nested.with_columns(pl.col("small") + offset, pl.col("large") + offset)])
    return TableSet(current.dimensions, hierarchies, current.tables, inner, cells, membership, None, nested, facts)
