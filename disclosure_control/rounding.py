"""Rounding published counts, and percentages derived from protected counts.

Rounding comes after suppression and only coarsens what is published, so it never weakens the audited
pattern. A percentage is suppressed whenever its numerator or denominator is (otherwise it would give the
suppressed count back), and flagged as unreliable over a small denominator.
"""

from __future__ import annotations

import polars as pl

from .policy import Policy
from .protect import Protection
from .status import SUPPRESSED, Status
from .table import CELL_ID, VALUE



def round_published(result: Protection, base: int | None = None) -> Protection:
    """Published counts rounded to the base (status `rounded`); a non-zero count that rounds to 0 shows `low`."""
    base = base or result.policy.rounding_base
    if not base:
        return result
    rounded = ((pl.col(VALUE) / base).round(0) * base).cast(pl.Int64)
    cells = result.cells.with_columns(
        display=pl.when(pl.col("status") != Status.PUBLISHED).then(pl.col("display"))
        .when((pl.col(VALUE) > 0) & (rounded == 0)).then(pl.lit(result.policy.symbols["low"]))
        .otherwise(rounded.cast(pl.String)),
        status=pl.when(pl.col("status") == Status.PUBLISHED).then(pl.lit(Status.ROUNDED)).otherwise(pl.col("status")),
    )
    return Protection(cells, result.audit, result.policy, result.method, [*result.notes, f"published counts rounded to base {base}"])


def shown_value(policy: Policy) -> pl.Expr:
    """The count as published: rounded where the cell was rounded (null for `low`), so that a percentage never
    tells more than the counts it is made from."""
    return pl.when(pl.col("status") == Status.ROUNDED).then(pl.col("display").cast(pl.Float64, strict=False)).otherwise(pl.col(VALUE))


def percentages(numerator: pl.DataFrame, denominator: pl.DataFrame, on: list[str], policy: Policy) -> pl.DataFrame:
    """Percentage per numerator cell, its denominator found by joining on the given dimensions.

    Both frames are decision records (value, status, display). Returns cell_id, `percent` (text: the figure to
    one decimal place, or a symbol), `suppressed` and `small_denominator` (a reliability flag for the report).
    """
    joined = numerator.select(CELL_ID, *on, shown_value(policy).alias("n"), pl.col("status").alias("n_status")).join(
        denominator.select(*on, shown_value(policy).alias("d"), pl.col("status").alias("d_status")), on=on, how="left")
    suppressed = pl.col("n_status").is_in(SUPPRESSED) | pl.col("d_status").is_in(SUPPRESSED) | pl.col("d_status").is_null()
    return joined.select(
        CELL_ID,
        percent=pl.when(suppressed).then(pl.lit(policy.symbols["suppressed"]))
        .when(pl.col("n").is_null() | pl.col("d").is_null()).then(pl.lit(policy.symbols["low"]))
        .when(pl.col("d") == 0).then(pl.lit(policy.symbols["not_applicable"]))
        .otherwise((100 * pl.col("n") / pl.col("d")).round(1).cast(pl.String)),
        suppressed=suppressed,
        small_denominator=(pl.col("d") < policy.small_denominator) & ~suppressed,
    )
