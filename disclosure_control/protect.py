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

import numpy as np

from .audit import RECHECK_ROUNDS, AttackModel, audit
from .policy import Policy
from .primary import primary_cells, protection_required
from .secondary import cell_costs, gauss_suppression, recoverable_pairs
from .singletons import singleton_cells, singleton_pairs
from .release import differencing_model
from .widening import widening_cells
from .table import CELL_ID, INNER_ID, VALUE, TableSet

STATUSES = ("published", "primary", "secondary", "structural_zero", "rounded")
MAX_REPAIR_ROUNDS = 3  # each repair provably widens its cell; more rounds only absorb LP round-off
CLEANUP_WORK = 10_000  # inner cells audited, summed over the trials that publish needless secondaries again
# (about the 2 s budget this replaced, on a 2-core machine); the pattern is safe however many run
REQUIRED_COLUMNS = {CELL_ID: pl.Int64, "upper_required": pl.Float64, "lower_required": pl.Float64}


@dataclass(frozen=True)
class Earlier:
    """The earlier release of the same series: its model (the counts its run kept, restricted) and which of its
    cells it showed and which it hid (read from its published files)."""

    table: TableSet
    published: frozenset[int]
    hidden: frozenset[int]
    label: str = "the earlier release"


@dataclass(frozen=True)
class Prior:
    """What an attacker has before this release (sdcTable's setInfo, for release-wide protection).

    public   cell -> where it is already published, for the same units and at the same value: shown, since
             publishing it costs nothing, and never a primary
    earlier  the earlier release of the series: its hidden cells stay hidden, and the pattern must withstand an
             intruder who holds both releases and knows that at most `movers` units joined or left in between
    """

    public: dict[int, str] = field(default_factory=dict)
    earlier: Earlier | None = None


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


def required_protection(table: TableSet, primary: set[int], policy: Policy) -> pl.DataFrame:
    """The width each protected cell's interval must keep on either side of its value."""
    values = table.cells.filter(pl.col(CELL_ID).is_in(list(primary)))
    upper, lower = protection_required(values[VALUE].to_list(), policy)
    return pl.DataFrame({CELL_ID: values[CELL_ID], "upper_required": upper, "lower_required": lower}, schema=REQUIRED_COLUMNS)


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
    not narrow keeps against it (cell_id, upper_required, lower_required). `model` is what it attacks when that
    is more than the table (the table joined to the earlier release: the table's cells keep their numbers), with
    the cells it knows are hidden whatever this release does and the cells no repair may change."""

    known: frozenset[int]
    required: pl.DataFrame
    model: TableSet | None = None
    hidden: frozenset[int] = frozenset()
    fixed: frozenset[int] = frozenset()

    def audit(self, table: TableSet, suppressed: set[int], only: set[int] | None = None, rounds: int | None = None) -> pl.DataFrame:
        return audit(self.model or table, (suppressed | self.hidden) - self.known, self.required, only=only,
                     **({"rounds": rounds} if rounds is not None else {}))

    def repairs(self, table: TableSet, suppressed: set[int], unsafe: pl.DataFrame, costs: np.ndarray) -> set[int]:
        model = self.model or table
        costs = np.concatenate([costs, np.zeros(model.cells.height - len(costs))])
        return interval_repairs(model, (suppressed | self.hidden) - self.known, unsafe, costs, self.known | self.fixed)


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
    attackers, exposed, bounded, kept, crossed = prior_attackers(table, policy, prior, primary_ids)
    kept -= set(prior.public) | structural_ids
    protected = set(attackers[0].required[CELL_ID].to_list())  # this release's primaries that can be protected
    costs = cell_costs(table, policy)
    notes = []
    singletons = singleton_cells(table, protected) if policy.protect_singletons else set()
    pairs = singleton_pairs(table, protected, singletons)
    public = attackers[0].known
    if method == "optimal":
        from .optimal import optimal_suppression

        suppressed, note = optimal_suppression(table, protected, attackers[0].required, policy, pairs, public, kept)
        if note:
            notes.append(note)
            method = "fast"
    if method == "fast":
        suppressed = gauss_suppression(table, protected, kept, policy, pairs, public)
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
                extra |= attacker.repairs(table, suppressed | extra, narrow, costs)
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
    if method == "fast" and suppressed - primary_ids - protected:
        trials = CLEANUP_WORK // max(1, table.inner.height)
        suppressed, checked = without_needless_secondaries(table, suppressed, primary_ids | protected, attackers, checked,
                                                           pairs, costs, trials)
    if len(suppressed - first_pattern):
        notes.append(f"the interval audit asked for more protection: {len(suppressed - first_pattern)} cells "
                     "were suppressed on top of the first pattern")
    determined = determined_secondaries(table, suppressed - public, primary_ids | protected, checked[0])
    if determined:
        suppressed -= determined
        checked = [audited.filter(~pl.col(CELL_ID).is_in(list(determined))) for audited in checked]
        notes.append(f"{len(determined)} secondary cells were fixed exactly by the published cells, so they are shown")
    notes += prior_notes(prior, suppressed, kept, exposed, bounded, crossed, len(attackers) > 1)
    result = checked[0]
    for audited in checked[1:]:  # a cell is safe when it is safe against every attacker
        result = result.join(audited.select(CELL_ID, pl.col("safe").alias("__also")), on=CELL_ID, how="left").with_columns(
            safe=pl.col("safe") & pl.col("__also").fill_null(True)).drop("__also")
    return Protection(decisions(table, primary, suppressed, structural_ids, result, policy, prior, kept, exposed,
                                bounded, crossed, protected), result, policy, method, notes)


def prior_attackers(table: TableSet, policy: Policy, prior: Prior, primary: set[int]
                    ) -> tuple[list[Attacker], set[int], set[int], set[int], set[int]]:
    """The intruders to withstand: one with this release and the figures public elsewhere, and (given an earlier
    release) one that holds both releases under the mover assumption, which must not narrow this release's
    primaries or the earlier's. Also the cells no pattern can protect: exposed by the public figures alone,
    bounded by the earlier release alone, and counts that crossed the threshold (shown then, a primary now);
    and the cells the earlier release hid, which are kept hidden."""
    public = frozenset(prior.public)
    required = required_protection(table, primary, policy)
    exposed = exposed_by_known(table, required, public)
    attackers = [Attacker(public, required.filter(~pl.col(CELL_ID).is_in(list(exposed))))]
    if prior.earlier is None:
        return attackers, exposed, set(), set(), set()
    earlier = prior.earlier
    dims = list(table.dimensions)
    matched = table.cells.select(CELL_ID, *dims).join(earlier.table.cells.select(pl.col(CELL_ID).alias("then"), *dims), on=dims)
    kept = set(matched.filter(pl.col("then").is_in(list(earlier.hidden)))[CELL_ID].to_list())
    crossed = primary & set(matched.filter(pl.col("then").is_in(list(earlier.published)))[CELL_ID].to_list())
    model = None if table.magnitude else differencing_model(table, earlier.table, policy.movers)
    if model is None:  # more units changed than an intruder assumes: comparing the releases tells it nothing
        return attackers, exposed, set(), kept, crossed
    offset = table.cells.height
    then_primary = {offset + c for c in primary_cells(earlier.table, policy)[CELL_ID].to_list()} & {offset + c for c in earlier.hidden}
    known = public | {offset + c for c in earlier.published}
    later = required_protection(model, (primary - crossed - exposed) | then_primary, policy)
    bounded = exposed_by_known(model, later, known)
    unseen = frozenset(offset + c for c in range(earlier.table.cells.height) if c not in earlier.published)
    attackers.append(Attacker(known, later.filter(~pl.col(CELL_ID).is_in(list(bounded))), model, unseen,
                              frozenset(range(offset, model.cells.height))))
    return attackers, exposed, {c for c in bounded if c < offset}, kept, crossed


def exposed_by_known(table: TableSet, required: pl.DataFrame, known: frozenset[int]) -> set[int]:
    """Cells to protect that what is already out narrows below their protection level even if this release
    showed nothing else: no pattern can protect them, so they are reported rather than tried."""
    if not known or required.is_empty():
        return set()
    cells = set(required[CELL_ID].to_list())
    found = audit(table, set(range(table.cells.height)) - known, required, only=cells)
    return set(found.filter(~pl.col("safe"))[CELL_ID].to_list())


def prior_notes(prior: Prior, suppressed: set[int], kept: set[int], exposed: set[int], bounded: set[int],
                crossed: set[int], differenced: bool) -> list[str]:
    notes = []
    if exposed:
        notes.append(f"{len(exposed)} cells to protect are narrowed below their protection level by what is already "
                     "published, whatever this release hides")
    if prior.public:
        notes.append(f"{len(prior.public)} cells were already published elsewhere, so they are shown")
    if prior.earlier is None:
        return notes
    label = prior.earlier.label
    notes.append(f"{len(kept & suppressed)} cells hidden in {label} are hidden again")
    if crossed:
        notes.append(f"{len(crossed)} primary cells were shown in {label}: differencing the two releases bounds "
                     "them, whatever this release hides")
    if bounded:
        notes.append(f"{len(bounded)} primary cells are narrowed by {label} alone under the mover assumption")
    if not differenced:
        notes.append(f"more units changed since {label} than the policy's movers: comparing the two gives an "
                     "intruder nothing")
    return notes


def decisions(table: TableSet, primary: pl.DataFrame, suppressed: set[int], structural_ids: set[int],
              checked: pl.DataFrame, policy: Policy, prior: Prior, kept: set[int], exposed: set[int], bounded: set[int],
              crossed: set[int], protected: set[int]) -> pl.DataFrame:
    """One decision record per cell: status, the rule behind it, why, what is shown, and whether its interval
    was held to a protection level (`protected`: this release's primaries and the earlier release's, where they
    can be protected)."""
    symbol = policy.symbols
    label = prior.earlier.label if prior.earlier else "the earlier release"
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
            .then(pl.when(pl.col(CELL_ID).is_in(list(kept)))
                  .then(pl.lit(f"hidden in {label} too, so that the two releases cannot be differenced"))
                  .otherwise(pl.lit("suppressed so that no primary cell can be worked out from the published cells")))
            .when(pl.col("status") == "structural_zero").then(pl.lit("this combination cannot occur"))
            .when(pl.col("__public").is_not_null()).then(pl.format("already published in {}", pl.col("__public")))
            .when(pl.col(CELL_ID).is_in(list(crossed)) & (pl.col("status") == "primary"))
            .then(pl.format("{}; shown in {}, which bounds it: differencing the two releases narrows it whatever this "
                            "release hides", pl.col("reason"), pl.lit(label)))
            .when(pl.col(CELL_ID).is_in(list(bounded)) & (pl.col("status") == "primary"))
            .then(pl.format("{}; {} alone narrows it under the mover assumption, whatever this release hides",
                            pl.col("reason"), pl.lit(label)))
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
