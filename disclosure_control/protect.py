"""Protecting a table (or linked tables, or a whole release): primary rules, secondary suppression, audit,
decision records.

Cell statuses, one documented set (shown in EES files as the policy's symbols):
- published        the value is shown;
- primary          suppressed because a primary rule fired (rule says which: frequency, zero, dominance,
                   p_percent, group);
- secondary        suppressed so that no primary cell can be worked out, exactly or too closely;
- structural_zero  a combination that cannot occur (shown as `z`);
- rounded          shown rounded to the policy's base (set by rounding.round_published).

protect() never returns a pattern that fails its own audit: when a cell's interval is narrower than its
protection level it suppresses the cheapest cells that let it move far enough (widening.py) and checks again.

What is already out (Prior) is part of the problem: figures published elsewhere for the same units, and the
earlier release of the same series. Both are known to the attacker whatever this release shows, so they count as
published in every attack; a cell hidden in the earlier release stays hidden (or differencing the two releases
would give it back), and the earlier release's primaries keep the protection they were given.

Every decision is a function of the table, the policy and the prior: work limits (rounds, trials), never the
clock, and ties broken by cell number, so the same inputs give the same pattern on any machine under any load.
"""

from __future__ import annotations

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
CLEANUP_WORK = 10_000  # inner cells audited, summed over the trials that publish needless secondaries again
# (about the 2 s budget this replaced, on a 2-core machine); the pattern is safe however many run
REQUIRED_COLUMNS = {CELL_ID: pl.Int64, "upper_required": pl.Float64, "lower_required": pl.Float64}


@dataclass(frozen=True)
class Prior:
    """What an attacker has before this release (sdcTable's setInfo, for release-wide protection).

    public           cell -> where it is already published, for the same units and at the same value: shown,
                     since publishing it costs nothing, and never a primary
    earlier_published cells the earlier release of the series showed: with few units changed since, they bound
                     this release's cells closely, so they never count as protection, and a primary among them
                     (a count that crossed the threshold) cannot be protected
    earlier_hidden   cells the earlier release hid: hidden again unless publishing them gives nothing away
    owed             cell_id, upper_required, lower_required: protection the earlier release's primaries still
                     need, around this release's values
    """

    public: dict[int, str] = field(default_factory=dict)
    earlier_published: frozenset[int] = frozenset()
    earlier_hidden: frozenset[int] = frozenset()
    owed: pl.DataFrame | None = None
    earlier: str = "the earlier release"

    @property
    def known(self) -> frozenset[int]:
        return frozenset(self.public) | self.earlier_published


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


def owed_protection(table: TableSet, hidden: set[int], policy: Policy) -> pl.DataFrame:
    """Protection that cells hidden in the earlier release may still be owed, around this release's values.

    With at most `movers` units changed since, a cell worth v now was worth v - movers to v + movers then; if any
    of those could have been a primary (a count from 1 to threshold - 1, or a suppressed zero), the earlier
    primary must keep its protection: differencing shifts its interval by the change, so this release's interval
    must reach as far either side of v as the largest such primary needed. (Magnitude tables carry no such
    bound: their primary rules depend on contributors, not on the count.)"""
    if table.magnitude or not hidden:
        return pl.DataFrame(schema=REQUIRED_COLUMNS)
    rows = []
    for cell in sorted(hidden):
        value = int(table.cell_values[cell])
        then = [v for v in range(max(0, value - policy.movers), value + policy.movers + 1)
                if 0 < v < policy.threshold or (v == 0 and policy.zeros == "suppress")]
        if then:
            upper = max(protection_required([v], policy)[0][0] for v in then)
            rows.append((cell, upper, min(float(value), upper)))
    return pl.DataFrame(rows, schema=REQUIRED_COLUMNS, orient="row")


def required_protection(table: TableSet, primary: set[int], policy: Policy, owed: pl.DataFrame | None = None) -> pl.DataFrame:
    """The width each protected cell's interval must keep on either side: the policy's for this release's
    primaries, and at least what the earlier release's primaries are owed."""
    values = table.cells.filter(pl.col(CELL_ID).is_in(list(primary)))
    upper, lower = protection_required(values[VALUE].to_list(), policy)
    required = pl.DataFrame({CELL_ID: values[CELL_ID], "upper_required": upper, "lower_required": lower}, schema=REQUIRED_COLUMNS)
    if owed is None or owed.is_empty():
        return required
    return (pl.concat([required, owed.select(list(REQUIRED_COLUMNS)).cast(REQUIRED_COLUMNS)])
            .group_by(CELL_ID).agg(pl.col("upper_required").max(), pl.col("lower_required").max()).sort(CELL_ID))


def structural_cells(table: TableSet, structural: pl.DataFrame | None) -> set[int]:
    """Cells made only of combinations that cannot occur (given as leaf codes per dimension)."""
    if structural is None or structural.is_empty():
        return set()
    impossible = table.inner.join(structural.select(list(table.dimensions)).unique(), on=list(table.dimensions))[INNER_ID]
    m = table.membership.tocsc()
    flags = set(impossible.to_list())
    return {c for c in range(m.shape[1]) if table.cell_values[c] == 0
            and set(m.indices[m.indptr[c]:m.indptr[c + 1]].tolist()) <= flags and m.indptr[c + 1] > m.indptr[c]}


def interval_repairs(table: TableSet, suppressed: set[int], unsafe: pl.DataFrame, costs,
                     known: frozenset[int] = frozenset()) -> set[int]:
    """Cells to suppress as well so that every cell the audit found too narrow can move far enough (never a
    known cell: the attacker has it anyway).

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
            cells = widening_cells(table, suppressed | added, row[CELL_ID], upward, distance, costs, known)
            if cells is None:
                raise ProtectionError(f"cell {row[CELL_ID]} cannot be protected: no pattern lets it move {distance:g}")
            added |= cells
    return added


@dataclass(frozen=True)
class Attacker:
    """One intruder the pattern must withstand: the cells it has from elsewhere, and the width each cell it must
    not narrow keeps against it (cell_id, upper_required, lower_required)."""

    known: frozenset[int]
    required: pl.DataFrame

    def audit(self, table: TableSet, suppressed: set[int], only: set[int] | None = None, rounds: int | None = None) -> pl.DataFrame:
        return audit(table, suppressed - self.known, self.required, only=only,
                     **({"rounds": rounds} if rounds is not None else {}))


def without_needless_secondaries(table: TableSet, suppressed: set[int], protected: set[int], attackers: list[Attacker],
                                 checked: list[pl.DataFrame], pairs: list[tuple[int, int]], costs,
                                 trials: int) -> tuple[set[int], list[pl.DataFrame]]:
    """Publish again, most expensive first, any secondary cell the pattern stays safe without (against every
    attacker), trying at most `trials` cells; returns the pattern and its audits. A passing audit also rules out
    exact recovery: every protected cell keeps room both ways."""
    for cell in sorted(suppressed - protected, key=lambda c: (-costs[c], c))[:trials]:
        trial = suppressed - {cell}
        if pairs and recoverable_pairs(table, trial - attackers[0].known, pairs):
            continue
        trial_audits = []
        for attacker in attackers:
            trial_audits.append(attacker.audit(table, trial))
            if not trial_audits[-1]["safe"].all():
                break
        else:
            suppressed, checked = trial, trial_audits
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
            structural: pl.DataFrame | None = None, prior: Prior | None = None) -> Protection:
    method = method or policy.method
    prior = prior or Prior()
    structural_ids = structural_cells(table, structural)
    primary = primary_cells(table, policy).filter(~pl.col(CELL_ID).is_in(list(structural_ids | set(prior.public))))
    primary_ids = set(primary[CELL_ID].to_list())
    attackers, exposed, bounded = prior_attackers(table, policy, prior, primary_ids)
    protected = set(attackers[0].required[CELL_ID].to_list())  # this release's primaries
    owed = set().union(*(set(a.required[CELL_ID].to_list()) for a in attackers))  # and the earlier's
    kept = set(prior.earlier_hidden) - set(prior.public) - structural_ids
    costs = cell_costs(table, policy)
    notes = []
    singletons = singleton_cells(table, protected) if policy.protect_singletons else set()
    pairs = singleton_pairs(table, protected, singletons)
    public = attackers[0].known
    if method == "optimal":
        from .optimal import optimal_suppression

        suppressed, note = optimal_suppression(table, owed, attackers[0].required, policy, pairs, public, kept)
        if note:
            notes.append(note)
            method = "fast"
    if method == "fast":
        suppressed = gauss_suppression(table, owed, kept, policy, pairs, public)
    suppressed |= primary_ids | kept
    first_pattern = frozenset(suppressed)
    checked = [attacker.audit(table, suppressed) for attacker in attackers]
    for _ in range(MAX_REPAIR_ROUNDS):
        unsafe = [audited.filter(~pl.col("safe")) for audited in checked]
        if all(u.is_empty() for u in unsafe):
            break
        extra: set[int] = set()
        for attacker, narrow in zip(attackers, unsafe, strict=True):
            if not narrow.is_empty():
                extra |= interval_repairs(table, (suppressed | extra) - attacker.known, narrow, costs, attacker.known)
        suppressed |= extra  # suppressing more never makes a primary recoverable again, nor narrows an
        # interval (equations are only removed): each interval found stays attainable, so only the narrow
        # cells need checking again, and the other cells' intervals are no longer known to be exact
        again = set().union(*(set(u[CELL_ID].to_list()) for u in unsafe)) | extra
        for i, attacker in enumerate(attackers):
            rechecked = attacker.audit(table, suppressed, only=again, rounds=RECHECK_ROUNDS)
            kept_audit = checked[i].filter(~pl.col(CELL_ID).is_in(rechecked[CELL_ID].implode())).with_columns(exact=pl.lit(False))
            checked[i] = pl.concat([kept_audit, rechecked]).sort(CELL_ID)
    else:
        raise ProtectionError(f"no safe pattern after {MAX_REPAIR_ROUNDS} rounds")
    if method == "fast" and suppressed - primary_ids - owed:
        trials = CLEANUP_WORK // max(1, table.inner.height)
        suppressed, checked = without_needless_secondaries(table, suppressed, primary_ids | owed, attackers, checked,
                                                           pairs, costs, trials)
    if len(suppressed - first_pattern):
        notes.append(f"the interval audit asked for more protection: {len(suppressed - first_pattern)} cells "
                     "were suppressed on top of the first pattern")
    determined = determined_secondaries(table, suppressed - public, primary_ids | owed, checked[0])
    if determined:
        suppressed -= determined
        checked = [audited.filter(~pl.col(CELL_ID).is_in(list(determined))) for audited in checked]
        notes.append(f"{len(determined)} secondary cells were fixed exactly by the published cells, so they are shown")
    notes += prior_notes(prior, primary_ids, suppressed, exposed, bounded)
    result = checked[0]
    for audited in checked[1:]:  # a cell is safe when it is safe against every attacker
        result = result.join(audited.select(CELL_ID, pl.col("safe").alias("__also")), on=CELL_ID, how="left").with_columns(
            safe=pl.col("safe") & pl.col("__also").fill_null(True)).drop("__also")
    return Protection(decisions(table, primary, suppressed, structural_ids, result, policy, prior, exposed | bounded,
                                protected), result, policy, method, notes)


def prior_attackers(table: TableSet, policy: Policy, prior: Prior, primary: set[int]) -> tuple[list[Attacker], set[int], set[int]]:
    """The intruders to withstand: one with this release and the figures public elsewhere, and (given an earlier
    release) one that also has the earlier release's cells, which it knows to within the mover bound, and must
    not narrow the earlier release's primaries either. Also the cells no pattern can protect from each: exposed
    by the public figures alone, and bounded by the earlier release alone (a count that crossed the threshold)."""
    public = frozenset(prior.public)
    required = required_protection(table, primary, policy)
    exposed = exposed_by_known(table, required, public)
    attackers = [Attacker(public, required.filter(~pl.col(CELL_ID).is_in(list(exposed))))]
    bounded: set[int] = set()
    if prior.earlier_published or prior.earlier_hidden:
        later = required_protection(table, primary - prior.known - exposed, policy, prior.owed)
        bounded = exposed_by_known(table, later, prior.known) | (primary & prior.earlier_published)
        attackers.append(Attacker(prior.known, later.filter(~pl.col(CELL_ID).is_in(list(bounded)))))
    return attackers, exposed, bounded


def exposed_by_known(table: TableSet, required: pl.DataFrame, known: frozenset[int]) -> set[int]:
    """Cells to protect that what is already out narrows below their protection level even if this release
    showed nothing else: no pattern can protect them, so they are reported rather than tried."""
    if not known or required.is_empty():
        return set()
    cells = set(required[CELL_ID].to_list())
    found = audit(table, set(range(table.cells.height)) - known, required, only=cells)
    return set(found.filter(~pl.col("safe"))[CELL_ID].to_list())


def prior_notes(prior: Prior, primary: set[int], suppressed: set[int], exposed: set[int], bounded: set[int]) -> list[str]:
    notes = []
    if exposed:
        notes.append(f"{len(exposed)} cells to protect are narrowed below their protection level by what is already "
                     "published, whatever this release hides")
    if prior.public:
        notes.append(f"{len(prior.public)} cells were already published elsewhere, so they are shown")
    if prior.earlier_hidden:
        notes.append(f"{len(prior.earlier_hidden & suppressed)} of the {len(prior.earlier_hidden)} cells hidden in "
                     f"{prior.earlier} are hidden again")
    if bounded:
        notes.append(f"{len(bounded)} primary cells are bounded by {prior.earlier} (most were published there): "
                     "differencing the two releases narrows them, whatever this release hides")
    return notes


def decisions(table: TableSet, primary: pl.DataFrame, suppressed: set[int], structural_ids: set[int],
              checked: pl.DataFrame, policy: Policy, prior: Prior, exposed: set[int], protected: set[int]) -> pl.DataFrame:
    """One decision record per cell: status, the rule behind it, why, what is shown, and whether its interval
    was held to a protection level (`protected`: this release's primaries and the earlier release's, where they
    can be protected)."""
    symbol = policy.symbols
    public = pl.DataFrame({CELL_ID: list(prior.public), "__public": list(prior.public.values())},
                          schema={CELL_ID: pl.Int64, "__public": pl.String})
    status = (
        pl.when(pl.col(CELL_ID).is_in(list(structural_ids))).then(pl.lit("structural_zero"))
        .when(pl.col("__public").is_not_null()).then(pl.lit("published"))
        .when(pl.col("rule").is_not_null()).then(pl.lit("primary"))
        .when(pl.col(CELL_ID).is_in(list(suppressed))).then(pl.lit("secondary"))
        .otherwise(pl.lit("published"))
    )
    return (
        table.cells.select(CELL_ID, *table.dimensions, VALUE, "is_total", "tables")
        .join(primary, on=CELL_ID, how="left")
        .join(public, on=CELL_ID, how="left")
        .with_columns(status=status)
        .with_columns(
            reason=pl.when(pl.col("status") == "secondary")
            .then(pl.when(pl.col(CELL_ID).is_in(list(prior.earlier_hidden)))
                  .then(pl.lit(f"hidden in {prior.earlier} too, so that the two releases cannot be differenced"))
                  .otherwise(pl.lit("suppressed so that no primary cell can be worked out from the published cells")))
            .when(pl.col("status") == "structural_zero").then(pl.lit("this combination cannot occur"))
            .when(pl.col("__public").is_not_null()).then(pl.format("already published in {}", pl.col("__public")))
            .when(pl.col(CELL_ID).is_in(list(prior.earlier_published)) & (pl.col("status") == "primary"))
            .then(pl.format("{}; published in {}, which bounds it: differencing the two releases narrows it whatever "
                            "this release hides", pl.col("reason"), pl.lit(prior.earlier)))
            .when(pl.col(CELL_ID).is_in(list(exposed)) & (pl.col("status") == "primary"))
            .then(pl.format("{}; what is already out narrows it below its protection level whatever this release "
                            "hides", pl.col("reason")))
            .otherwise(pl.col("reason")),
            display=pl.when(pl.col("status").is_in(["primary", "secondary"])).then(pl.lit(symbol["suppressed"]))
            .when(pl.col("status") == "structural_zero").then(pl.lit(symbol["not_applicable"]))
            .otherwise(pl.col(VALUE).cast(pl.Int64).cast(pl.String)),
        )
        .join(checked.select(CELL_ID, "lower", "upper", "exact", "safe"), on=CELL_ID, how="left")
        .with_columns(protected=pl.col(CELL_ID).is_in(list(protected)))
        .drop("__public")
        .sort(CELL_ID)
    )
