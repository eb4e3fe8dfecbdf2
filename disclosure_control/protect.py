"""Protecting a table (or linked tables): primary rules, secondary suppression, audit, decision records.

Cell statuses, one documented set (shown in EES files as the policy's symbols):
- published        the value is shown;
- primary          suppressed because a primary rule fired (rule says which: frequency, zero, dominance,
                   p_percent, group);
- secondary        suppressed so that no primary cell can be worked out, exactly or too closely;
- structural_zero  a combination that cannot occur (shown as `z`);
- rounded          shown rounded to the policy's base (set by rounding.round_published).

protect() never returns a pattern that fails its own audit: when a cell's interval is narrower than its
protection level it suppresses the cheapest cells that let it move far enough (widening.py) and checks again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import polars as pl

from .audit import RECHECK_ROUNDS, AttackModel, audit
from .policy import Policy
from .primary import primary_cells, protection_required
from .secondary import cell_costs, gauss_suppression, recoverable_pairs
from .singletons import singleton_cells, singleton_pairs
from .widening import widening_cells
from .table import CELL_ID, INNER_ID, VALUE, TableSet

STATUSES = ("published", "primary", "secondary", "structural_zero", "rounded")
MAX_REPAIR_ROUNDS = 3  # each repair provably widens its cell; more rounds only absorb LP round-off
CLEANUP_SECONDS = 2.0  # time allowed for publishing needless secondaries again; the pattern is safe either way


class ProtectionError(RuntimeError):
    """No safe pattern was found; nothing is returned rather than an unsafe one."""


@dataclass
class Protection:
    cells: pl.DataFrame  # cell_id, dimensions, value, status, rule, reason, display, lower, upper, safe
    audit: pl.DataFrame
    policy: Policy
    method: str
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        counts = dict(self.cells.group_by("status").len().iter_rows())
        secondary = self.cells.filter(pl.col("status") == "secondary")
        primaries = self.audit.filter(pl.col("primary"))
        narrowest = primaries.select((pl.col("upper") - pl.col("lower")).min()).item() if primaries.height else None
        return {
            "cells": self.cells.height,
            "by_status": {s: counts.get(s, 0) for s in STATUSES},
            "information_loss": {"secondary_cells": secondary.height, "secondary_value": float(secondary[VALUE].sum())},
            "audit": {"suppressed_cells": self.audit.height,
                      "unsafe_cells": int((~self.audit["safe"]).sum()) if self.audit.height else 0,
                      "narrowest_primary_interval": narrowest,
                      "passed": bool(self.audit["safe"].all()) if self.audit.height else True},
            "method": self.method,
            "policy_version": self.policy.version,
            "notes": self.notes,
        }


def required_protection(table: TableSet, primary: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    values = table.cells.filter(pl.col(CELL_ID).is_in(primary[CELL_ID].implode()))
    upper, lower = protection_required(values[VALUE].to_list(), policy)
    return pl.DataFrame({CELL_ID: values[CELL_ID], "upper_required": upper, "lower_required": lower},
                        schema={CELL_ID: pl.Int64, "upper_required": pl.Float64, "lower_required": pl.Float64})


def structural_cells(table: TableSet, structural: pl.DataFrame | None) -> set[int]:
    """Cells made only of combinations that cannot occur (given as leaf codes per dimension)."""
    if structural is None or structural.is_empty():
        return set()
    impossible = table.inner.join(structural.select(list(table.dimensions)).unique(), on=list(table.dimensions))[INNER_ID]
    m = table.membership.tocsc()
    flags = set(impossible.to_list())
    return {c for c in range(m.shape[1]) if table.cell_values[c] == 0
            and set(m.indices[m.indptr[c]:m.indptr[c + 1]].tolist()) <= flags and m.indptr[c + 1] > m.indptr[c]}


def interval_repairs(table: TableSet, suppressed: set[int], unsafe: pl.DataFrame, costs) -> set[int]:
    """Cells to suppress as well so that every cell the audit found too narrow can move far enough.

    Cells needing the most room go first, so the cells they release can serve the smaller ones after them.
    """
    added: set[int] = set()
    tolerance = 1e-6
    for row in unsafe.sort(["upper_required", CELL_ID], descending=[True, False]).iter_rows(named=True):
        for upward, short, distance in (
            (True, row["upper"] < row[VALUE] + row["upper_required"] - tolerance, row["upper_required"]),
            (False, row["lower"] > row[VALUE] - row["lower_required"] + tolerance, row["lower_required"]),
        ):
            if not short:
                continue
            cells = widening_cells(table, suppressed | added, row[CELL_ID], upward, distance, costs)
            if cells is None:
                raise ProtectionError(f"cell {row[CELL_ID]} cannot be protected: no pattern lets it move {distance:g}")
            added |= cells
    return added


def without_needless_secondaries(table: TableSet, suppressed: set[int], primary: set[int], required: pl.DataFrame,
                                 checked: pl.DataFrame, pairs: list[tuple[int, int]], costs,
                                 budget_seconds: float, trial_seconds: float) -> tuple[set[int], pl.DataFrame]:
    """Publish again, most expensive first, any secondary cell the pattern stays safe without; returns the
    pattern and its audit. A passing audit also rules out exact recovery: every primary keeps room both ways.
    A trial starts only if it should end within the budget (trial_seconds estimates it, then the longest trial)."""
    deadline = time.monotonic() + budget_seconds
    for cell in sorted(suppressed - primary, key=lambda c: (-costs[c], c)):
        started = time.monotonic()
        if started + trial_seconds > deadline:
            break
        trial = suppressed - {cell}
        if not (pairs and recoverable_pairs(table, trial, pairs)):
            trial_audit = audit(table, trial, required)
            if trial_audit["safe"].all():
                suppressed, checked = trial, trial_audit
        trial_seconds = max(trial_seconds, time.monotonic() - started)
    return suppressed, checked


def determined_secondaries(table: TableSet, suppressed: set[int], primary: set[int], checked: pl.DataFrame) -> set[int]:
    """Secondary cells that the published cells already fix exactly. Showing them tells an attacker nothing new
    (the equation is implied), whereas a `c` that anyone can work out would only mislead the auditor."""
    narrow = checked.filter(~pl.col(CELL_ID).is_in(list(primary)) & (pl.col("upper") - pl.col("lower") < 1e-6))
    if narrow.is_empty():
        return set()
    model = AttackModel(table, suppressed)
    return {c for c in narrow[CELL_ID].to_list() if model.reach(c, True) - model.reach(c, False) < 1e-6}


def protect(table: TableSet, policy: Policy, method: str | None = None,
            structural: pl.DataFrame | None = None) -> Protection:
    method = method or policy.method
    primary = primary_cells(table, policy)
    structural_ids = structural_cells(table, structural)
    primary = primary.filter(~pl.col(CELL_ID).is_in(list(structural_ids)))
    required = required_protection(table, primary, policy)
    primary_ids = set(primary[CELL_ID].to_list())
    costs = cell_costs(table, policy)
    notes = []
    singletons = singleton_cells(table, primary_ids) if policy.protect_singletons else set()
    pairs = singleton_pairs(table, primary_ids, singletons)
    if method == "optimal":
        from .optimal import optimal_suppression

        suppressed, note = optimal_suppression(table, primary_ids, required, policy, pairs)
        if note:
            notes.append(note)
            method = "fast"
    started = time.monotonic()
    if method == "fast":
        suppressed = gauss_suppression(table, primary_ids, set(), policy, pairs)
    gauss_seconds = time.monotonic() - started
    first_pattern = frozenset(suppressed)
    started = time.monotonic()
    checked = audit(table, suppressed, required)
    # a cleanup trial costs an audit, and with singleton pairs an elimination like Gauss's too
    trial_seconds = time.monotonic() - started + (gauss_seconds if pairs else 0.0)
    for _ in range(MAX_REPAIR_ROUNDS):
        unsafe = checked.filter(~pl.col("safe"))
        if unsafe.is_empty():
            break
        extra = interval_repairs(table, suppressed, unsafe, costs)
        suppressed |= extra  # suppressing more never makes a primary recoverable again, nor narrows an
        # interval (equations are only removed): each interval found stays attainable, so only the narrow
        # cells need checking again, and the other cells' intervals are no longer known to be exact
        rechecked = audit(table, suppressed, required, only=set(unsafe[CELL_ID].to_list()) | extra,
                          rounds=RECHECK_ROUNDS)
        kept = checked.filter(~pl.col(CELL_ID).is_in(rechecked[CELL_ID].implode())).with_columns(exact=pl.lit(False))
        checked = pl.concat([kept, rechecked]).sort(CELL_ID)
    else:
        raise ProtectionError(f"no safe pattern after {MAX_REPAIR_ROUNDS} rounds")
    if method == "fast" and suppressed - primary_ids:
        suppressed, checked = without_needless_secondaries(table, suppressed, primary_ids, required, checked,
                                                           pairs, costs, CLEANUP_SECONDS, trial_seconds)
    if len(suppressed - first_pattern):
        notes.append(f"the interval audit asked for more protection: {len(suppressed - first_pattern)} cells "
                     "were suppressed on top of the first pattern")
    determined = determined_secondaries(table, suppressed, primary_ids, checked)
    if determined:
        suppressed -= determined
        checked = checked.filter(~pl.col(CELL_ID).is_in(list(determined)))
        notes.append(f"{len(determined)} secondary cells were fixed exactly by the published cells, so they are shown")
    return Protection(decisions(table, primary, suppressed, structural_ids, checked, policy), checked, policy, method, notes)


def decisions(table: TableSet, primary: pl.DataFrame, suppressed: set[int], structural_ids: set[int],
              checked: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """One decision record per cell: status, the rule behind it, why, and what is shown."""
    symbol = policy.symbols
    status = (
        pl.when(pl.col(CELL_ID).is_in(list(structural_ids))).then(pl.lit("structural_zero"))
        .when(pl.col("rule").is_not_null()).then(pl.lit("primary"))
        .when(pl.col(CELL_ID).is_in(list(suppressed))).then(pl.lit("secondary"))
        .otherwise(pl.lit("published"))
    )
    return (
        table.cells.select(CELL_ID, *table.dimensions, VALUE, "is_total", "tables")
        .join(primary, on=CELL_ID, how="left")
        .with_columns(status=status)
        .with_columns(
            reason=pl.when(pl.col("status") == "secondary")
            .then(pl.lit("suppressed so that no primary cell can be worked out from the published cells"))
            .when(pl.col("status") == "structural_zero").then(pl.lit("this combination cannot occur"))
            .otherwise(pl.col("reason")),
            display=pl.when(pl.col("status").is_in(["primary", "secondary"])).then(pl.lit(symbol["suppressed"]))
            .when(pl.col("status") == "structural_zero").then(pl.lit(symbol["not_applicable"]))
            .otherwise(pl.col(VALUE).cast(pl.Int64).cast(pl.String)),
        )
        .join(checked.select(CELL_ID, "lower", "upper", "exact", "safe"), on=CELL_ID, how="left")
        .sort(CELL_ID)
    )
