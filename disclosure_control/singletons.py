"""Singletons: a count of one is known to the person it counts, a magnitude cell to its only contributor.

Such a person can subtract themselves: where a singleton s and another primary p are parts of one relation (a
total and the cells adding up to it along one dimension), the published cells may fix s + p although they fix
neither, and then s's member reads p. So each such sum is protected as if it were one more primary cell
against exact recovery (GaussSuppression's "sub2Sum" singleton method); the interval audit covers the cells.
"""

from __future__ import annotations

import polars as pl

from .table import CELL_ID, CONTRIBUTOR, VALUE, TableSet


def singleton_cells(table: TableSet, primary: set[int]) -> set[int]:
    """Primary cells whose value one person or contributor knows on their own."""
    if table.magnitude:
        single = table.contributions.filter(pl.col(VALUE) != 0).group_by(CELL_ID).agg(pl.col(CONTRIBUTOR).n_unique())
        ids = single.filter(pl.col(CONTRIBUTOR) == 1)[CELL_ID]
    else:
        ids = table.cells.filter(pl.col(VALUE) == 1)[CELL_ID]
    return set(ids.to_list()) & primary


def singleton_pairs(table: TableSet, primary: set[int], singletons: set[int]) -> list[tuple[int, int]]:
    """(singleton, other primary) pairs that are parts of one relation: the sums to keep unrecoverable."""
    parts = table.relations.filter(pl.col("part").is_in(list(primary)))
    pairs = parts.filter(pl.col("part").is_in(list(singletons))).join(parts, on="relation", suffix="_other")
    both = pl.col("part_other").is_in(list(singletons))  # two singletons: one pair, either way round
    pairs = pairs.filter((pl.col("part") < pl.col("part_other")) | ((pl.col("part") != pl.col("part_other")) & ~both))
    pairs = pairs.select("part", "part_other").unique()
    return sorted(pairs.iter_rows())
