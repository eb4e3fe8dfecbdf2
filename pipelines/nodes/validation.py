"""Row-level validation: a pure transform from a raw export to staged rows, quarantined rows and warnings.

Nothing is lost: every input row is either staged (typed, no error) or quarantined (with every error rule it
fails and the raw values as read), and the caller checks that the two add up to what was read.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from schemas.contract import Contract
from schemas.rules import SOURCE_FIELDS, CompiledRule, Period, compile_rules, normalised, typed, typed_name

SOURCE_ROW = "source_row"
CHUNK_ROWS = 1_000_000
STAGED_TYPES = {"date": pl.Date, "int": pl.Int64, "decimal": pl.Float64, "flag": pl.Boolean}


@dataclass(frozen=True)
class Validated:
    staged: pl.DataFrame
    quarantine: pl.DataFrame  # source_row, rule_ids, messages, then the raw columns as read
    warnings: pl.DataFrame  # source_row, rule_id: one row per warning on a staged or quarantined row
    rule_counts: pl.DataFrame  # rule_id, severity, rows


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


def whole_file_flags(raw: pl.DataFrame, contract: Contract, rules: list[CompiledRule]) -> pl.DataFrame:
    """Flags of the rules that compare rows (duplicate keys), computed once over just their columns."""
    needed = {c for r in rules for c in r.whole_file}
    return raw.select(normalised(c) for c in contract.columns if c.name in needed).select(r.fails.alias(r.id) for r in rules)


def validate_frame(raw: pl.DataFrame, contract: Contract, period: Period, chunk_rows: int = CHUNK_ROWS) -> Validated:
    """raw: source_row plus every contract column, as text exactly as read (and source_fields from a CSV).

    Row rules run chunk by chunk, so memory stays bounded by the chunk, not the file (a national census is
    nine million rows); only the key rules see the whole file, and only its key columns.
    """
    if SOURCE_FIELDS not in raw.columns:  # a frame that did not come from a CSV file
        raw = raw.with_columns(pl.lit(None, dtype=pl.Int64).alias(SOURCE_FIELDS))
    rules = compile_rules(contract, period)
    by_file = [r for r in rules if r.whole_file]
    by_row = [r for r in rules if not r.whole_file]
    file_flags = whole_file_flags(raw, contract, by_file) if by_file else None
    parts = []
    for offset in range(0, max(raw.height, 1), chunk_rows):
        chunk = raw.slice(offset, chunk_rows)
        result = flagged(chunk, contract, by_row, period)
        if file_flags is not None:
            result = result.hstack(file_flags.slice(offset, chunk_rows))
        parts.append(_split(chunk, result, contract, rules))
    return Validated(
        staged=pl.concat([p.staged for p in parts]),
        quarantine=pl.concat([p.quarantine for p in parts]),
        warnings=pl.concat([p.warnings for p in parts]),
        rule_counts=pl.concat([p.rule_counts for p in parts]).group_by("rule_id", "severity", maintain_order=True)
        .agg(pl.col("rows").sum()).filter(pl.col("rows") > 0).sort(["rows", "rule_id"], descending=[True, False]),
    )


def _split(raw: pl.DataFrame, result: pl.DataFrame, contract: Contract, rules: list[CompiledRule]) -> Validated:
    """One chunk's rows divided into staged and quarantined, with its warnings and rule counts."""
    errors = [r for r in rules if r.severity == "error"]
    warnings = [r for r in rules if r.severity == "warning"]
    failed = pl.any_horizontal([pl.col(r.id) for r in errors]) if errors else pl.lit(False)
    ids = {r.id: r.id for r in rules}
    messages = {r.id: r.message for r in rules}
    quarantine = (
        result.filter(failed)
        .select(SOURCE_ROW, rule_ids=_joined(errors, ids, ";"), messages=_joined(errors, messages, " | "))
        .join(raw.drop(SOURCE_FIELDS), on=SOURCE_ROW, how="left", maintain_order="left")
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
    return Validated(result.filter(~failed).select(staged_columns(contract)), quarantine, warned, counts)
