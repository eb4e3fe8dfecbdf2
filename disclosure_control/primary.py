"""Primary rules: which cells are disclosive in themselves, and why.

Each rule returns (cell_id, rule, reason, protection) for the cells it flags; protection is the width the
attacker's interval must keep on each side of the true value (percent of the value, at least one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from .hierarchy import ROOT
from .policy import Policy
from .table import CELL_ID, CONTRIBUTOR, VALUE, Amounts, TableSet

PRIMARY_COLUMNS = {CELL_ID: pl.Int64, "rule": pl.String, "reason": pl.String}


def _flagged(cells: pl.DataFrame, condition: pl.Expr, rule: str, reason: pl.Expr) -> pl.DataFrame:
    return cells.filter(condition).select(CELL_ID, pl.lit(rule).alias("rule"), reason.alias("reason"))


def frequency(table: TableSet, policy: Policy) -> pl.DataFrame:
    """Counts from 1 to threshold - 1: too few people to publish."""
    return _flagged(table.cells, (pl.col(VALUE) > 0) & (pl.col(VALUE) < policy.threshold), "frequency",
                    pl.format("count {} is below the threshold of {}", pl.col(VALUE), pl.lit(policy.threshold)))


def zeros(table: TableSet, policy: Policy) -> pl.DataFrame:
    """Sampling zeros, when the policy treats a zero as disclosive (it says no one has the attribute)."""
    if policy.zeros != "suppress":
        return pl.DataFrame(schema=PRIMARY_COLUMNS)
    return _flagged(table.cells, pl.col(VALUE) == 0, "zero", pl.lit("zero count, suppressed by policy"))


def _ranked_contributions(table: TableSet) -> pl.DataFrame:
    return (
        table.contributions.sort([CELL_ID, VALUE, CONTRIBUTOR], descending=[False, True, False])
        .group_by(CELL_ID, maintain_order=True)
        .agg(pl.col(VALUE).alias("ranked"), pl.col(VALUE).sum().alias("total"))
    )


def dominance(table: TableSet, policy: Policy) -> pl.DataFrame:
    """(n, k): the n largest contributors hold more than k% of the cell, so they can estimate each other."""
    if policy.dominance is None or not table.magnitude:
        return pl.DataFrame(schema=PRIMARY_COLUMNS)
    n, k = policy.dominance.n, policy.dominance.k
    ranked = _ranked_contributions(table).with_columns(top=pl.col("ranked").list.head(n).list.sum())
    return _flagged(ranked, (pl.col("total") > 0) & (pl.col("top") > k / 100 * pl.col("total")), "dominance",
                    pl.format("the {} largest contributors hold more than {}% of the cell", pl.lit(n), pl.lit(k)))


def p_percent(table: TableSet, policy: Policy) -> pl.DataFrame:
    """p%: the second largest contributor could estimate the largest to within p% of its value."""
    if policy.p_percent is None or not table.magnitude:
        return pl.DataFrame(schema=PRIMARY_COLUMNS)
    ranked = _ranked_contributions(table).with_columns(
        first=pl.col("ranked").list.get(0, null_on_oob=True).fill_null(0),
        second=pl.col("ranked").list.get(1, null_on_oob=True).fill_null(0),
    )
    remainder = pl.col("total") - pl.col("first") - pl.col("second")
    return _flagged(ranked, (pl.col("first") > 0) & (remainder < policy.p_percent / 100 * pl.col("first")), "p_percent",
                    pl.format("others than the two largest contributors hold less than {}% of the largest", pl.lit(policy.p_percent)))


def group(table: TableSet, policy: Policy) -> pl.DataFrame:
    """Group disclosure: everyone in a group (a school, a district) falls in one category of a sensitive
    attribute, so the cell tells each of them something about themselves and the others."""
    frames = []
    for dim in (d for d in policy.group_disclosure if d in table.dimensions):
        parents = table.hierarchies[dim].parents
        cells = table.cells.filter(pl.col(dim) != ROOT).with_columns(pl.col(dim).replace_strict(parents).alias("__parent"))
        parent_cells = table.cells.select(*[pl.col(d) for d in table.dimensions if d != dim],
                                          pl.col(dim).alias("__parent"), pl.col(VALUE).alias("__parent_value"))
        joined = cells.join(parent_cells, on=[*[d for d in table.dimensions if d != dim], "__parent"])
        frames.append(_flagged(joined, (pl.col(VALUE) > 0) & (pl.col(VALUE) == pl.col("__parent_value")), "group",
                               pl.format("all {} in the group share one {} category", pl.col(VALUE), pl.lit(dim))))
    return pl.concat(frames) if frames else pl.DataFrame(schema=PRIMARY_COLUMNS)


RULES = (frequency, zeros, dominance, p_percent, group)
MAGNITUDE_RULES = (dominance, p_percent)


def amount_primary_cells(policy: Policy, amounts: Sequence[Amounts]) -> pl.DataFrame:
    """The magnitude rules' cells of each amount published in a count table's cells (funded hours beside the
    places), their reasons naming it."""
    return merged([rule(a.table, policy).cast(PRIMARY_COLUMNS).filter(pl.col(CELL_ID).is_in(list(a.cells)))
                   .with_columns(pl.format("{}: {}", pl.lit(a.name), pl.col("reason")).alias("reason"))
                   for a in amounts for rule in MAGNITUDE_RULES])


def primary_cells(table: TableSet, policy: Policy, amounts: Sequence[Amounts] = ()) -> pl.DataFrame:
    """Every primary cell once, with every rule that fired on it, the amounts' included."""
    return merged([*(rule(table, policy).cast(PRIMARY_COLUMNS) for rule in RULES), amount_primary_cells(policy, amounts)])


def merged(found: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Each cell once, with every rule that fired on it."""
    found = pl.concat([pl.DataFrame(schema=PRIMARY_COLUMNS), *found])
    return found.group_by(CELL_ID, maintain_order=True).agg(
        pl.col("rule").unique(maintain_order=True).str.join("+"), pl.col("reason").str.join("; ")).sort(CELL_ID)


def protection_required(values, policy: Policy):
    """Interval width the attacker must face above and below each primary cell's value."""
    upper = [max(1.0, math.ceil(policy.protection_level / 100 * v)) for v in values]
    lower = [min(v, u) for v, u in zip(values, upper, strict=True)]
    return upper, lower
