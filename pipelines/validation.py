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


def _joined(rules: list[CompiledRule], text: dict[str, str], separator: str) -> pl.Expr:
    """For each row, the text of every rule whose flag column is set, joined (null when none is)."""
    if not rules:
        return pl.lit(None, dtype=pl.String)
    return pl.concat_str([pl.when(pl.col(r.id)).then(pl.lit(text[r.id])) for r in rules], separator=separator,
                         ignore_nulls=True).replace("", None)


def flagged(raw: pl.DataFrame, contract: Contract, rules: list[CompiledRule], period: Period) -> pl.DataFrame:
    """The export normalised and parsed, with one boolean column per rule (named by its id)."""
    parsed = [e for e in (typed(c) for c in contract.columns) if e is not None]
    return (
        raw.lazy()
        .with_columns(normalised(c) for c in contract.columns)
        .with_columns(parsed)
        .with_columns(r.fails.alias(r.id) for r in rules)
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
    errors = [r for r in rules if r.severity == "error"]
    warnings = [r for r in rules if r.severity == "warning"]
    result = flagged(raw, contract, rules, period)
    failed = pl.any_horizontal([pl.col(r.id) for r in errors]) if errors else pl.lit(False)
    ids = {r.id: r.id for r in rules}
    messages = {r.id: r.message for r in rules}
    quarantine = (
        result.filter(failed)
        .select(SOURCE_ROW, rule_ids=_joined(errors, ids, ";"), messages=_joined(errors, messages, " | "))
        .join(raw, on=SOURCE_ROW, how="left", maintain_order="left")
    )
    warned = (
        result.select(SOURCE_ROW, rule_id=_joined(warnings, ids, ";"))
        .drop_nulls("rule_id")
        .with_columns(pl.col("rule_id").str.split(";"))
        .explode("rule_id")
    )
    totals = result.select(pl.col(r.id).sum() for r in rules).row(0)
    counts = pl.DataFrame({"rule_id": [r.id for r in rules], "severity": [r.severity for r in rules],
                           "rows": pl.Series(totals, dtype=pl.UInt32)})
    return Validated(
        staged=result.filter(~failed).select(staged_columns(contract)),
        quarantine=quarantine,
        warnings=warned,
        rule_counts=counts.filter(pl.col("rows") > 0).sort(["rows", "rule_id"], descending=[True, False]),
    )
