"""The table model: cells of one or more linked tables, each cell a sum of inner cells.

Inner cells are the finest cross-classification the tables are built from: for one table, every combination of
its leaf codes (zeros included); for linked tables (the same pupils by ethnicity, by SEN, by FSM), the observed
combinations of all their dimensions. Treating unobserved combinations as known zeros gives the attacker more
knowledge than they have, so protection computed on this model is on the safe side.

A cell is named by one node per dimension of the whole set (Total for dimensions its table lacks), so a margin
that two tables share is one cell with one status.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import polars as pl
from scipy import sparse

from .hierarchy import ROOT, Hierarchy, HierarchyError

INNER_ID, CELL_ID, VALUE, CONTRIBUTOR = "inner_id", "cell_id", "value", "contributor"


class TableError(ValueError):
    """Input that cannot make a table: the message says what is wrong."""


@dataclass(frozen=True)
class TableSpec:
    """A table of the set: its dimensions, and where it stops above a hierarchy's leaves (depth: dimension ->
    deepest level shown, as districts of a hierarchy that goes down to schools)."""

    name: str
    dimensions: tuple[str, ...]
    depth: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Facts:
    """Linear facts about the inner cells that an attacker knows besides the published cells: lower <= rows . x
    <= upper (for differencing, that the two releases' counts differ by at most a few movers)."""

    rows: sparse.csr_matrix  # facts x inner cells
    lower: np.ndarray
    upper: np.ndarray

    @staticmethod
    def stacked(*parts: "Facts | None") -> "Facts | None":
        """All of them together (None when there are none)."""
        parts = [p for p in parts if p is not None and p.rows.shape[0]]
        if not parts:
            return None
        return Facts(sparse.vstack([p.rows for p in parts], format="csr"), np.concatenate([p.lower for p in parts]),
                     np.concatenate([p.upper for p in parts]))

    def widened(self, columns: int, offset: int) -> "Facts":
        """The same facts over a larger set of inner cells, where these start at `offset`."""
        rows = self.rows.tocoo()
        return Facts(sparse.csr_matrix((rows.data, (rows.row, rows.col + offset)), shape=(rows.shape[0], columns)),
                     self.lower, self.upper)


@dataclass(frozen=True)
class TableSet:
    dimensions: tuple[str, ...]
    hierarchies: dict[str, Hierarchy]
    tables: tuple[TableSpec, ...]
    inner: pl.DataFrame  # inner_id, one leaf code per dimension, value
    cells: pl.DataFrame  # cell_id, one node per dimension, value, tables, is_total, depth
    membership: sparse.csc_matrix  # inner cells x cells, 1 where the inner cell is part of the cell
    contributions: pl.DataFrame | None = None  # cell_id, contributor, value: for magnitude tables
    nested: pl.DataFrame | None = None  # small, large: a cell of a sub-population and its counterpart in the
    # population that holds it (absence pupils among the pupils on roll), which it can never exceed
    facts: Facts | None = None

    @cached_property
    def inner_values(self) -> np.ndarray:
        return self.inner[VALUE].to_numpy().astype(float)

    @cached_property
    def cell_values(self) -> np.ndarray:
        return self.cells[VALUE].to_numpy().astype(float)

    @cached_property
    def membership_rows(self) -> sparse.csr_matrix:
        """The membership matrix by inner cell, for taking a subset of inner cells."""
        return self.membership.tocsr()

    @cached_property
    def nested_rows(self) -> sparse.csr_matrix | None:
        """One row per nesting pair over the inner cells: small's inner cells less large's, at most zero."""
        if self.nested is None or self.nested.is_empty():
            return None
        m = self.membership
        return (m[:, self.nested["small"].to_numpy()] - m[:, self.nested["large"].to_numpy()]).T.tocsr()

    @cached_property
    def relations(self) -> pl.DataFrame:
        """total, part: each total with the cells that add up to it along one dimension (relation numbers it)."""
        frames = []
        for dim in self.dimensions:
            parents = self.hierarchies[dim].parents
            others = [d for d in self.dimensions if d != dim]
            parts = self.cells.filter(pl.col(dim) != ROOT).select(
                *others, pl.col(dim).replace_strict(parents).alias(dim), pl.col(CELL_ID).alias("part"))
            frames.append(parts.join(self.cells.select(*self.dimensions, pl.col(CELL_ID).alias("total")),
                                     on=list(self.dimensions)).select("total", "part", pl.lit(dim).alias("dimension")))
        joined = pl.concat(frames)
        return joined.with_columns(relation=pl.struct("total", "dimension").rank("dense").cast(pl.Int64) - 1)

    @property
    def magnitude(self) -> bool:
        return self.contributions is not None

    @cached_property
    def _ancestor_codes(self) -> dict[str, list[np.ndarray]]:
        """Per dimension and depth, the position (in hierarchy.nodes) of each inner cell's ancestor there (-1 below
        its own node: in a release, a population's inner cells may stop above the leaves, or at the root of a
        dimension it lacks)."""
        out = {}
        for dim in self.dimensions:
            hierarchy = self.hierarchies[dim]
            position = {node: i for i, node in enumerate(hierarchy.nodes)}
            chains = {node: hierarchy.ancestors(node)[::-1] for node in hierarchy.nodes}
            height = max(len(chain) for chain in chains.values())
            per_node = {node: [position[n] for n in chain] + [-1] * (height - len(chain)) for node, chain in chains.items()}
            codes = np.array([per_node[code] for code in self.inner[dim].to_list()], dtype=np.int64).reshape(-1, height)
            out[dim] = [codes[:, depth] for depth in range(height)]
        return out

    def under(self, coordinates: dict[str, str]) -> np.ndarray:
        """The inner cells that lie under a coordinate (one node per dimension; a dimension left out is Total)."""
        keep = np.ones(self.inner.height, dtype=bool)
        for dim, node in coordinates.items():
            if node != ROOT:
                hierarchy = self.hierarchies[dim]
                keep &= self._ancestor_codes[dim][hierarchy.depth(node)] == hierarchy.nodes.index(node)
        return np.flatnonzero(keep)

    def with_cells(self, coordinates: pl.DataFrame) -> tuple["TableSet", pl.Series]:
        """The table set with a cell for each coordinate (one node per dimension) that it lacks, in no table:
        a figure that others publish about the same units, so an attacker has it. Returns the set and every
        coordinate's cell id, in order."""
        dims = list(self.dimensions)
        found = coordinates.select(dims).with_row_index("__order").join(
            self.cells.select(CELL_ID, *dims), on=dims, how="left").sort("__order")
        missing = found.filter(pl.col(CELL_ID).is_null()).unique(dims, maintain_order=True)
        if missing.is_empty():
            return self, found[CELL_ID]
        columns, depths, totals = [], np.zeros(missing.height, dtype=np.int64), np.zeros(missing.height, dtype=bool)
        for i, row in enumerate(missing.select(dims).iter_rows(named=True)):
            for dim in dims:
                hierarchy = self.hierarchies[dim]
                if row[dim] not in hierarchy.parents and row[dim] != ROOT:
                    raise TableError(f"dimension {dim!r} has no code {row[dim]!r}")
                depths[i] += hierarchy.depth(row[dim])
                totals[i] |= row[dim] in hierarchy.children
            columns.append(self.under(row))
        first = self.cells.height
        extra = missing.select(dims).with_columns(
            pl.Series(CELL_ID, np.arange(first, first + missing.height), dtype=pl.Int64),
            pl.Series("tables", [[] for _ in range(missing.height)], dtype=pl.List(pl.String)),
            pl.Series("is_total", totals), pl.Series("depth", depths, dtype=self.cells.schema["depth"]))
        added = sparse.csc_matrix((np.ones(sum(len(c) for c in columns)),
                                   (np.concatenate(columns), np.repeat(np.arange(missing.height), [len(c) for c in columns]))),
                                  shape=(self.inner.height, missing.height))
        extra = extra.with_columns(pl.Series(VALUE, added.T @ self.inner_values).cast(self.cells.schema[VALUE]))
        cells = pl.concat([self.cells, extra.select(self.cells.columns)])
        grown = TableSet(self.dimensions, self.hierarchies, self.tables, self.inner, cells,
                         sparse.hstack([self.membership, added]).tocsc(), self.contributions, self.nested, self.facts)
        ids = coordinates.select(dims).with_row_index("__order").join(cells.select(CELL_ID, *dims), on=dims, how="left")
        return grown, ids.sort("__order")[CELL_ID]

    def neighbourhood(self, cell: int, levels_up: int) -> np.ndarray:
        """Inner cells that lie, in every dimension, under the cell's ancestor `levels_up` steps above it.

        With one step this is the cell's siblings and their parts: where a small cell's protection is usually
        found, as in HiTaS's subtables. Enough steps give the whole table.
        """
        keep = np.ones(self.inner.height, dtype=bool)
        for dim in self.dimensions:
            hierarchy = self.hierarchies[dim]
            chain = hierarchy.ancestors(self.cells[dim][cell])
            anchor = chain[min(levels_up, len(chain) - 1)]
            keep &= self._ancestor_codes[dim][hierarchy.depth(anchor)] == hierarchy.nodes.index(anchor)
        return np.flatnonzero(keep)


def _hierarchies(frame: pl.DataFrame, dimensions, given: dict[str, Hierarchy] | None) -> dict[str, Hierarchy]:
    out = {}
    for dim in dimensions:
        codes = frame[dim].unique().to_list()
        if any(c is None for c in codes):
            raise TableError(f"dimension {dim!r} has empty codes")
        if ROOT in codes:
            raise TableError(f"dimension {dim!r} uses the reserved code {ROOT!r}; give base cells only, the engine adds totals")
        hierarchy = (given or {}).get(dim) or Hierarchy.flat(dim, codes)
        try:
            hierarchy.check_covers(codes)
        except HierarchyError as error:
            raise TableError(str(error)) from None
        out[dim] = hierarchy
    return out


def _check_dimensions(frame: pl.DataFrame, dimensions) -> None:
    missing = [d for d in dimensions if d not in frame.columns]
    if missing:
        raise TableError(f"unknown dimension {missing[0]!r} (columns: {', '.join(frame.columns)})")


def from_frequencies(frame: pl.DataFrame, dimensions: list[str], value: str,
                     hierarchies: dict[str, Hierarchy] | None = None, name: str = "table") -> TableSet:
    """One table from its base cells: one row per combination of leaf codes, with a non-negative count."""
    _check_dimensions(frame, [*dimensions, value])
    frame = frame.with_columns(pl.col(d).cast(pl.String) for d in dimensions)
    counts = frame[value].cast(pl.Float64, strict=False)
    if counts.null_count() or (counts < 0).any() or (counts != counts.round()).any():
        raise TableError(f"column {value!r} must hold non-negative whole counts")
    if frame.select(pl.struct(dimensions).is_duplicated().any()).item():
        raise TableError(f"base cells repeat a combination of {', '.join(dimensions)}")
    base = frame.select(*dimensions).with_columns(counts.cast(pl.Int64).alias(VALUE))
    return build([TableSpec(name, tuple(dimensions))], base, hierarchies, complete=True)


def from_microdata(frame: pl.DataFrame, tables: list[TableSpec], hierarchies: dict[str, Hierarchy] | None = None,
                   magnitude: str | None = None, contributor: str | None = None) -> TableSet:
    """Tables counted (or summed, for magnitude) from unit records; linked when there are several."""
    dimensions = list(_all_dimensions(tables))
    _check_dimensions(frame, dimensions + [c for c in (magnitude, contributor) if c])
    frame = frame.with_columns(pl.col(d).cast(pl.String) for d in dimensions)
    if magnitude:
        amounts = frame[magnitude].cast(pl.Float64, strict=False)
        if amounts.null_count() or (amounts < 0).any():
            raise TableError(f"column {magnitude!r} must hold a non-negative amount in every row")
        frame = frame.with_columns(amounts)
    amount = pl.col(magnitude) if magnitude else pl.lit(1, dtype=pl.Int64)
    base = frame.group_by(dimensions).agg((amount.sum() if magnitude else pl.len().cast(pl.Int64)).alias(VALUE))
    table_set = build(tables, base, hierarchies, complete=len(tables) == 1)
    if contributor is None:
        return table_set
    return _with_contributions(table_set, frame.with_columns(amount.alias(VALUE)), dimensions, contributor)


def _all_dimensions(tables: list[TableSpec]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(d for t in tables for d in t.dimensions))


def _ancestor_pairs(hierarchy: Hierarchy, dim: str, deepest: int | None) -> pl.DataFrame:
    """leaf, node, depth, and whether the node is a total of the table (it has children the table shows)."""
    rows = [(leaf, node, hierarchy.depth(node), node in hierarchy.children and hierarchy.depth(node) != deepest)
            for leaf in hierarchy.leaves for node in hierarchy.ancestors(leaf)
            if deepest is None or hierarchy.depth(node) <= deepest]
    return pl.DataFrame(rows, schema={dim: pl.String, f"{dim}__node": pl.String, f"{dim}__depth": pl.Int32,
                                      f"{dim}__total": pl.Boolean}, orient="row")


def build(tables: list[TableSpec], base: pl.DataFrame, hierarchies: dict[str, Hierarchy] | None, complete: bool) -> TableSet:
    dimensions = _all_dimensions(tables)
    hierarchies = _hierarchies(base, dimensions, hierarchies)
    if complete:
        grid = pl.DataFrame(list(itertools.product(*[hierarchies[d].leaves for d in dimensions])),
                            schema=list(dimensions), orient="row")
        base = grid.join(base, on=list(dimensions), how="left").with_columns(pl.col(VALUE).fill_null(0))
    inner = base.sort(list(dimensions)).with_row_index(INNER_ID).with_columns(pl.col(INNER_ID).cast(pl.Int64))
    pairs = []
    for table in tables:
        deepest = dict(table.depth)
        exploded = inner.select(INNER_ID, *table.dimensions)
        for dim in table.dimensions:
            exploded = exploded.join(_ancestor_pairs(hierarchies[dim], dim, deepest.get(dim)), on=dim).drop(dim)
        pairs.append(exploded.select(
            INNER_ID,
            *[(pl.col(f"{d}__node") if d in table.dimensions else pl.lit(ROOT)).alias(d) for d in dimensions],
            pl.sum_horizontal([pl.col(f"{d}__depth") for d in table.dimensions]).alias("depth"),
            pl.any_horizontal([pl.col(f"{d}__total") for d in table.dimensions]).alias("is_total"),
            pl.lit(table.name).alias("table"),
        ))
    pairs = pl.concat(pairs)
    cells = (
        pairs.group_by(list(dimensions), maintain_order=True)
        .agg(pl.col("table").unique(maintain_order=True).alias("tables"), pl.col("is_total").any(), pl.col("depth").max())
        .sort(["depth", *dimensions])
        .with_row_index(CELL_ID)
        .with_columns(pl.col(CELL_ID).cast(pl.Int64))
    )
    links = pairs.join(cells.select(CELL_ID, *dimensions), on=list(dimensions)).select(INNER_ID, CELL_ID).unique()
    membership = sparse.csc_matrix(
        (np.ones(links.height), (links[INNER_ID].to_numpy(), links[CELL_ID].to_numpy())),
        shape=(inner.height, cells.height),
    )
    values = membership.T @ inner[VALUE].to_numpy().astype(float)
    cells = cells.with_columns(pl.Series(VALUE, values).cast(inner.schema[VALUE]))
    return TableSet(dimensions, hierarchies, tuple(tables), inner, cells, membership)


def _with_contributions(table_set: TableSet, frame: pl.DataFrame, dimensions, contributor: str) -> TableSet:
    """Each cell's total per contributor, for dominance and p% rules."""
    per_inner = frame.group_by(*dimensions, contributor).agg(pl.col(VALUE).sum()).join(
        table_set.inner.select(INNER_ID, *dimensions), on=list(dimensions))
    m = table_set.membership.tocoo()
    links = pl.DataFrame({INNER_ID: m.row.astype(np.int64), CELL_ID: m.col.astype(np.int64)})
    contributions = (
        per_inner.join(links, on=INNER_ID)
        .group_by(CELL_ID, pl.col(contributor).alias(CONTRIBUTOR)).agg(pl.col(VALUE).sum())
    )
    return replace(table_set, contributions=contributions)


@dataclass(frozen=True)
class Amounts:
    """An amount published in the cells of a count table (funded hours in the cells of funded places), with who
    contributes it (the providers): a magnitude table on the same cells, numbered as the count table's, and the
    cells the amount is published for (in a release, those of the populations that carry it)."""

    name: str
    table: TableSet
    cells: frozenset[int]
    tied_to: str | None = None  # an amount this one lies between known multiples of, inner cell by inner cell
    multiples: tuple[np.ndarray, np.ndarray] | None = None  # (low, high) per inner cell: funding between the
    # lowest and highest public hourly rate of the entitlements in the cell, times its hours


def joint_table(first: Amounts, tied: Sequence[Amounts]) -> TableSet:
    """One model of an amount and the amounts tied to it, each with inner cells of its own (block by block: the
    first's, then each tied one's, numbered on) and its cells over them (cell c of block i is c + i n), and facts
    that hold each tied inner cell between its multiples of the first amount's inner cell at the same place. An
    intruder who knows the rates knows exactly that: a table that breaks none of it is one they cannot rule out."""
    base, n_in, n = first.table, first.table.inner.height, first.table.cells.height
    blocks, width = [first, *tied], (len(tied) + 1) * first.table.inner.height
    inner = pl.concat([a.table.inner.select(INNER_ID, *base.dimensions, pl.col(VALUE).cast(pl.Float64))
                       .with_columns(pl.col(INNER_ID) + i * n_in) for i, a in enumerate(blocks)])
    cells = pl.concat([a.table.cells.with_columns(pl.col(CELL_ID) + i * n, pl.col(VALUE).cast(pl.Float64))
                       for i, a in enumerate(blocks)])
    facts = [a.table.facts.widened(width, i * n_in) for i, a in enumerate(blocks) if a.table.facts is not None]
    for i, amount in enumerate(tied, start=1):
        for multiple, lower, upper in ((amount.multiples[0], 0.0, np.inf), (amount.multiples[1], -np.inf, 0.0)):
            rows = sparse.hstack([-sparse.diags(multiple), sparse.csr_matrix((n_in, (i - 1) * n_in)), sparse.identity(n_in),
                                  sparse.csr_matrix((n_in, width - (i + 1) * n_in))], format="csr")
            facts.append(Facts(rows, np.full(n_in, lower), np.full(n_in, upper)))
    nested = [a.table.nested.with_columns(pl.col("small") + i * n, pl.col("large") + i * n)
              for i, a in enumerate(blocks) if a.table.nested is not None and a.table.nested.height]
    return TableSet(base.dimensions, base.hierarchies, base.tables, inner, cells,
                    sparse.block_diag([base.membership] * len(blocks), format="csc"), None,
                    pl.concat(nested) if nested else None, Facts.stacked(*facts))


def amounts_of(table: TableSet, name: str, contributions: pl.DataFrame, cells: frozenset[int] | None = None,
               tied_to: str | None = None, multiples: tuple[np.ndarray, np.ndarray] | None = None) -> Amounts:
    """The amount summed over the count table's cells. contributions: one row per contributor and combination of
    the table's leaf codes (its dimensions, CONTRIBUTOR and VALUE, a non-negative amount); a combination the
    table does not count is refused. The count table's nestings between cells the amount is published for are
    kept (an amount of units within others is at most theirs, when both carry it), and its other facts only when
    the amount is published for every cell: a nesting whose outer population lacks the amount does not hold."""
    dimensions = list(table.dimensions)
    _check_dimensions(contributions, [*dimensions, CONTRIBUTOR, VALUE])
    amounts = contributions[VALUE].cast(pl.Float64, strict=False)
    if amounts.null_count() or (amounts < 0).any():
        raise TableError(f"amounts of {name}: every contribution must be a non-negative amount")
    frame = contributions.with_columns(pl.col(d).cast(pl.String) for d in dimensions).with_columns(amounts)
    placed = frame.join(table.inner.select(INNER_ID, *dimensions), on=dimensions, how="left")
    if placed[INNER_ID].null_count():
        raise TableError(f"amounts of {name}: {placed[INNER_ID].null_count()} contributions fall outside the cells "
                         "the table counts")
    inner_values = np.zeros(table.inner.height)
    np.add.at(inner_values, placed[INNER_ID].to_numpy(), placed[VALUE].to_numpy())
    inner = table.inner.with_columns(pl.Series(VALUE, inner_values))
    summed = table.cells.with_columns(pl.Series(VALUE, table.membership.T @ inner_values))
    cells = frozenset(range(table.cells.height)) if cells is None else frozenset(cells)
    nested = None if table.nested is None else table.nested.filter(pl.col("small").is_in(list(cells))
                                                                   & pl.col("large").is_in(list(cells)))
    magnitude = replace(table, inner=inner, cells=summed, nested=nested,
                        facts=table.facts if len(cells) == table.cells.height else None)
    if (tied_to is None) != (multiples is None):
        raise TableError(f"amounts of {name}: an amount tied to another needs its multiples, and only it")
    return Amounts(name, _with_contributions(magnitude, frame, dimensions, CONTRIBUTOR), cells, tied_to, multiples)
