"""Row-level validation: a pure transform from a raw export to staged rows, quarantined rows and warnings.

Nothing is lost: every input row is either staged (typed, no error) or quarantined (with every error rule it
fails and the raw values as read), and the caller checks that the two add up to what was read.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from schemas.contract import Contract
from schemas.rules import CompiledRule, Period, compile_rules, normalised, typed, typed_name

SOURCE_ROW = "source_row"
STAGED_TYPES = {"date": pl.Date, "int": pl.Int64, "decimal": pl.Float64, "flag": pl.Boolean}


@dataclass(frozen=True)
class Validated:
    staged: pl.DataFrame
    quarantine: pl.DataFrame  # source_row, rule_ids, messages, then the raw columns as read
    warnings: pl.DataFrame  # source_row, rule_id: one row per warning on a staged or quarantined row
    rule_counts: pl.DataFrame  # rule_id, severity, rows

    @property
    def rows_read(self) -> int:
        return self.staged.height + self.quarantine.height


def _rule_list(rules: list[CompiledRule]) -> pl.Expr:
    if not rules:
        return pl.lit([], dtype=pl.List(pl.String))
    return pl.concat_list([pl.when(r.fails).then(pl.lit(r.id)) for r in rules]).list.drop_nulls()


def checked(raw: pl.DataFrame, contract: Contract, period: Period) -> pl.DataFrame:
    """The export normalised and parsed, with each row's failing error and warning rules as lists."""
    rules = compile_rules(contract, period)
    parsed = [e for e in (typed(c) for c in contract.columns) if e is not None]
    return (
        raw.lazy()
        .with_columns(normalised(c) for c in contract.columns)
        .with_columns(parsed)
        .with_columns(
            errors=_rule_list([r for r in rules if r.severity == "error"]),
            warnings=_rule_list([r for r in rules if r.severity == "warning"]),
        )
        .collect()
    )


def staged_columns(contract: Contract) -> list[pl.Expr]:
    """Contract columns in their staged types: parsed dates and numbers, booleans for flags, text otherwise."""
    exprs = [pl.col(SOURCE_ROW)]
    for c in contract.columns:
        if c.type == "flag":
            exprs.append((pl.col(c.name) == "Y").alias(c.name))
        elif c.type in STAGED_TYPES:
            exprs.append(pl.col(typed_name(c.name)).alias(c.name))
        else:
            exprs.append(pl.col(c.name))
    return exprs


def validate_frame(raw: pl.DataFrame, contract: Contract, period: Period) -> Validated:
    """raw: source_row plus every contract column, as text exactly as read."""
    rules = compile_rules(contract, period)
    messages = {r.id: r.message for r in rules}
    result = checked(raw, contract, period)
    failed = result["errors"].list.len() > 0
    quarantine = (
        result.filter(failed)
        .select(
            SOURCE_ROW,
            rule_ids=pl.col("errors").list.join(";"),
            messages=pl.col("errors").list.eval(pl.element().replace_strict(messages)).list.join(" | "),
        )
        .join(raw, on=SOURCE_ROW, how="left", maintain_order="left")
    )
    warnings = result.select(SOURCE_ROW, rule_id=pl.col("warnings")).explode("rule_id").drop_nulls("rule_id")
    hits = pl.concat([result.select(pl.col("errors").alias("rule_id")), result.select(pl.col("warnings").alias("rule_id"))])
    counts = (
        hits.explode("rule_id").drop_nulls().group_by("rule_id").len("rows")
        .join(pl.DataFrame({"rule_id": [r.id for r in rules], "severity": [r.severity for r in rules]}), on="rule_id", how="left")
        .sort(["rows", "rule_id"], descending=[True, False])
    )
    return Validated(
        staged=result.filter(~failed).select(staged_columns(contract)),
        quarantine=quarantine,
        warnings=warnings,
        rule_counts=counts.select("rule_id", "severity", "rows"),
    )
