"""What is already out before a release, and the intruders a pattern must withstand because of it.

Two things can be out already: figures others publish about the same units (shown, since publishing them costs
nothing, and part of every attack), and the earlier release of the same series. For the earlier release the
intruder holds both releases and knows that at most `movers` units joined or left between them; a cell the
earlier release hid stays hidden.

That intruder's exact model joins the two releases (release.differencing_model): twice the unknowns and more.
So the pattern is first checked against a restriction of it that is the size of one release: this release with
the cells the earlier release showed fixed at their values now, and each unit that joined present where it
joined. Any table that restriction allows, less the true change, is a table of the earlier release, so the pair
is one the exact intruder cannot rule out: an interval the restriction reaches, the exact intruder reaches too
(shifted by the cell's true change for an earlier cell). A cell the restriction cannot show safe, even with every
other cell hidden, is checked (and repaired) against the exact model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
from scipy import sparse

from .audit import audit
from .policy import Policy
from .primary import primary_cells, protection_required
from .release import POPULATION, differencing_model
from .table import CELL_ID, INNER_ID, VALUE, Facts, TableSet
from .widening import interval_repairs

REQUIRED_COLUMNS = {CELL_ID: pl.Int64, "upper_required": pl.Float64, "lower_required": pl.Float64}


@dataclass(frozen=True)
class Earlier:
    """The earlier release of the same series: its model (the counts its run kept, restricted) and which of its
    cells it showed and which it hid (read from its published files). A cell of the model in neither was left out
    of its files (a category the files do not write): if it was a primary, it is owed its protection and kept
    hidden as a primary the files hid is. Without a model (its run kept no counts),
    `published` and `hidden` name this release's cells at the same coordinates: its hidden cells are still hidden
    again, but an intruder holding both releases cannot be modelled."""

    table: TableSet | None
    published: frozenset[int]
    hidden: frozenset[int]
    label: str = "the earlier release"


@dataclass(frozen=True)
class Prior:
    """What an attacker has before this release (sdcTable's setInfo, for release-wide protection).

    public   cell -> where it is already published, for the same units and at the same value: shown, since
             publishing it costs nothing, and never a primary
    earlier  the earlier release of the series: its hidden cells stay hidden (where no intruder holding both
             can be modelled, unless publishing one gives nothing away), and the pattern must withstand an
             intruder who holds both releases and knows that at most `movers` units joined or left in between
    """

    public: dict[int, str] = field(default_factory=dict)
    earlier: Earlier | None = None


def required_protection(table: TableSet, primary: set[int], policy: Policy) -> pl.DataFrame:
    """The width each protected cell's interval must keep on either side of its value."""
    values = table.cells.filter(pl.col(CELL_ID).is_in(list(primary)))
    upper, lower = protection_required(values[VALUE].to_list(), policy)
    return pl.DataFrame({CELL_ID: values[CELL_ID], "upper_required": upper, "lower_required": lower}, schema=REQUIRED_COLUMNS)


RELAXED = (1.0, 0.0)  # upper, lower required of a cell held only to not being worked out exactly


@dataclass(frozen=True)
class Attacker:
    """One intruder the pattern must withstand: the cells it has from elsewhere, and the width each cell it must
    not narrow keeps against it (cell_id, upper_required, lower_required). `model` is what it attacks when that
    is not the table itself (the table's cells keep their numbers in it), with the cells it knows are hidden
    whatever this release does and the cells no repair may change. Only the first attacker (this release and the
    figures public elsewhere) audits every hidden cell; the others only the cells they must not narrow.
    `relaxed` cells are held only to not being worked out exactly: no pattern gives them their full protection
    against this intruder. With `mirror` (the table's number of cells), the model holds `copies` blocks of the
    table's cells (table.joint_table: amounts tied together; cell c of block i is c + i mirror), each hidden and
    shown with its original; `virtual` cells are the model's own (sums a singleton's contributor could read),
    never published."""

    name: str
    known: frozenset[int]
    required: pl.DataFrame
    model: TableSet | None = None
    hidden: frozenset[int] = frozenset()
    fixed: frozenset[int] = frozenset()
    relaxed: frozenset[int] = frozenset()
    mirror: int = 0
    copies: int = 1
    virtual: frozenset[int] = frozenset()

    def seen(self, suppressed: set[int]) -> set[int]:
        """The model's cells this intruder does not see, given the table's suppressed cells."""
        hidden = suppressed | self.hidden
        if self.mirror:
            hidden = {c + k * self.mirror for c in hidden for k in range(self.copies)}
        return (hidden | self.virtual) - self.known

    def audit(self, table: TableSet, suppressed: set[int], only: set[int] | None = None, rounds: int | None = None,
              every_cell: bool = False) -> pl.DataFrame:
        if not every_cell:
            mine = set(self.required[CELL_ID].to_list())
            only = mine if only is None else only & mine
        return audit(self.model or table, self.seen(suppressed), self.required, only=only,
                     **({"rounds": rounds} if rounds is not None else {}))

    def repairs(self, table: TableSet, suppressed: set[int], unsafe: pl.DataFrame, costs: np.ndarray) -> tuple[set[int], set[int]]:
        """The table's cells to suppress as well (a copy's repair suppresses its original), and the cells no
        repair can hold."""
        model = self.model or table
        costs = np.tile(costs, self.copies) if self.mirror else costs
        costs = np.concatenate([costs, np.zeros(model.cells.height - len(costs))])
        added, stuck = interval_repairs(model, self.seen(suppressed), unsafe, costs, self.known | self.fixed)
        return ({c % self.mirror for c in added} if self.mirror else added), stuck

    def without(self, cells: set[int]) -> "Attacker":
        return replace(self, required=self.required.filter(~pl.col(CELL_ID).is_in(list(cells))))

    def relaxing(self, cells: set[int]) -> "Attacker":
        """Held only to not being worked out exactly, for these cells."""
        required = self.required.with_columns(
            pl.when(pl.col(CELL_ID).is_in(list(cells))).then(pl.lit(RELAXED[0])).otherwise("upper_required").alias("upper_required"),
            pl.when(pl.col(CELL_ID).is_in(list(cells))).then(pl.lit(RELAXED[1])).otherwise("lower_required").alias("lower_required"))
        return replace(self, required=required, relaxed=self.relaxed | frozenset(cells))


class Differencing:
    """An intruder holding both releases: the restriction checked first, and the exact model for the cells the
    restriction cannot show safe (built once, when first needed). It keeps which of this release's cells the
    exact intruder is held to: escalated from the restriction (to their own protection level, and the earlier
    release's primary behind each to its), or counts that crossed the threshold (only to not being worked out
    exactly); and, in the exact model's numbering, the cells it holds only to that and those it gives away."""

    def __init__(self, restricted: Attacker, table: TableSet, earlier: Earlier, matched: pl.DataFrame,
                 now_required: pl.DataFrame, then_required: pl.DataFrame, movers: int, bounded: set[str],
                 crossed: set[int], hold: set[int]):
        self.restricted, self.table, self.earlier, self.matched = restricted, table, earlier, matched
        self.hold = hold  # secondaries hidden in both releases: neither may be worked out exactly
        self.now_required, self.then_required, self.movers, self.bounded = now_required, then_required, movers, bounded
        self.crossed, self.escalated = set(crossed), set()
        self.relaxed: set[int] = set()
        self.given_away: set[int] = set()
        self._model: TableSet | None = None

    def exact(self, public: frozenset[int]) -> Attacker | None:
        """The exact intruder as things stand (None while no cell needs it)."""
        cells = self.escalated | self.crossed
        if not cells:
            return None
        if self._model is None:
            self._model = differencing_model(self.table, self.earlier.table, self.movers, self.bounded)
        offset = self.table.cells.height
        then = self.matched.filter(pl.col(CELL_ID).is_in(list(cells)))["then"].to_list()
        held = self.escalated & self.hold
        owed = set(self.then_required.filter(pl.col(CELL_ID).is_in(then))[CELL_ID].to_list())  # kept at their level
        counterparts = {offset + t for t in self.matched.filter(pl.col(CELL_ID).is_in(list(held)))["then"].to_list()
                        if t not in self.earlier.published and t not in owed}
        relaxed = pl.DataFrame([(c, *RELAXED) for c in sorted(self.crossed | held | counterparts)], schema=REQUIRED_COLUMNS,
                               orient="row")
        required = pl.concat([self.now_required.filter(pl.col(CELL_ID).is_in(list(self.escalated - self.crossed - held))),
                              relaxed, self.then_required.filter(pl.col(CELL_ID).is_in(then)).with_columns(pl.col(CELL_ID) + offset)])
        unseen = frozenset(offset + c for c in range(self.earlier.table.cells.height) if c not in self.earlier.published)
        attacker = Attacker("differencing", public | {offset + c for c in self.earlier.published},
                            required.filter(~pl.col(CELL_ID).is_in(list(self.given_away))), self._model, unseen,
                            frozenset(range(offset, self._model.cells.height)))
        return attacker.relaxing((self.relaxed | self.crossed | held | counterparts) - self.given_away)

    def stuck(self, cells: set[int]) -> None:
        """Cells the exact intruder narrows whatever this release hides: held only to not being worked out
        exactly, or given away if even that fails."""
        self.given_away |= cells & (self.relaxed | self.crossed)
        self.relaxed |= cells - self.crossed


def exposed_by_known(table: TableSet, required: pl.DataFrame, known: frozenset[int]) -> set[int]:
    """Cells to protect that what is already out narrows below their protection level even if this release
    showed nothing else: no pattern gives them their full protection."""
    if not known or required.is_empty():
        return set()
    found = audit(table, set(range(table.cells.height)) - known, required, only=set(required[CELL_ID].to_list()))
    return set(found.filter(~pl.col("safe"))[CELL_ID].to_list())


def plain_attacker(table: TableSet, policy: Policy, prior: Prior, primary: set[int], name: str = "this release",
                   model: TableSet | None = None, copies: int = 1) -> tuple[Attacker, set[int]]:
    """The intruder with this release and the figures public elsewhere, and the primaries those figures alone
    narrow below their protection level (held only to not being worked out exactly). With a model (an amount in
    the same cells), the intruder attacks the amount: the same cells are hidden, their values are the amount's;
    with copies, the model's blocks of the cells (amounts tied to it) are protected like their originals."""
    n = table.cells.height
    public = frozenset(c + k * n for c in prior.public for k in range(copies))
    required = required_protection(model or table, {c + k * n for c in primary for k in range(copies)}, policy)
    exposed = exposed_by_known(model or table, required, public)
    attacker = Attacker(name, public, required, model, mirror=n if copies > 1 else 0, copies=copies)
    return (attacker.relaxing(exposed) if exposed else attacker), exposed


def differencing(table: TableSet, policy: Policy, prior: Prior, primary: set[int]
                 ) -> tuple[Differencing | None, set[int], set[int], str | None]:
    """The intruder holding both releases, the cells the earlier release hid (kept hidden), the primaries it
    showed (counts that crossed the threshold: held against this intruder only to not being worked out exactly),
    and, when there is no such intruder to withstand, why."""
    earlier = prior.earlier
    if earlier is None:
        return None, set(), set(), None
    if earlier.table is None:
        return None, set(earlier.hidden), set(), "its run kept no counts, so an intruder holding both could not be modelled"
    dims = list(table.dimensions)
    matched = table.cells.select(CELL_ID, *dims).join(earlier.table.cells.select(pl.col(CELL_ID).alias("then"), *dims), on=dims)
    then_primary = set(primary_cells(earlier.table, policy)[CELL_ID].to_list()) - set(earlier.published)
    kept = set(matched.filter(pl.col("then").is_in(list(earlier.hidden | then_primary)))[CELL_ID].to_list())
    change = inner_change(table, earlier.table)
    if table.magnitude:
        return None, kept, set(), "magnitude tables carry no bound on what a mover changes"
    if change is None:
        return None, kept, set(), "the two were not counted over the same combinations"
    moved = change.group_by(POPULATION).agg(pl.col("change").abs().sum())
    bounded = set(moved.filter(pl.col("change") <= policy.movers)[POPULATION].to_list())
    if not bounded:
        return None, kept, set(), (f"more than {policy.movers} units changed in every population: an intruder who assumes "
                                   "no more learns nothing from comparing them")
    crossed = primary & set(matched.filter(pl.col("then").is_in(list(earlier.published)))[CELL_ID].to_list())
    then_required = required_protection(earlier.table, then_primary, policy)
    counterpart = matched.filter(pl.col("then").is_in(list(then_primary))).select(pl.col(CELL_ID).alias("now"), "then")
    owed = then_required.join(counterpart, left_on=CELL_ID, right_on="then").select(
        pl.col("now").alias(CELL_ID), "upper_required", "lower_required")
    now = required_protection(table, primary - crossed, policy)
    required = (pl.concat([now, owed.cast(REQUIRED_COLUMNS)])
                .group_by(CELL_ID).agg(pl.col("upper_required").max(), pl.col("lower_required").max()).sort(CELL_ID))
    known = frozenset(prior.public) | frozenset(matched.filter(pl.col("then").is_in(list(earlier.published)))[CELL_ID].to_list())
    hold = kept - set(required[CELL_ID].to_list()) - known  # hidden in both: held from being worked out exactly
    held = pl.DataFrame([(c, *RELAXED) for c in sorted(hold)], schema=REQUIRED_COLUMNS, orient="row")
    restricted = Attacker("both releases", known, pl.concat([required, held]).filter(~pl.col(CELL_ID).is_in(list(known))),
                          restricted_table(table, change)).relaxing(hold)
    return (Differencing(restricted, table, earlier, matched, now, then_required, policy.movers, bounded, crossed, hold),
            kept, crossed, None)


def restricted_table(table: TableSet, change: pl.DataFrame) -> TableSet:
    """The table with the facts that make any table it allows, less the true change, a table of the earlier
    release: each unit that joined is where it joined (now >= the change), and every nesting held then (each of
    its rows, now, is at most its bound plus the row's true change)."""
    d = np.zeros(table.inner.height)
    d[change[INNER_ID].to_numpy()] = change["change"].to_numpy()
    joined = np.flatnonzero(d > 0)
    facts = [Facts(sparse.csr_matrix((np.ones(len(joined)), (np.arange(len(joined)), joined)), shape=(len(joined), table.inner.height)),
                   d[joined], np.full(len(joined), np.inf))]
    nestings = [Facts(table.nested_rows, np.full(table.nested.height, -np.inf), np.zeros(table.nested.height))
                if table.nested_rows is not None else None, table.facts]
    facts += [table.facts] + [Facts(f.rows, f.lower + f.rows @ d, f.upper + f.rows @ d) for f in nestings if f is not None]
    return replace(table, facts=Facts.stacked(*facts))


def inner_change(table: TableSet, earlier: TableSet) -> pl.DataFrame | None:
    """inner_id (of this table), population, change (now less then) for every combination; None when the two
    were not counted over the same combinations (the release counts over both releases' combinations)."""
    dims = list(table.dimensions)
    change = table.inner.select(INNER_ID, *dims, VALUE).join(earlier.inner.select(*dims, pl.col(VALUE).alias("then")),
                                                             on=dims, how="full", coalesce=True)
    if change[INNER_ID].null_count() or change["then"].null_count():
        return None
    return change.select(INNER_ID, POPULATION, (pl.col(VALUE) - pl.col("then")).alias("change"))
