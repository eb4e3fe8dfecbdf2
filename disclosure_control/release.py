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
from .table import CELL_ID, INNER_ID, VALUE, TableError, TableSet

POPULATION = "population"


@dataclass(frozen=True)
class Nesting:
    """Every unit of `inner` is a unit of `outer`, counted in the same categories."""

    inner: str
    outer: str


def _union_hierarchy(dim: str, hierarchies: list[Hierarchy]) -> Hierarchy:
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
        d: _union_hierarchy(d, [parts[n].hierarchies[d] for n in names if d in parts[n].dimensions])
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
    return TableSet(dimensions, hierarchies, joined.tables, inner, cells, membership, contributions, nested)


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


def population_cells(cells: pl.DataFrame, release: TableSet, name: str, part: TableSet) -> pl.DataFrame:
    """The release's decision records (or any frame of its cells) for one population, numbered and named as in
    the population's own TableSet."""
    mine = cells.filter(pl.col(POPULATION) == name).sort(CELL_ID)
    offset = int(release.cells.filter(pl.col(POPULATION) == name)[CELL_ID].min())
    return mine.with_columns(pl.col(CELL_ID) - offset).drop(d for d in release.dimensions if d not in part.dimensions)
