"""Release-wide protection on designed tables with exact statuses, and random releases attacked by an LP written
here, independently of the library (scipy's linprog over each published table's own cells, with the relations
an intruder knows: one population within another, categories that add up to another table's cell, figures
already public, and the earlier release with one mover)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from disclosure_control.audit import audit
from disclosure_control.policy import Policy
from disclosure_control.primary import primary_cells
from disclosure_control.prior import Earlier, Prior, required_protection
from disclosure_control.protect import protect
from disclosure_control.release import POPULATION, Nesting, population_cells, release_table
from disclosure_control.table import TableError, TableSpec, from_frequencies, from_microdata

T = "Total"
HIDDEN = ("primary", "secondary")


def units(rows: dict[tuple, int], names: tuple[str, ...]) -> pl.DataFrame:
    """Unit records: each key repeated by its count."""
    return pl.DataFrame([dict(zip(names, key, strict=True)) for key, n in rows.items() for _ in range(n)])


def statuses(cells: pl.DataFrame, dims: list[str]) -> dict[tuple, str]:
    return {tuple(r[d] for d in dims): r["status"] for r in cells.iter_rows(named=True)}


class Attack:
    """An intruder's LP over published tables: each table's unknowns are its finest cells (>= 0)."""

    def __init__(self, tables: dict[str, tuple[list[str], pl.DataFrame]]):
        """tables: name -> (its dimensions, its cells as published: dims, value, status)."""
        self.tables, self.index, self.eq, self.ub = tables, {}, [], []
        self.leaves = {name: {d: sorted(set(cells[d]) - {T}) for d in dims} for name, (dims, cells) in tables.items()}
        for name, (dims, _) in tables.items():
            for combo in itertools.product(*[self.leaves[name][d] for d in dims]):
                self.index[(name, combo)] = len(self.index)
        for name, (dims, cells) in tables.items():
            for r in cells.filter(~pl.col("status").is_in(HIDDEN)).iter_rows(named=True):
                self.eq.append((self.row(name, {d: r[d] for d in dims}), float(r["value"])))

    def row(self, name: str, coords: dict[str, str], sign: float = 1.0, into: np.ndarray | None = None) -> np.ndarray:
        dims = self.tables[name][0]
        out = np.zeros(len(self.index)) if into is None else into
        for combo in itertools.product(*[self.leaves[name][d] if coords.get(d, T) == T else [coords[d]] for d in dims]):
            out[self.index[(name, combo)]] += sign
        return out

    def linked(self, a: str, b: str, shared: list[str], relation: str = "==", a_levels: dict | None = None,
               b_fixed: dict | None = None) -> None:
        """For every combination of the shared dimensions' leaves: sum(a) == (or <=) sum(b); a_levels restricts one
        of a's dimensions to some levels, b_fixed fixes one of b's dimensions to a value (categories adding up)."""
        for combo in itertools.product(*[self.leaves[a][d] for d in shared]):
            coords = dict(zip(shared, combo, strict=True))
            row = np.zeros(len(self.index))
            for dim, levels in (a_levels or {T: [T]}).items():
                for level in levels:
                    self.row(a, coords | ({dim: level} if dim != T else {}), 1.0, row)
            self.row(b, coords | (b_fixed or {}), -1.0, row)
            (self.eq if relation == "==" else self.ub).append((row, 0.0))

    def interval(self, name: str, coords: dict[str, str]) -> tuple[float, float]:
        objective = self.row(name, coords)
        a_eq = np.array([r for r, _ in self.eq]) if self.eq else None
        a_ub = np.array([r for r, _ in self.ub]) if self.ub else None
        ends = []
        for sign in (1, -1):
            solved = linprog(sign * objective, A_eq=a_eq, b_eq=[v for _, v in self.eq] or None, A_ub=a_ub,
                             b_ub=[v for _, v in self.ub] or None, bounds=(0, None), method="highs")
            assert solved.status in (0, 3), solved.message
            ends.append(np.inf if solved.status == 3 else sign * solved.fun)
        return ends[0], ends[1]


def unprotected(attack: Attack, name: str, cells: pl.DataFrame, policy: Policy) -> list[tuple]:
    """Primary cells of the table whose interval is narrower than the policy's protection level."""
    dims, out = attack.tables[name][0], []
    for r in cells.filter(pl.col("status") == "primary").iter_rows(named=True):
        low, high = attack.interval(name, {d: r[d] for d in dims})
        need = max(1.0, np.ceil(policy.protection_level / 100 * r["value"]))
        if high < r["value"] + need - 1e-6 or low > r["value"] - min(r["value"], need) + 1e-6:
            out.append((tuple(r[d] for d in dims), low, high))
    return out


# Pupils on roll by area, and the pupils with attendance records (some of them) by area: 4 of the 5 pupils in
# area a have records, so the hidden 4 can be at most the published 5 on roll, far short of its protection.
ON_ROLL = {("a",): 5, ("b",): 40}
ABSENCE = {("a",): 4, ("b",): 20}
POLICY = Policy(threshold=5)


def nested_release() -> tuple[dict, list[Nesting]]:
    parts = {"on_roll": from_microdata(units(ON_ROLL, ("area",)), [TableSpec("pupils", ("area",))]),
             "absence": from_microdata(units(ABSENCE, ("area",)), [TableSpec("absence", ("area",))])}
    return parts, [Nesting("absence", "on_roll")]


def nested_attack(on_roll: pl.DataFrame, absence: pl.DataFrame) -> Attack:
    attack = Attack({"pupils": (["area"], on_roll), "absence": (["area"], absence)})
    attack.linked("absence", "pupils", ["area"], "<=")
    return attack


def test_per_publication_protection_is_undone_by_the_nesting_and_release_wide_protection_is_not():
    parts, nestings = nested_release()
    alone = {name: protect(part, POLICY).cells for name, part in parts.items()}
    assert statuses(alone["on_roll"], ["area"]) == {("Total",): "published", ("a",): "published", ("b",): "published"}
    assert statuses(alone["absence"], ["area"]) == {("Total",): "published", ("a",): "primary", ("b",): "secondary"}
    assert nested_attack(alone["on_roll"], alone["absence"]).interval("absence", {"area": "a"}) == (0.0, 5.0)

    release = release_table(parts, nestings)
    result = protect(release, POLICY)
    cells = {name: population_cells(result.cells, release, name, part) for name, part in parts.items()}
    assert statuses(cells["on_roll"], ["area"]) == {("Total",): "published", ("a",): "secondary", ("b",): "secondary"}
    assert statuses(cells["absence"], ["area"]) == {("Total",): "published", ("a",): "primary", ("b",): "secondary"}
    attack = nested_attack(cells["on_roll"], cells["absence"])
    low, high = attack.interval("absence", {"area": "a"})
    assert low == 0 and high >= 6  # 4 with 50% protection: 2 either way
    assert unprotected(attack, "absence", cells["absence"], POLICY) == []
    assert result.summary()["audit"]["passed"]


def test_the_release_audit_fails_the_per_publication_pattern():
    parts, nestings = nested_release()
    release = release_table(parts, nestings)
    hidden, offset = set(), 0
    for name in sorted(parts):
        result = protect(parts[name], POLICY)
        hidden |= {c + offset for c in result.cells.filter(pl.col("status").is_in(HIDDEN))["cell_id"]}
        offset += parts[name].cells.height
    required = required_protection(release, set(primary_cells(release, POLICY)["cell_id"]), POLICY)
    checked = audit(release, hidden, required)
    assert checked.filter(~pl.col("safe")).select("value", "lower", "upper").rows() == [(4, 0.0, 5.0)]


def test_a_nesting_the_counts_contradict_is_refused():
    parts = {"on_roll": from_microdata(units({("a",): 3, ("b",): 40}, ("area",)), [TableSpec("pupils", ("area",))]),
             "absence": from_microdata(units(ABSENCE, ("area",)), [TableSpec("absence", ("area",))])}
    with pytest.raises(TableError, match="population 'absence' is not within 'on_roll': 1 of its 3 cells"):
        release_table(parts, [Nesting("absence", "on_roll")])


# The larger population publishes ethnicity by SEN; the smaller (some of its units) publishes each on its own. No
# cell of one has a counterpart in the other below the margins, yet every unit of the smaller is a unit of the
# larger in the same ethnicity and SEN: an intruder knows the smaller's ethnicity-by-SEN cross is at most the
# larger's, and with the larger's (e2, s1) at 5, hiding the smaller's e1 = 3 alone would leave it at least 2.
LARGE = {("x", "e1", "s1"): 20, ("x", "e1", "s2"): 20, ("x", "e2", "s1"): 5, ("x", "e2", "s2"): 20}
SMALL = {("x", "e1", "s1"): 2, ("x", "e1", "s2"): 1, ("x", "e2", "s1"): 5, ("x", "e2", "s2"): 15}


def test_a_cross_only_the_larger_population_publishes_still_bounds_the_smaller():
    names = ("area", "eth", "sen")
    parts = {"large": from_microdata(units(LARGE, names), [TableSpec("cross", names)]),
             "small": from_microdata(units(SMALL, names), [TableSpec("by_eth", ("area", "eth")), TableSpec("by_sen", ("area", "sen"))])}
    release = release_table(parts, [Nesting("small", "large")])
    assert release.facts is not None and release.facts.rows.shape[0] == 8  # the cross of four, in the area and the LA
    result = protect(release, POLICY)
    cells = {name: population_cells(result.cells, release, name, part) for name, part in parts.items()}
    attack = Attack({"large": (list(names), cells["large"]), "small": (list(names), cells["small"])})
    attack.linked("small", "large", ["area", "eth", "sen"], "<=")
    assert unprotected(attack, "small", cells["small"], POLICY) == []
    assert result.summary()["audit"]["passed"]


# Two-year-olds by basis for funding add up to the two-year-old count of the entitlement table. An intruder who
# knows it narrows area c's hidden 3 children funded on economic criteria from [0, 15] to [0, 5]: exactly its
# protection bound (3 with 50%, at least 2 either way), because the engine counted with the relation all along.
CHILDREN = {("a", "2YO", "Economic"): 12, ("a", "2YO", "Looked after"): 6, ("a", "U34", "none"): 2,
            ("b", "2YO", "Economic"): 0, ("b", "2YO", "Looked after"): 2, ("b", "U34", "none"): 2,
            ("c", "2YO", "Economic"): 3, ("c", "2YO", "Looked after"): 6, ("c", "U34", "none"): 15}


def test_categories_that_add_up_to_another_tables_cell_are_protected_with_that_relation():
    tables = [TableSpec("by_entitlement", ("area", "entitlement")), TableSpec("by_basis", ("area", "basis"))]
    part = from_microdata(units(CHILDREN, ("area", "entitlement", "basis")), tables)
    release = release_table({"children": part})
    cells = population_cells(protect(release, POLICY).cells, release, "children", part)
    by_basis, by_entitlement = cells.filter(pl.col("entitlement") == T), cells.filter(pl.col("basis") == T)
    p, s, c = "published", "secondary", "primary"
    assert statuses(by_basis, ["area", "basis"]) == {
        ("Total", "Total"): p, ("Total", "Economic"): p, ("Total", "Looked after"): p, ("Total", "none"): p,
        ("a", "Total"): s, ("a", "Economic"): s, ("a", "Looked after"): s, ("a", "none"): c,
        ("b", "Total"): c, ("b", "Looked after"): c, ("b", "none"): c,
        ("c", "Total"): p, ("c", "Economic"): c, ("c", "Looked after"): p, ("c", "none"): s}
    assert statuses(by_entitlement, ["area", "entitlement"]) == {
        ("Total", "Total"): p, ("Total", "2YO"): p, ("Total", "U34"): p, ("a", "Total"): s, ("a", "2YO"): p,
        ("a", "U34"): c, ("b", "Total"): c, ("b", "2YO"): c, ("b", "U34"): c, ("c", "Total"): p, ("c", "2YO"): s,
        ("c", "U34"): s}
    attack = Attack({"by_entitlement": (["area", "entitlement"], by_entitlement), "by_basis": (["area", "basis"], by_basis)})
    attack.linked("by_entitlement", "by_basis", ["area"])
    assert attack.interval("by_basis", {"area": "c", "basis": "Economic"}) == (0.0, 15.0)
    attack.linked("by_basis", "by_entitlement", ["area"], a_levels={"basis": ["Economic", "Looked after"]},
                  b_fixed={"entitlement": "2YO"})
    assert attack.interval("by_basis", {"area": "c", "basis": "Economic"}) == (0.0, 5.0)
    assert unprotected(attack, "by_basis", by_basis, POLICY) == []


# Pupils by school against sex and against free school meals; a DfE file publishes the LA's girls eligible for
# free school meals, a cross of the two that this release does not publish. With that figure public, the pattern
# protection would choose alone gives one school's hidden count back exactly; told of it, protection hides more.
SCHOOLS = {("s1", "F", "Y"): 1, ("s1", "F", "N"): 0, ("s1", "M", "Y"): 20, ("s1", "M", "N"): 5,
           ("s2", "F", "Y"): 3, ("s2", "F", "N"): 3, ("s2", "M", "Y"): 0, ("s2", "M", "N"): 12,
           ("s3", "F", "Y"): 12, ("s3", "F", "N"): 0, ("s3", "M", "Y"): 5, ("s3", "M", "N"): 5}
DIMS = ["school", "sex", "fsm"]


def joint_attack(cells: pl.DataFrame, public: dict[tuple, int]) -> Attack:
    """The attacker's unknowns: every school x sex x fsm count (the two tables' common refinement)."""
    attack = Attack({"joint": (DIMS, cells)})
    for coords, value in public.items():
        attack.eq.append((attack.row("joint", dict(zip(DIMS, coords, strict=True))), float(value)))
    return attack


def test_a_figure_already_published_elsewhere_makes_protection_add_the_secondaries_it_needs():
    part = from_microdata(units(SCHOOLS, tuple(DIMS)), [TableSpec("by_sex", ("school", "sex")), TableSpec("by_fsm", ("school", "fsm"))])
    release = release_table({"pupils": part})
    public = {("Total", "F", "Y"): 16}
    fresh = population_cells(protect(release, POLICY).cells, release, "pupils", part)
    assert unprotected(joint_attack(fresh, public), "joint", fresh, POLICY) == [(("s2", "Total", "Y"), 3.0, 18.0)]

    grown, ids = release.with_cells(pl.DataFrame({POPULATION: ["pupils"], "school": ["Total"], "sex": ["F"], "fsm": ["Y"]}))
    assert grown.cells.height == release.cells.height + 1 and grown.cells["value"][ids[0]] == 16
    result = protect(grown, POLICY, prior=Prior(public={ids[0]: "the DfE's school census tables"}))
    cells = population_cells(result.cells, grown, "pupils", part)
    shown = cells.filter(pl.col("cell_id") == ids[0]).select("status", "reason", "tables").row(0)
    assert shown == ("published", "already published in the DfE's school census tables", [])
    secondaries = lambda c: c.filter(pl.col("status") == "secondary").height  # noqa: E731
    assert (secondaries(fresh), secondaries(cells)) == (6, 8)
    assert unprotected(joint_attack(cells, public), "joint", cells, POLICY) == []
    assert "1 cells were already published elsewhere, so they are shown" in result.notes


# One child leaves cell (B, x) between two releases of a 3 x 3 table. Protected afresh, the second release hides
# a different rectangle around the primary (C, y) = 3, and with both releases and the knowledge that one child
# moved, an intruder pins that 3 exactly; carried forward, the pattern gives nothing away.
FIRST = {("A", "x"): 12, ("A", "y"): 6, ("A", "z"): 25, ("B", "x"): 12, ("B", "y"): 12, ("B", "z"): 12,
         ("C", "x"): 6, ("C", "y"): 3, ("C", "z"): 8}
SECOND = FIRST | {("B", "x"): 11}


def grid(counts: dict) -> pl.DataFrame:
    return pl.DataFrame([{"a": a, "b": b, "n": n} for (a, b), n in counts.items()])


def differencing_intervals(before: pl.DataFrame, after: pl.DataFrame, movers: int) -> dict[tuple, tuple[float, float]]:
    """Each hidden cell of either release (release, a, b) -> [min, max] when both are known and the inner cells
    of the two differ by at most `movers` units in all."""
    releases = {"before": before, "after": after}
    attack = Attack({name: (["a", "b"], cells) for name, cells in releases.items()})
    n = len(attack.index)
    inner = [k for k in attack.index if k[0] == "after"]
    moved = {k: (n + 2 * i, n + 2 * i + 1) for i, k in enumerate(inner)}
    width = n + 2 * len(inner)
    pad = lambda row: np.concatenate([row, np.zeros(width - len(row))])  # noqa: E731
    attack.eq = [(pad(r), v) for r, v in attack.eq]
    for key, (up, down) in moved.items():
        row = np.zeros(width)
        row[attack.index[key]], row[attack.index[("before", key[1])]], row[up], row[down] = 1, -1, -1, 1
        attack.eq.append((row, 0.0))
    total = np.zeros(width)
    total[n:] = 1
    attack.ub.append((total, float(movers)))
    attack.row = lambda name, coords, sign=1.0, into=None, row=attack.row: pad(row(name, coords, sign))
    return {(name, r["a"], r["b"]): attack.interval(name, {"a": r["a"], "b": r["b"]})
            for name, cells in releases.items() for r in cells.filter(pl.col("status").is_in(HIDDEN)).iter_rows(named=True)}


def release_of(counts: dict):
    return release_table({"pupils": from_frequencies(grid(counts), ["a", "b"], "n")})


def earlier_prior_of(counts: dict, earlier: pl.DataFrame) -> Prior:
    """The Prior a run builds from the earlier release: its counts (kept by its run) and what its files show."""
    table = release_of(counts)
    hidden = set(earlier.filter(pl.col("status").is_in(HIDDEN))["cell_id"].to_list())
    return Prior(earlier=Earlier(table, frozenset(set(range(table.cells.height)) - hidden), frozenset(hidden)))


def test_carrying_the_pattern_forward_leaves_nothing_to_difference_where_a_fresh_pattern_gives_a_primary_back():
    first = protect(release_of(FIRST), POLICY).cells
    table = release_of(SECOND)
    fresh = protect(table, POLICY).cells
    hidden = lambda cells: sorted(k for k, v in statuses(cells, ["a", "b"]).items() if v in HIDDEN)  # noqa: E731
    assert hidden(first) == [("B", "y"), ("B", "z"), ("C", "y"), ("C", "z")]
    assert hidden(fresh) == [("B", "x"), ("B", "y"), ("C", "x"), ("C", "y")]
    pinned = {k: v for k, v in differencing_intervals(first, fresh, 1).items() if v[1] - v[0] < 1}
    assert set(pinned) == {("before", *k) for k in hidden(first)} | {("after", *k) for k in hidden(fresh)}  # all of it
    assert pinned[("before", "C", "y")] == pinned[("after", "C", "y")] == (3.0, 3.0)

    carried = protect(table, POLICY, prior=earlier_prior_of(FIRST, first))
    assert hidden(carried.cells) == hidden(first)
    assert carried.cells.filter((pl.col("a") == "B") & (pl.col("b") == "z"))["reason"].item() == \
        "hidden in the earlier release too, so that the two releases cannot be differenced"
    assert "4 cells hidden in the earlier release are hidden again" in carried.notes
    intervals = differencing_intervals(first, carried.cells, 1)
    assert all(high - low >= 4 for low, high in intervals.values()), intervals  # the 3 keeps 2 either way, and more


# Shown as 5 before, 4 now (one child left): the earlier release bounds it within one whatever this release hides.
# The total, row C and column y were shown in both and each fell by one, so unless some of them are hidden now an
# intruder with both releases sees that the child left (C, y) and pins it at exactly 4.
CROSSED_BEFORE = {("A", "x"): 4, ("A", "y"): 2, ("A", "z"): 1, ("B", "x"): 20, ("B", "y"): 12, ("B", "z"): 1,
                  ("C", "x"): 12, ("C", "y"): 5, ("C", "z"): 6}
EARLIER_POLICY = Policy(threshold=5, protection_level=10)  # the earlier release was protected more lightly


def test_a_count_that_crossed_the_threshold_is_reported_and_kept_from_being_worked_out_exactly():
    first = protect(release_of(CROSSED_BEFORE), EARLIER_POLICY).cells
    assert statuses(first, ["a", "b"])[("C", "y")] == "published"
    table = release_of(CROSSED_BEFORE | {("C", "y"): 4})
    alone = protect(table, POLICY).cells
    assert differencing_intervals(first, alone, 1)[("after", "C", "y")] == (4.0, 4.0)  # protected afresh: given away
    result = protect(table, POLICY, prior=earlier_prior_of(CROSSED_BEFORE, first))
    cell = result.cells.filter((pl.col("a") == "C") & (pl.col("b") == "y")).row(0, named=True)
    assert cell["status"] == "primary" and cell["reason"] == (
        "count 4 is below the threshold of 5; shown in the earlier release, which bounds it: differencing the two "
        "releases narrows it whatever this release hides, and it is kept from being worked out exactly")
    assert cell["protected"] and cell["protected_against_both"] is False
    low, high = differencing_intervals(first, result.cells, 1)[("after", "C", "y")]
    assert low == 4 and high >= 5
    assert ("1 primary cells were shown in the earlier release: differencing the two releases bounds them, whatever "
            "this release hides; they are kept from being worked out exactly") in result.notes
    assert result.summary()["audit"]["passed"]  # and fully protected against an intruder without the earlier release
    assert unprotected(Attack({"t": (["a", "b"], result.cells)}), "t", result.cells, POLICY) == []


# (A, z) was a hidden 4 (a primary) and is 5 now, no longer a primary: showing this release's 5 would give the
# earlier 4 back to within one, so the earlier primary's protection keeps it hidden.
GREW = {("A", "x"): 4, ("A", "y"): 4, ("A", "z"): 4, ("B", "x"): 3, ("B", "y"): 20, ("B", "z"): 2,
        ("C", "x"): 2, ("C", "y"): 8, ("C", "z"): 20, ("D", "x"): 2, ("D", "y"): 6, ("D", "z"): 6}


def test_a_count_that_outgrew_the_threshold_stays_hidden_for_the_earlier_releases_sake():
    first = protect(release_of(GREW), POLICY).cells
    assert statuses(first, ["a", "b"])[("A", "z")] == "primary"
    result = protect(release_of(GREW | {("A", "z"): 5}), POLICY, prior=earlier_prior_of(GREW, first))
    assert statuses(result.cells, ["a", "b"])[("A", "z")] == "secondary"
    low, high = differencing_intervals(first, result.cells, 1)[("before", "A", "z")]
    assert low <= 2 and high >= 6  # the earlier 4 keeps its 2 either way


def test_a_primary_the_earlier_files_left_out_is_owed_its_protection_as_one_they_hid():
    """The earlier files did not write (A, z) at all (a category the publication leaves out), so it was neither
    shown nor hidden there: it is as hidden as the cells they hid, and this release's 5 must not give its 4 back."""
    first = protect(release_of(GREW), POLICY).cells
    table = release_of(GREW)
    left_out = table.cells.filter((pl.col("a") == "A") & (pl.col("b") == "z"))["cell_id"].item()
    hidden = set(first.filter(pl.col("status").is_in(HIDDEN))["cell_id"].to_list()) - {left_out}
    prior = Prior(earlier=Earlier(table, frozenset(set(range(table.cells.height)) - hidden - {left_out}), frozenset(hidden)))
    result = protect(release_of(GREW | {("A", "z"): 5}), POLICY, prior=prior)
    assert statuses(result.cells, ["a", "b"])[("A", "z")] == "secondary"
    low, high = differencing_intervals(first, result.cells, 1)[("before", "A", "z")]
    assert low <= 2 and high >= 6


def test_the_pattern_does_not_depend_on_the_clock(monkeypatch):
    """A slow machine, simulated: every clock reading jumps an hour. Work limits, not budgets, end each step."""
    table = from_frequencies(grid({(f"r{i}", f"c{j}"): (i * 7 + j * 3) % 11 + (i + j) % 3 for i in range(6) for j in range(5)}),
                             ["a", "b"], "n")
    expected = {m: protect(table, POLICY, method=m) for m in ("fast", "optimal")}
    assert expected["optimal"].method == "optimal"  # it finished within its work limit, not fell back
    clock = itertools.count(0.0, 3600.0)
    for name in ("monotonic", "perf_counter", "time"):
        monkeypatch.setattr(time, name, lambda: next(clock))
    for method, result in expected.items():
        again = protect(table, POLICY, method=method)
        assert again.method == method and again.cells.equals(result.cells), method


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("FM"), st.booleans()), min_size=5, max_size=60),
       st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from(["2YO", "U34"]), st.sampled_from(["Economic", "Looked after"])),
                min_size=4, max_size=50),
       st.sampled_from([3, 5]))
def test_random_nested_and_sum_linked_releases_resist_an_independent_joint_attack(pupils, children, threshold):
    policy = Policy(threshold=threshold)
    on_roll = pl.DataFrame([{"area": a, "sex": s} for a, s, _ in pupils])
    absent = pl.DataFrame([{"area": a, "sex": s} for a, s, flag in pupils if flag], schema={"area": pl.String, "sex": pl.String})
    funded = pl.DataFrame([{"area": a, "entitlement": e, "basis": b if e == "2YO" else "none"} for a, e, b in children])
    parts = {"on_roll": from_microdata(on_roll, [TableSpec("pupils", ("area", "sex"))]),
             "children": from_microdata(funded, [TableSpec("by_entitlement", ("area", "entitlement")),
                                                 TableSpec("by_basis", ("area", "basis"))])}
    nestings = []
    if absent.height:
        parts["absent"] = from_microdata(absent, [TableSpec("absence", ("area", "sex"))])
        nestings = [Nesting("absent", "on_roll")]
    release = release_table(parts, nestings)
    result = protect(release, policy)
    assert result.summary()["audit"]["passed"]
    cells = {name: population_cells(result.cells, release, name, part) for name, part in parts.items()}
    tables = {"pupils": (["area", "sex"], cells["on_roll"]),
              "by_entitlement": (["area", "entitlement"], cells["children"].filter(pl.col("basis") == T)),
              "by_basis": (["area", "basis"], cells["children"].filter(pl.col("entitlement") == T))}
    if "absent" in cells:
        tables["absence"] = (["area", "sex"], cells["absent"])
    attack = Attack(tables)
    attack.linked("by_entitlement", "by_basis", ["area"])
    bases = [b for b in attack.leaves["by_basis"]["basis"] if b != "none"]
    if "2YO" in attack.leaves["by_entitlement"]["entitlement"]:
        attack.linked("by_basis", "by_entitlement", ["area"], a_levels={"basis": bases}, b_fixed={"entitlement": "2YO"})
    if "absence" in tables:
        shared = [d for d in ("area", "sex") if set(attack.leaves["absence"][d]) <= set(attack.leaves["pupils"][d])]
        attack.linked("absence", "pupils", shared, "<=")
    for name, (_, table_cells) in tables.items():
        assert unprotected(attack, name, table_cells, policy) == [], name
