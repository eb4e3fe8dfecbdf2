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

What is already out (prior.py) is part of the problem: figures published elsewhere for the same units count as
published in every attack, and given the earlier release of the series its hidden cells stay hidden and the
pattern must also withstand an intruder who holds both releases, for this release's primaries and the earlier's.

Every decision is a function of the table, the policy and the prior: work limits (rounds, trials), never the
clock, and ties broken by cell number, so the same inputs give the same pattern on any machine under any load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
from scipy import sparse

from .audit import RECHECK_ROUNDS, AttackModel
from .policy import Policy, PolicyError
from .primary import amount_primary_cells, merged, primary_cells
from .prior import RELAXED, REQUIRED_COLUMNS, Attacker, Differencing, Prior, differencing, plain_attacker
from .secondary import PairSums, cell_costs, gauss_suppression
from .singletons import singleton_cells, singleton_pairs
from .status import STATUSES, SUPPRESSED, SYMBOL_KEY, Status
from .table import CELL_ID, INNER_ID, VALUE, Amounts, TableError, TableSet, joint_table

MAX_REPAIR_ROUNDS = 3  # each repair provably widens its cell; more rounds only absorb LP round-off
AMOUNTS = "amounts of "  # an intruder attacking an amount published in the cells is named this, then the amount
CLEANUP_WORK = 10_000  # inner cells audited, summed over the trials that publish needless secondaries again
# (about the 2 s budget this replaced, on a 2-core machine); the pattern is safe however many run
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
        secondary = self.cells.filter(pl.col("status") == Status.SECONDARY)
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


def structural_cells(table: TableSet, structural: pl.DataFrame | None) -> set[int]:
    """Cells made only of combinations that cannot occur (given as leaf codes per dimension)."""
    if structural is None or structural.is_empty():
        return set()
    impossible = table.inner.join(structural.select(list(table.dimensions)).unique(), on=list(table.dimensions))[INNER_ID]
    m = table.membership.tocsc()
    flags = set(impossible.to_list())
    return {c for c in range(m.shape[1]) if table.cell_values[c] == 0
            and set(m.indices[m.indptr[c]:m.indptr[c + 1]].tolist()) <= flags and m.indptr[c + 1] > m.indptr[c]}


def without_needless_secondaries(table: TableSet, suppressed: set[int], protected: set[int], attackers: list[Attacker],
                                 checked: list[pl.DataFrame], pairs: list[tuple[int, int]], costs,
                                 trials: int) -> tuple[set[int], list[pl.DataFrame]]:
    """Publish again, most expensive first, any secondary cell the pattern stays safe without (against every
    attacker), trying at most `trials` cells; returns the pattern and its audits. A passing audit also rules out
    exact recovery: every protected cell keeps room both ways."""
    sums = PairSums(table, suppressed - attackers[0].known, pairs) if pairs else None
    for cell in sorted(suppressed - protected, key=lambda c: (-costs[c], c))[:trials]:
        trial = suppressed - {cell}
        if sums and sums.recovered_with(cell):  # a known cell is in the span already: it adds nothing
            continue
        trial_audits = []
        for i, attacker in enumerate(attackers):
            trial_audits.append(attacker.audit(table, trial, every_cell=i == 0))
            if not trial_audits[-1]["safe"].all():
                break
        else:
            suppressed, checked = trial, trial_audits
            if sums:
                sums.publish(cell)
    return suppressed, checked


def determined_secondaries(table: TableSet, attackers: Sequence[Attacker], suppressed: set[int], primary: set[int],
                           checked: pl.DataFrame, trials: int) -> tuple[set[int], set[int]]:
    """Secondary cells whose counts the published cells already fix exactly (the first attacker's model), to be
    shown: a `c` that anyone can work out would only mislead the auditor. Where every amount beside them is fixed
    too, showing them tells an attacker nothing new (the equation is implied); where an amount is not, a cell is
    shown only if every intruder on the amounts still holds every primary (at most `trials` such cells). Returns
    the cells to show, and those whose counts are fixed but must stay hidden."""
    n = table.cells.height

    def exact_in(attacker: Attacker, cells: set[int]) -> set[int]:
        attack = AttackModel(attacker.model or table, attacker.seen(suppressed))
        return {c for c in sorted(cells) if all(attack.reach(c + k * n, True) - attack.reach(c + k * n, False) < 1e-6
                                                for k in range(attacker.copies))}
    narrow = checked.filter(~pl.col(CELL_ID).is_in(list(primary)) & (pl.col("upper") - pl.col("lower") < 1e-6))
    if narrow.is_empty():
        return set(), set()
    fixed = exact_in(attackers[0], set(narrow[CELL_ID].to_list()))
    found = set(fixed)
    for attacker in attackers[1:]:
        found = exact_in(attacker, found) if found else found
    for cell in sorted(fixed - found)[:trials]:  # the count is fixed, an amount beside it is not
        trial = suppressed - found - {cell}
        if all(a.audit(table, trial)["safe"].all() for a in attackers[1:]):
            found.add(cell)
    return found, fixed - found


def checked_amounts(table: TableSet, amounts: Sequence[Amounts]) -> Sequence[Amounts]:
    """Amounts in the count table's own cells (the same inner cells and cell numbers), each named once."""
    names = [a.name for a in amounts]
    if len(set(names)) < len(names):
        raise TableError(f"amounts named twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    for amount in amounts:
        if amount.table.membership.shape != table.membership.shape or not amount.table.magnitude:
            raise TableError(f"amounts of {amount.name}: not a magnitude table on the count table's cells")
    if amounts and table.magnitude:
        raise TableError("amounts are published beside counts; this table is itself a magnitude table")
    untied = {a.name: a for a in amounts if a.tied_to is None}
    for amount in (a for a in amounts if a.tied_to is not None):
        if amount.tied_to not in untied or untied[amount.tied_to].cells != amount.cells:
            raise TableError(f"amounts of {amount.name}: tied to {amount.tied_to!r}, which is not an amount of the same "
                             "cells that is tied to none")
        low, high = amount.multiples
        theirs, mine = untied[amount.tied_to].table.inner_values, amount.table.inner_values
        if len(low) != len(mine) or np.any(low > high) or np.any(mine < low * theirs - 1e-6) or np.any(mine > high * theirs + 1e-6):
            raise TableError(f"amounts of {amount.name}: not between its multiples of {amount.tied_to} in every inner cell")
    return amounts


def amount_attacker(table: TableSet, policy: Policy, prior: Prior, primary: set[int], amount: Amounts,
                    amounts: Sequence[Amounts]) -> Attacker:
    """The intruder on an amount, and on the amounts tied to it (each between known multiples of it), who has of
    what is published elsewhere only what the tables show (its counts, and so the amounts beside them)."""
    tied = [a for a in amounts if a.tied_to == amount.name]
    shown = {c: where for c, where in prior.public.items() if table.cells["tables"][c].len() and c in amount.cells}
    model = joint_table(amount, tied) if tied else amount.table
    return plain_attacker(table, policy, Prior(shown), primary & amount.cells, AMOUNTS + " and ".join(
        [amount.name, *(a.name for a in tied)]), model, 1 + len(tied))[0]


def with_pair_sums(attacker: Attacker, pairs: list[tuple[int, int]], n: int) -> Attacker:
    """The intruder on amounts with a cell of its own for each singleton pair's sum, in every block: never
    published, and held to not being worked out exactly (the singleton's only contributor would read the other
    cell off it), in the amount model, where the counts' structure alone cannot show it safe."""
    if not pairs:
        return attacker
    model, first = attacker.model, attacker.model.cells.height
    sums = [(s + k * n, p + k * n) for k in range(attacker.copies) for s, p in pairs]
    m = model.membership.tocsc()
    added = sparse.hstack([m[:, [s]] + m[:, [p]] for s, p in sums], format="csc")
    rows = model.cells[[s for s, _ in sums]].with_columns(
        pl.Series(CELL_ID, np.arange(first, first + len(sums)), dtype=pl.Int64),
        pl.Series(VALUE, added.T @ model.inner_values).cast(model.cells.schema[VALUE]))
    grown = replace(model, cells=pl.concat([model.cells, rows]), membership=sparse.hstack([m, added], format="csc"))
    virtual = frozenset(range(first, first + len(sums)))
    required = pl.concat([attacker.required, pl.DataFrame([(c, *RELAXED) for c in sorted(virtual)], schema=REQUIRED_COLUMNS,
                                                          orient="row")])
    return replace(attacker, model=grown, required=required, virtual=virtual)


def amount_views(attacker: Attacker, amount: Amounts, amounts: Sequence[Amounts], n: int) -> dict[str, set[int]]:
    """Each amount the attacker protects (this one and those tied to it) -> the primaries it holds to their
    protection level in that amount, numbered as the table's cells."""
    names = [amount.name, *(a.name for a in amounts if a.tied_to == amount.name)]
    held = set(attacker.required[CELL_ID].to_list()) - attacker.relaxed
    return {name: {c - i * n for c in held if i * n <= c < (i + 1) * n} for i, name in enumerate(names)}


def protect(table: TableSet, policy: Policy, method: str | None = None, structural: pl.DataFrame | None = None,
            prior: Prior | None = None, amounts: Sequence[Amounts] = ()) -> Protection:
    """The pattern for a table, or for a count table and the amounts published in its cells (amounts_of: funded
    hours beside funded places), which are shown and hidden with the counts. An amount adds the policy's
    magnitude rules (dominance, p%) to the primaries, and an intruder who attacks it: every primary in its cells
    keeps its protection level in the amount as well as in the count."""
    method = method or policy.method
    prior = prior or Prior()
    amounts = checked_amounts(table, amounts)
    n = table.cells.height
    for key, rule in (("dominance", policy.dominance), ("p_percent", policy.p_percent)):
        if rule is not None and not table.magnitude and not amounts:
            raise PolicyError(f"{key}: applies to magnitude tables (amounts with their contributors), and this table "
                              "counts units: remove it from the policy, or give the table its contributors")
    structural_ids = structural_cells(table, structural)
    counts = primary_cells(table, policy).filter(~pl.col(CELL_ID).is_in(list(structural_ids | set(prior.public))))
    counted = set(counts[CELL_ID].to_list())  # the counts' own primaries: a count published elsewhere is none
    unpublished = structural_ids | set(table.cells.filter(pl.col("tables").list.len() == 0)[CELL_ID].to_list())
    primary = merged([counts, amount_primary_cells(policy, amounts).filter(  # an amount's are, wherever its count is
        ~pl.col(CELL_ID).is_in(list(unpublished)))])  # published (the amount is not), in the cells tables show
    primary_ids = set(primary[CELL_ID].to_list())
    plain, _ = plain_attacker(table, policy, prior, counted)  # who has every count published elsewhere
    both, kept, crossed, undifferenced = differencing(table, policy, prior, counted)
    kept -= set(prior.public) | structural_ids
    prior = Prior({c: where for c, where in prior.public.items() if c not in primary_ids}, prior.earlier)  # shown,
    # unless an amount beside the count is primary there
    untied = [a for a in amounts if a.tied_to is None]
    amount_attackers = [amount_attacker(table, policy, prior, primary_ids, a, amounts) for a in untied]
    protected = set().union(*({c % n for c in a.required[CELL_ID].to_list()} for a in [plain, *amount_attackers]))
    # the primaries that can be protected, in the counts and in the amounts
    costs = cell_costs(table, policy)
    notes = []
    singletons, amount_singletons = set(), set()
    if policy.protect_singletons:
        singletons = singleton_cells(table, protected)
        amount_singletons = set().union(*(singleton_cells(a.table, protected & a.cells) for a in amounts))
    pairs = singleton_pairs(table, protected, singletons | amount_singletons)
    amount_pairs = singleton_pairs(table, protected, amount_singletons)
    amount_attackers = [with_pair_sums(a, amount_pairs, n) for a in amount_attackers]
    attackers = [plain, *amount_attackers] + ([both.restricted] if both else [])
    if method == "optimal":
        from .optimal import optimal_suppression

        suppressed, note = optimal_suppression(table, protected, plain.required, policy, pairs, plain.known, kept)
        if note:
            notes.append(note)
            method = "fast"
    if method == "fast":
        suppressed = gauss_suppression(table, protected, kept, policy, pairs, plain.known)
    suppressed |= primary_ids | kept
    first_pattern = frozenset(suppressed)
    state = withstood(table, suppressed, attackers, both, costs)
    suppressed, attackers, checked = state.suppressed, state.attackers, state.checked
    exposed, given_away = state.relaxed("this release"), set(state.given_away)
    held = primary_ids | protected | state.held(n)  # never shown again, whatever the cleanup finds
    if method == "fast" and suppressed - held:
        trials = CLEANUP_WORK // max(1, table.inner.height)
        if not trials:
            notes.append(f"no secondary cell was tried for publishing again: {table.inner.height:,} inner cells are "
                         f"more than the cleanup's work limit ({CLEANUP_WORK:,})")
        suppressed, checked = without_needless_secondaries(table, suppressed, held, attackers, checked, pairs, costs, trials)
    counted_required = set(plain.required[CELL_ID].to_list())
    shown: set[int] = set()
    for round_ in range(MAX_REPAIR_ROUNDS + 1):  # a count fixed exactly is shown, or (to keep an amount beside it
        # hidden) held from being worked out exactly, which may take more cells
        mine = attackers[:1 + len(amount_attackers)]
        determined, exact = determined_secondaries(table, mine, suppressed, held, checked[0],
                                                   CLEANUP_WORK // max(1, table.inner.height))
        if determined:
            shown |= determined
            suppressed -= determined
            checked = [checked[0].filter(~pl.col(CELL_ID).is_in(list(determined))),
                       *(a.audit(table, suppressed) for a in mine[1:]),
                       *(audited.filter(~pl.col(CELL_ID).is_in(list(determined))) for audited in checked[len(mine):])]
        if not exact:
            break
        if round_ == MAX_REPAIR_ROUNDS or exact & given_away:
            raise ProtectionError(f"{len(exact)} secondary counts stay worked out exactly and must stay hidden (an "
                                  "amount beside them would be narrowed if they were shown)")
        held |= exact
        attackers[0] = replace(attackers[0], required=pl.concat([attackers[0].required, pl.DataFrame(
            [(c, *RELAXED) for c in sorted(exact)], schema=REQUIRED_COLUMNS, orient="row")]))
        state = withstood(table, suppressed, attackers, both, costs)
        suppressed, attackers, checked = state.suppressed, state.attackers, state.checked
        exposed, given_away = exposed | state.relaxed("this release"), given_away | state.given_away
    narrowed = {"exposed": exposed, "given_away": given_away,
                "bounded": {c for c in (both.relaxed if both else set()) if c < n} - crossed,
                "crossed": crossed, "given_away_both": {c for c in (both.given_away if both else set()) if c < n}}
    if len(suppressed - first_pattern):
        notes.append(f"the interval audit asked for more protection: {len(suppressed - first_pattern)} cells "
                     "were suppressed on top of the first pattern")
    if shown:
        notes.append(f"{len(shown)} secondary cells were fixed exactly by the published cells, so they are shown")
    notes += prior_notes(prior, suppressed, kept, narrowed, undifferenced)
    if amounts and prior.earlier is not None:
        notes.append(f"the intruder holding {prior.earlier.label} too is modelled on the counts only ("
                     f"{', '.join(a.name for a in amounts)} have no bound on what a mover changes); the cells it hid "
                     "are hidden again")
    result = checked[0]
    for attacker, audited in zip(attackers[1:], checked[1:], strict=True):  # a cell is safe when it is safe against
        # every attacker, in every block of it (an earlier release's cells and a pair's sum are no cell of this one)
        mine = audited.filter(pl.col(CELL_ID) < n * attacker.copies)
        also = mine.group_by(pl.col(CELL_ID) % n).agg(pl.col("safe").all().alias("__also"))
        result = result.join(also, on=CELL_ID, how="left").with_columns(
            safe=pl.col("safe") & pl.col("__also").fill_null(True)).drop("__also")
    full = counted_required - narrowed["exposed"] - narrowed["given_away"]
    both_full = None if both is None else set().union(*(
        set(a.required.filter(pl.col(CELL_ID) < n)[CELL_ID].to_list()) - a.relaxed
        for a in attackers if a.name in ("both releases", "differencing"))) - narrowed["given_away_both"]
    cells = decisions(table, primary, suppressed, structural_ids, result, policy, prior, kept, narrowed, full, both_full)
    final = [next(a for a in state.attackers if a.name == attacker.name) for attacker in amount_attackers]
    if any(a.relaxed for a in final):
        notes.append(f"{sum(len(a.relaxed) for a in final)} amounts to protect are narrowed below their protection "
                     "level by what is already published, whatever this release hides: they are kept from being worked "
                     "out exactly")
    held_in = {name: cells_held for attacker, amount in zip(final, untied, strict=True)
               for name, cells_held in amount_views(attacker, amount, amounts, n).items()}
    return Protection(with_amounts(cells, amounts, held_in, narrowed["given_away"]), result, policy, method, notes)


def with_amounts(cells: pl.DataFrame, amounts: Sequence[Amounts], held_in: dict[str, set[int]],
                 given_away: set[int]) -> pl.DataFrame:
    """The decision records with each amount (null outside its cells) and whether each primary in its cells was
    held to its protection level in the amount (`<name>_protected`)."""
    for amount in amounts:
        held = held_in[amount.name] - given_away
        mine = pl.col(CELL_ID).is_in(list(amount.cells))
        cells = cells.with_columns(
            pl.when(mine).then(pl.Series(amount.table.cell_values)).alias(amount.name),
            pl.when(mine).then(pl.col(CELL_ID).is_in(list(held))).alias(f"{amount.name}_protected"))
    return cells


@dataclass
class Withstood:
    """A pattern grown until every attacker is held to its protection levels, and what could not be."""

    suppressed: set[int]
    attackers: list[Attacker]
    checked: list[pl.DataFrame]
    given_away: set[int] = field(default_factory=set)  # what is already published gives them away regardless

    def relaxed(self, name: str) -> set[int]:
        """Cells the named intruder holds only to not being worked out exactly."""
        return set().union(*(a.relaxed for a in self.attackers if a.name == name))

    def held(self, cells: int) -> set[int]:
        """This release's cells some intruder must not narrow (so never to be published again)."""
        return set().union(*(set(a.required.filter(pl.col(CELL_ID) < cells)[CELL_ID].to_list()) for a in self.attackers))


def withstood(table: TableSet, suppressed: set[int], attackers: list[Attacker], both: Differencing | None, costs) -> Withstood:
    """Grow the pattern until every attacker is held to its protection levels.

    A cell no pattern lets move far enough is held, against that intruder, only to not being worked out exactly
    (and reported); one that even that fails is given away whatever this release hides. The intruder holding
    both releases is checked first through its restriction; a cell the restriction cannot show safe goes to the
    exact intruder, as do the counts that crossed the threshold (held only to not being worked out exactly).
    Suppressing more never makes a primary recoverable again, nor narrows an interval (equations are only
    removed): each interval found stays attainable, so only the narrow cells need checking again."""
    state = Withstood(suppressed, attackers, [a.audit(table, suppressed, every_cell=i == 0) for i, a in enumerate(attackers)])
    if both is not None:
        _exact_again(state, table, both)
    for _ in range(MAX_REPAIR_ROUNDS + 4):  # each escalation (to the exact intruder, to a weaker hold) takes a round
        unsafe = [audited.filter(~pl.col("safe")) for audited in state.checked]
        if all(u.is_empty() for u in unsafe):
            return state
        extra: set[int] = set()
        exact_changed = False
        for i, (attacker, narrow) in enumerate(zip(list(state.attackers), unsafe, strict=True)):
            if narrow.is_empty():
                continue
            added, stuck = attacker.repairs(table, state.suppressed | extra, narrow, costs)
            extra |= {c for c in added if c < table.cells.height}
            if not stuck:
                continue
            if attacker.name == "this release" or attacker.name.startswith(AMOUNTS):
                if not attacker.known:
                    raise ProtectionError(f"cell {sorted(stuck)[0]} cannot be protected: no pattern lets it move far enough")
                state.given_away |= stuck & attacker.relaxed
                state.attackers[i] = attacker.relaxing(stuck - attacker.relaxed).without(stuck & attacker.relaxed)
                state.checked[i] = state.attackers[i].audit(table, state.suppressed | extra, every_cell=True)
            elif attacker.name == "both releases":  # the restriction could not show them safe: ask the exact intruder
                both.escalated |= stuck
                state.attackers[i] = attacker.without(stuck)
                state.checked[i] = state.attackers[i].audit(table, state.suppressed | extra)
                exact_changed = True
            else:
                both.stuck(stuck)
                exact_changed = True
        state.suppressed |= extra
        if exact_changed:
            _exact_again(state, table, both)
        again = set().union(*(set(u[CELL_ID].to_list()) for u in unsafe)) | extra
        for i, attacker in enumerate(state.attackers):
            rechecked = attacker.audit(table, state.suppressed, only=again, rounds=RECHECK_ROUNDS, every_cell=i == 0)
            kept_audit = state.checked[i].filter(~pl.col(CELL_ID).is_in(rechecked[CELL_ID].implode())).with_columns(
                exact=pl.lit(False))
            state.checked[i] = pl.concat([kept_audit, rechecked]).sort(CELL_ID)
    raise ProtectionError(f"no safe pattern after {MAX_REPAIR_ROUNDS + 4} rounds")


def _exact_again(state: Withstood, table: TableSet, both: Differencing) -> None:
    """The exact intruder holding both releases as the Differencing now stands, in place of the one before."""
    exact = both.exact(state.attackers[0].known)
    index = next((i for i, a in enumerate(state.attackers) if a.name == "differencing"), None)
    if exact is None:
        return
    if index is None:
        state.attackers.append(exact)
        state.checked.append(exact.audit(table, state.suppressed))
    else:
        state.attackers[index] = exact
        state.checked[index] = exact.audit(table, state.suppressed)


def prior_notes(prior: Prior, suppressed: set[int], kept: set[int], narrowed: dict[str, set[int]],
                undifferenced: str | None) -> list[str]:
    notes = []
    if narrowed["exposed"]:
        notes.append(f"{len(narrowed['exposed'])} cells to protect are narrowed below their protection level by what "
                     "is already published, whatever this release hides: they are kept from being worked out exactly")
    if prior.public:
        notes.append(f"{len(prior.public)} cells were already published elsewhere, so they are shown")
    if narrowed["given_away"]:
        notes.append(f"{len(narrowed['given_away'])} primary cells are given away by what is already published, "
                     "whatever this release hides")
    if prior.earlier is None:
        return notes
    label = prior.earlier.label
    notes.append(f"{len(kept & suppressed)} of the {len(kept)} cells hidden in {label} are hidden again (the others "
                 "give nothing away)" if kept - suppressed else f"{len(kept)} cells hidden in {label} are hidden again")
    if narrowed["crossed"]:
        notes.append(f"{len(narrowed['crossed'])} primary cells were shown in {label}: differencing the two releases "
                     "bounds them, whatever this release hides; they are kept from being worked out exactly")
    if narrowed["bounded"] - narrowed["given_away_both"]:
        notes.append(f"{len(narrowed['bounded'] - narrowed['given_away_both'])} primary cells are narrowed by "
                     f"differencing with {label}, whatever this release hides; they are kept from being worked out exactly")
    if narrowed["given_away_both"]:
        notes.append(f"{len(narrowed['given_away_both'])} primary cells are given away by differencing with {label}, "
                     "whatever this release hides")
    if undifferenced:
        notes.append(f"{label}: {undifferenced}")
    return notes


MAGNITUDE_DP = 2  # amounts (pounds, hours) are shown to the penny or hundredth, rounded half away from zero


def shown_value(table: TableSet) -> pl.Expr:
    """A published cell as its file shows it: a count as a whole number, an amount rounded (never truncated)."""
    if table.magnitude:
        return pl.col(VALUE).round(MAGNITUDE_DP, mode="half_away_from_zero").cast(pl.String)
    return pl.col(VALUE).cast(pl.Int64).cast(pl.String)


def decisions(table: TableSet, primary: pl.DataFrame, suppressed: set[int], structural_ids: set[int],
              checked: pl.DataFrame, policy: Policy, prior: Prior, kept: set[int], narrowed: dict[str, set[int]],
              protected: set[int], protected_against_both: set[int] | None) -> pl.DataFrame:
    """One decision record per cell: status, the rule behind it, why, what is shown, and whether its interval
    was held to its protection level against this release and the figures public elsewhere (`protected`) and
    against an intruder holding the earlier release too (`protected_against_both`, null without one)."""
    symbol = policy.symbols
    label = prior.earlier.label if prior.earlier else "the earlier release"
    public = pl.DataFrame({CELL_ID: list(prior.public), "__public": list(prior.public.values())},
                          schema={CELL_ID: pl.Int64, "__public": pl.String})
    status = (
        pl.when(pl.col(CELL_ID).is_in(list(structural_ids))).then(pl.lit(Status.STRUCTURAL_ZERO))
        .when(pl.col("__public").is_not_null()).then(pl.lit(Status.PUBLISHED))
        .when(pl.col("rule").is_not_null()).then(pl.lit(Status.PRIMARY))
        .when(pl.col(CELL_ID).is_in(list(suppressed))).then(pl.lit(Status.SECONDARY))
        .otherwise(pl.lit(Status.PUBLISHED))
    )
    return (
        table.cells.select(CELL_ID, *table.dimensions, VALUE, "is_total", "tables")
        .join(primary, on=CELL_ID, how="left")
        .join(public, on=CELL_ID, how="left")
        .with_columns(status=status)
        .with_columns(
            reason=pl.when(pl.col("status") == Status.SECONDARY)
            .then(pl.when(pl.col(CELL_ID).is_in(list(kept)))
                  .then(pl.lit(f"hidden in {label} too, so that the two releases cannot be differenced"))
                  .otherwise(pl.lit("suppressed so that no primary cell can be worked out from the published cells")))
            .when(pl.col("status") == Status.STRUCTURAL_ZERO).then(pl.lit("this combination cannot occur"))
            .when(pl.col("__public").is_not_null()).then(pl.format("already published in {}", pl.col("__public")))
            .when(pl.col(CELL_ID).is_in(list(narrowed["given_away"])) & (pl.col("status") == Status.PRIMARY))
            .then(pl.format("{}; what is already published gives it away whatever this release hides", pl.col("reason")))
            .when(pl.col(CELL_ID).is_in(list(narrowed["given_away_both"])) & (pl.col("status") == Status.PRIMARY))
            .then(pl.format("{}; differencing with {} gives it away whatever this release hides", pl.col("reason"),
                            pl.lit(label)))
            .when(pl.col(CELL_ID).is_in(list(narrowed["exposed"])) & (pl.col("status") == Status.PRIMARY))
            .then(pl.format("{}; what is already published narrows it below its protection level whatever this "
                            "release hides: it is kept from being worked out exactly", pl.col("reason")))
            .when(pl.col(CELL_ID).is_in(list(narrowed["crossed"])) & (pl.col("status") == Status.PRIMARY))
            .then(pl.format("{}; shown in {}, which bounds it: differencing the two releases narrows it whatever this "
                            "release hides, and it is kept from being worked out exactly", pl.col("reason"), pl.lit(label)))
            .when(pl.col(CELL_ID).is_in(list(narrowed["bounded"])) & (pl.col("status") == Status.PRIMARY))
            .then(pl.format("{}; differencing with {} narrows it whatever this release hides: it is kept from being "
                            "worked out exactly", pl.col("reason"), pl.lit(label)))
            .otherwise(pl.col("reason")),
            display=pl.when(pl.col("status").is_in(list(SUPPRESSED))).then(pl.lit(symbol[SYMBOL_KEY[Status.PRIMARY]]))
            .when(pl.col("status") == Status.STRUCTURAL_ZERO).then(pl.lit(symbol[SYMBOL_KEY[Status.STRUCTURAL_ZERO]]))
            .otherwise(shown_value(table)),
        )
        .join(checked.select(CELL_ID, "lower", "upper", "exact", "safe"), on=CELL_ID, how="left")
        .with_columns(protected=pl.col(CELL_ID).is_in(list(protected)),
                      protected_against_both=pl.lit(None, pl.Boolean) if protected_against_both is None
                      else pl.when(pl.col(CELL_ID).is_in(list(narrowed["crossed"] | narrowed["bounded"]
                                                                | narrowed["given_away_both"]))).then(False)
                      .when(pl.col(CELL_ID).is_in(list(protected_against_both))).then(True))
        .drop("__public")
        .sort(CELL_ID)
    )
