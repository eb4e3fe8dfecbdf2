"""Disclosure control on designed tables with exactly expected statuses, and random tables attacked by an
LP written here, independently of the library's own audit (scipy's linprog, not disclosure_control.audit)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.optimize import linprog

from disclosure_control.hierarchy import Hierarchy, HierarchyError
from disclosure_control.policy import Dominance, Policy, PolicyError, parse_policy
from disclosure_control.prior import Prior
from disclosure_control.protect import protect
from disclosure_control.table import (CONTRIBUTOR, VALUE, TableError, TableSpec, amounts_of, from_frequencies,
                                      from_microdata)

T = "Total"


def statuses(result, dims) -> dict[tuple, str]:
    return {tuple(r[d] for d in dims): r["status"] for r in result.cells.iter_rows(named=True)}


def frequency_table(rows: dict[tuple[str, str], int]) -> pl.DataFrame:
    return pl.DataFrame([{"a": a, "b": b, "n": n} for (a, b), n in rows.items()])


def attack(result, tables: dict[str, list[str]]) -> dict[int, tuple[float, float]]:
    """Independent interval attack on one or more linked tables.

    Each table has its own unknowns: its suppressed inner cells (>= 0). Every published cell is an equation
    in every table that holds it; a suppressed cell that two tables share ties their sums together. Returns
    each suppressed cell's [min, max] (from the first table holding it).
    """
    cells = result.cells
    all_dims = [d for d in cells.columns if d in {x for dims in tables.values() for x in dims}]
    unknown, known = [], {}
    for name, dims in tables.items():
        others = [d for d in all_dims if d not in dims]
        inner = cells.filter(pl.all_horizontal([pl.col(d) != T for d in dims] + [pl.col(d) == T for d in others]))
        for r in inner.iter_rows(named=True):
            k = (name, tuple(r[d] for d in dims))
            if r["status"] == "published":
                known[k] = r["value"]
            else:
                unknown.append(k)
    index = {k: i for i, k in enumerate(unknown)}
    leaves = {d: sorted(set(cells.filter(pl.col(d) != T)[d])) for d in all_dims}

    def expression(cell: dict, name: str) -> tuple[np.ndarray, float]:
        dims = tables[name]
        row, constant = np.zeros(len(unknown)), 0.0
        for k in itertools.product(*[leaves[d] if cell[d] == T else [cell[d]] for d in dims]):
            if (name, k) in index:
                row[index[(name, k)]] += 1
            else:
                constant += known.get((name, k), 0)
        return row, constant

    a_eq, b_eq = [], []
    for cell in cells.iter_rows(named=True):
        holders = [t for t in cell["tables"] if t in tables]
        parts = [expression(cell, t) for t in holders]
        if cell["status"] == "published":
            for row, constant in parts:
                if row.any():
                    a_eq.append(row)
                    b_eq.append(cell["value"] - constant)
        else:
            for (row1, c1), (row2, c2) in zip(parts, parts[1:]):
                a_eq.append(row1 - row2)
                b_eq.append(c2 - c1)
    out = {}
    for cell in cells.filter(pl.col("status") != "published").iter_rows(named=True):
        row, constant = expression(cell, [t for t in cell["tables"] if t in tables][0])
        bounds = []
        for sign in (1, -1):
            solved = linprog(sign * row, A_eq=np.array(a_eq) if a_eq else None, b_eq=b_eq or None, bounds=(0, None), method="highs")
            assert solved.status in (0, 3), solved.message
            bounds.append(np.inf if solved.status == 3 else constant + sign * solved.fun)
        out[cell["cell_id"]] = (bounds[0], bounds[1])
    return out


def assert_protected(result, tables: dict[str, list[str]], policy: Policy):
    intervals = attack(result, tables)
    for r in result.cells.filter(pl.col("status") == "primary").iter_rows(named=True):
        low, high = intervals[r["cell_id"]]
        v = r["value"]
        need = max(1.0, np.ceil(policy.protection_level / 100 * v))
        assert high >= v + need - 1e-6 and low <= v - min(v, need) + 1e-6, (r, low, high)


def test_two_by_two_one_primary_needs_all_four_inner_cells():
    """Suppressing only the small cell is undone by subtraction from the margins."""
    table = from_frequencies(frequency_table({("x", "p"): 1, ("x", "q"): 15, ("y", "p"): 17, ("y", "q"): 19}), ["a", "b"], "n")
    result = protect(table, Policy(threshold=3))
    got = statuses(result, ["a", "b"])
    assert got[("x", "p")] == "primary"
    assert {got[k] for k in [("x", "q"), ("y", "p"), ("y", "q")]} == {"secondary"}
    assert {got[k] for k in got if T in k} == {"published"}
    row = result.cells.filter((pl.col("a") == "x") & (pl.col("b") == "p")).row(0, named=True)
    assert (row["lower"], row["upper"], row["display"], row["rule"]) == (0.0, 16.0, "c", "frequency")


def test_row_with_one_primary_takes_the_cheapest_rectangle():
    table = from_frequencies(frequency_table({
        ("r1", "c1"): 2, ("r1", "c2"): 20, ("r1", "c3"): 30,
        ("r2", "c1"): 40, ("r2", "c2"): 50, ("r2", "c3"): 60,
    }), ["a", "b"], "n")
    result = protect(table, Policy(threshold=3))
    got = statuses(result, ["a", "b"])
    assert got[("r1", "c1")] == "primary"
    assert [k for k, s in got.items() if s == "secondary"] == [("r1", "c2"), ("r2", "c1"), ("r2", "c2")]
    assert result.summary()["information_loss"] == {"secondary_cells": 3, "secondary_value": 110.0}


def test_hierarchy_child_recoverable_from_its_parent_gets_a_partner():
    hierarchy = Hierarchy.from_children("school", {T: ["D1", "D2"], "D1": ["S1", "S2"], "D2": ["S3", "S4"]})
    frame = pl.DataFrame({"school": ["S1", "S2", "S3", "S4"], "n": [2, 30, 40, 50]})
    result = protect(from_frequencies(frame, ["school"], "n", {"school": hierarchy}), Policy(threshold=3))
    got = {k[0]: s for k, s in statuses(result, ["school"]).items()}
    assert got == {T: "published", "D1": "published", "D2": "published", "S1": "primary", "S2": "secondary",
                   "S3": "published", "S4": "published"}


def test_linked_tables_share_one_status_for_a_shared_margin_and_resist_attack_across_them():
    rows = []
    for school, sexes, sens in [("A", {"M": 12, "F": 14}, {"E": 2, "K": 8, "N": 16}), ("B", {"M": 20, "F": 22}, {"E": 5, "K": 9, "N": 28}),
                                ("C", {"M": 2, "F": 30}, {"E": 4, "K": 6, "N": 22})]:
        sex_list = [s for s, n in sexes.items() for _ in range(n)]
        sen_list = [s for s, n in sens.items() for _ in range(n)]
        rows += [{"school": school, "sex": x, "sen": y} for x, y in zip(sex_list, sen_list, strict=True)]
    micro = pl.DataFrame(rows)
    tables = [TableSpec("by_sex", ("school", "sex")), TableSpec("by_sen", ("school", "sen"))]
    policy = Policy(threshold=5)
    result = protect(from_microdata(micro, tables), policy)
    shared = result.cells.filter((pl.col("sex") == T) & (pl.col("sen") == T)).sort("school")
    assert shared.height == 4 and shared["tables"].list.len().min() == 2
    assert shared["value"].to_list() == [26, 42, 32, 100]  # schools A, B, C, then the grand total
    assert result.cells.filter((pl.col("school") == "C") & (pl.col("sex") == "M"))["value"].item() == 2
    assert result.summary()["audit"]["passed"]
    assert result.cells.filter(pl.col("status") == "primary").height >= 3
    assert_protected(result, {"by_sex": ["school", "sex"], "by_sen": ["school", "sen"]}, policy)


def test_a_singleton_cannot_subtract_itself_to_read_another_primary():
    """The one pupil in (x, p) knows that cell; with only (x, p) and (x, q) hidden in row x they would read (x, q)."""
    table = from_frequencies(frequency_table({
        ("x", "p"): 1, ("x", "q"): 4, ("x", "r"): 20, ("x", "s"): 25,
        ("y", "p"): 17, ("y", "q"): 19, ("y", "r"): 22, ("y", "s"): 30,
        ("z", "p"): 21, ("z", "q"): 23, ("z", "r"): 26, ("z", "s"): 28,
    }), ["a", "b"], "n")

    def interval_known_to_the_singleton(policy):
        result = protect(table, policy)
        singleton = (pl.col("a") == "x") & (pl.col("b") == "p")
        known = result.cells.with_columns(status=pl.when(singleton).then(pl.lit("published")).otherwise("status"))
        cell = result.cells.filter((pl.col("a") == "x") & (pl.col("b") == "q"))["cell_id"].item()
        return attack(type(result)(known, result.audit, result.policy, result.method), {"table": ["a", "b"]})[cell]

    low, high = interval_known_to_the_singleton(Policy(threshold=5, protection_level=10, protect_singletons=False))
    assert low == high == 4  # the table alone hides it, the singleton's member does not
    low, high = interval_known_to_the_singleton(Policy(threshold=5, protection_level=10))
    assert low < 4 < high


def test_no_primary_means_everything_published():
    table = from_frequencies(frequency_table({("x", "p"): 10, ("x", "q"): 15, ("y", "p"): 17, ("y", "q"): 19}), ["a", "b"], "n")
    result = protect(table, Policy(threshold=3))
    assert set(result.cells["status"]) == {"published"}
    assert result.summary()["audit"]["passed"]


def test_zeros_follow_the_policy_and_structural_zeros_are_z():
    frame = frequency_table({("x", "p"): 0, ("x", "q"): 15, ("y", "p"): 17, ("y", "q"): 0})
    table = from_frequencies(frame, ["a", "b"], "n")
    assert statuses(protect(table, Policy(threshold=3)), ["a", "b"])[("x", "p")] == "published"
    assert statuses(protect(table, Policy(threshold=3, zeros="suppress")), ["a", "b"])[("x", "p")] == "primary"
    structural = pl.DataFrame({"a": ["y"], "b": ["q"]})
    result = protect(table, Policy(threshold=3, zeros="suppress"), structural=structural)
    row = result.cells.filter((pl.col("a") == "y") & (pl.col("b") == "q")).row(0, named=True)
    assert (row["status"], row["display"]) == ("structural_zero", "z")


def test_dominance_and_p_percent_on_a_magnitude_table():
    micro = pl.DataFrame({
        "district": ["D1"] * 4 + ["D2"] * 4,
        "provider": ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"],
        "funding": [9000.0, 500.0, 300.0, 200.0, 2500.0, 2400.0, 2600.0, 2500.0],
    })
    table = from_microdata(micro, [TableSpec("funding", ("district",))], magnitude="funding", contributor="provider")
    dominance = protect(table, parse_policy({"threshold": 1, "dominance": {"n": 1, "k": 80}}))
    assert statuses(dominance, ["district"])[("D1",)] == "primary"
    assert statuses(dominance, ["district"])[("D2",)] == "secondary"  # else D1 = Total - D2
    p_rule = protect(table, parse_policy({"threshold": 1, "p_percent": 10}))
    assert statuses(p_rule, ["district"])[("D1",)] == "primary"  # others hold 500, under 10% of 9000
    assert "p_percent" not in (p_rule.cells.filter(pl.col("district") == "D2")["rule"].to_list())


def _places(district: str, kind: str, provider: str, n: int, hours: float) -> list[dict]:
    return [{"district": district, "type": kind, "provider": provider, "hours": hours}] * n


def test_amounts_beside_counts_get_dominance_and_p_percent_and_both_resist_an_independent_attack():
    """Funded places by district and provider type, with the funded hours in the same cells: one provider alone
    (D1 A), one dominant provider among eleven (D2 A: 86%, the others hold more than 10% of it), two close
    providers (D3 A: p% only) and a count under the threshold (D3 B)."""
    micro = pl.DataFrame(
        _places("D1", "A", "p1", 6, 570.0) + [r for i in range(4) for r in _places("D1", "B", f"q{i}", 2, 300.0)]
        + _places("D2", "A", "p2", 4, 215.0) + [r for i in range(10) for r in _places("D2", "A", f"s{i}", 1, 14.0)]
        + [r for i in range(3) for r in _places("D2", "B", f"t{i}", 3, 250.0)]
        + _places("D3", "A", "p4", 5, 100.0) + _places("D3", "A", "p5", 4, 120.0) + _places("D3", "A", "p6", 1, 20.0)
        + _places("D3", "B", "u1", 1, 300.0) + _places("D3", "B", "u2", 1, 310.25))
    table = from_microdata(micro, [TableSpec("places", ("district", "type"))])
    hours = amounts_of(table, "hours", micro.select("district", "type", pl.col("provider").alias(CONTRIBUTOR),
                                                    pl.col("hours").alias(VALUE)))
    policy = parse_policy({"threshold": 3, "dominance": {"n": 1, "k": 85}, "p_percent": 10})
    result = protect(table, policy, amounts=[hours])
    rules = {(r["district"], r["type"]): r["rule"] for r in result.cells.iter_rows(named=True)}
    assert {k: v for k, v in rules.items() if v} == {("D1", "A"): "dominance+p_percent", ("D2", "A"): "dominance",
                                                     ("D3", "A"): "p_percent", ("D3", "B"): "frequency+p_percent"}
    assert statuses(result, ["district", "type"]) == {
        (T, T): "published", ("D1", T): "published", ("D2", T): "published", ("D3", T): "published",
        (T, "A"): "published", (T, "B"): "published", ("D1", "A"): "primary", ("D1", "B"): "secondary",
        ("D2", "A"): "primary", ("D2", "B"): "secondary", ("D3", "A"): "primary", ("D3", "B"): "primary"}
    row = result.cells.filter((pl.col("district") == "D3") & (pl.col("type") == "B")).row(0, named=True)
    assert (row["hours"], row["protected"], row["hours_protected"]) == (610.25, True, True)
    dominated = result.cells.filter((pl.col("district") == "D1") & (pl.col("type") == "A")).row(0, named=True)
    assert (dominated["protected"], dominated["hours_protected"]) == (False, True)  # its count of 6 is not at risk

    class InHours:  # the same pattern, attacked in the hours
        cells = result.cells.with_columns(pl.col("hours").alias("value"))
    intervals = attack(InHours, {"places": ["district", "type"]})
    for r in InHours.cells.filter(pl.col("status") == "primary").iter_rows(named=True):
        low, high = intervals[r["cell_id"]]
        need = max(1.0, np.ceil(policy.protection_level / 100 * r["value"]))
        assert high >= r["value"] + need - 1e-6 and low <= r["value"] - min(r["value"], need) + 1e-6, (r, low, high)
    counts = attack(result, {"places": ["district", "type"]})
    low, high = counts[row["cell_id"]]
    assert low <= 1 and high >= 3  # the count of 2 keeps its protection too


def test_amounts_must_lie_in_the_count_tables_cells():
    table = from_frequencies(frequency_table({("x", "p"): 3, ("x", "q"): 15}), ["a", "b"], "n")
    stray = pl.DataFrame({"a": ["y"], "b": ["p"], CONTRIBUTOR: ["c1"], VALUE: [5.0]})
    with pytest.raises(TableError, match="amounts of hours: 1 contributions fall outside the cells"):
        amounts_of(table, "hours", stray)
    negative = pl.DataFrame({"a": ["x"], "b": ["p"], CONTRIBUTOR: ["c1"], VALUE: [-5.0]})
    with pytest.raises(TableError, match="non-negative amount"):
        amounts_of(table, "hours", negative)


def test_group_disclosure_flags_a_school_where_everyone_shares_a_sensitive_category():
    frame = frequency_table({("A", "FSM"): 0, ("A", "NOT"): 25, ("B", "FSM"): 12, ("B", "NOT"): 30})
    table = from_frequencies(frame.rename({"a": "school", "b": "fsm"}), ["school", "fsm"], "n")
    result = protect(table, parse_policy({"threshold": 3, "group_disclosure": ["fsm"]}))
    got = statuses(result, ["school", "fsm"])
    assert got[("A", "NOT")] == "primary"
    assert result.cells.filter(pl.col("status") == "primary")["rule"].to_list() == ["group"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(2, 4), st.integers(2, 4),
    st.lists(st.integers(0, 25), min_size=16, max_size=16),
    st.sampled_from([3, 5, 10]),
)
def test_random_tables_resist_an_independent_lp_attack(n_rows, n_cols, counts, threshold):
    cells = {(f"r{i}", f"c{j}"): counts[i * n_cols + j] for i in range(n_rows) for j in range(n_cols)}
    policy = Policy(threshold=threshold)
    result = protect(from_frequencies(frequency_table(cells), ["a", "b"], "n"), policy)
    assert_protected(result, {"table": ["a", "b"]}, policy)
    assert result.summary()["audit"]["passed"]


def test_a_magnitude_rule_on_a_count_table_is_an_error_not_ignored():
    table = from_frequencies(frequency_table({("x", "p"): 3, ("x", "q"): 15, ("y", "p"): 17, ("y", "q"): 19}), ["a", "b"], "n")
    for policy, key in ((Policy(threshold=5, dominance=Dominance(1, 85)), "dominance"), (Policy(threshold=5, p_percent=10), "p_percent")):
        with pytest.raises(PolicyError, match=f"^{key}: applies to magnitude tables"):
            protect(table, policy)


def test_policy_errors_name_the_key():
    for raw, key in [({"threshhold": 5}, "threshhold"), ({"threshold": -1}, "threshold"), ({"method": "magic"}, "method"),
                     ({"dominance": {"n": 1}}, "dominance"), ({"symbols": {"secret": "c"}}, "symbols")]:
        with pytest.raises(PolicyError, match=key):
            parse_policy(raw)


def test_bad_tables_are_refused_clearly():
    frame = frequency_table({("x", "p"): 1, ("x", "q"): 2})
    with pytest.raises(TableError, match="unknown dimension 'c'"):
        from_frequencies(frame, ["a", "c"], "n")
    with pytest.raises(TableError, match="non-negative whole counts"):
        from_frequencies(frame.with_columns(n=pl.Series([1, -2])), ["a", "b"], "n")
    with pytest.raises(TableError, match="does not cover code 'q'"):
        from_frequencies(frame, ["a", "b"], "n", {"b": Hierarchy.from_children("b", {T: ["p"]})})
    with pytest.raises(HierarchyError, match="appears twice"):
        Hierarchy.from_children("b", {T: ["p", "q"], "p": ["q"]})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(2, 3), st.integers(2, 4),
    st.lists(st.integers(0, 20), min_size=12, max_size=12),
)
def test_optimal_is_safe_and_never_loses_more_than_fast(n_rows, n_cols, counts):
    from disclosure_control.secondary import cell_costs

    cells = {(f"r{i}", f"c{j}"): counts[i * n_cols + j] for i in range(n_rows) for j in range(n_cols)}
    policy = Policy(threshold=5)
    table = from_frequencies(frequency_table(cells), ["a", "b"], "n")
    fast, optimal = protect(table, policy, method="fast"), protect(table, policy, method="optimal")
    assert optimal.method == "optimal" and optimal.summary()["audit"]["passed"]
    assert_protected(optimal, {"table": ["a", "b"]}, policy)
    costs = cell_costs(table, policy)
    loss = lambda r: costs[r.cells.filter(pl.col("status") == "secondary")["cell_id"].to_numpy()].sum()  # noqa: E731
    assert loss(optimal) <= loss(fast) + 1e-9


def test_optimal_falls_back_to_fast_at_its_work_limit_and_says_so():
    rng = np.random.default_rng(3)
    cells = {(f"r{i}", f"c{j}"): int(rng.choice([1, 3, 40, 55, 70])) for i in range(40) for j in range(30)}
    result = protect(from_frequencies(frequency_table(cells), ["a", "b"], "n"), parse_policy({"threshold": 5, "optimal_solves": 50}),
                     method="optimal")
    assert result.method == "fast" and result.notes[0] == "the optimal method used its 50 attacker solves; the fast method was used instead"
    assert result.summary()["audit"]["passed"]


def test_rounding_publishes_low_for_small_non_zero_counts_and_leaves_suppression_alone():
    from disclosure_control.rounding import round_published

    table = from_frequencies(frequency_table({("x", "p"): 1, ("x", "q"): 12, ("y", "p"): 17, ("y", "q"): 2}), ["a", "b"], "n")
    protected = protect(table, parse_policy({"threshold": 1, "rounding_base": 5}))
    rounded = round_published(protected)
    shown = {(r["a"], r["b"]): (r["status"], r["display"]) for r in rounded.cells.iter_rows(named=True)}
    assert shown[("x", "p")] == ("rounded", "low") and shown[("x", "q")] == ("rounded", "10")
    assert shown[("y", "q")] == ("rounded", "low") and shown[(T, T)] == ("rounded", "30")
    suppressed = round_published(protect(table, parse_policy({"threshold": 3, "rounding_base": 5})))
    assert {s for s, d in ((r["status"], r["display"]) for r in suppressed.cells.iter_rows(named=True)) if d == "c"} == {"primary", "secondary"}


def test_percentages_are_suppressed_with_their_counts_and_flag_small_denominators():
    from disclosure_control.rounding import percentages

    numerator = pl.DataFrame({"cell_id": [0, 1, 2, 3, 4], "school": ["A", "B", "C", "D", "E"], "value": [2, 10, 0, 5, 12],
                              "status": ["primary", "published", "published", "published", "rounded"],
                              "display": ["c", "10", "0", "5", "10"]})
    denominator = pl.DataFrame({"school": ["A", "B", "C", "D", "E"], "value": [40, 50, 0, 20, 41],
                                "status": ["published", "published", "published", "secondary", "rounded"],
                                "display": ["40", "50", "0", "c", "40"]})
    got = percentages(numerator, denominator, ["school"], Policy(small_denominator=30)).sort("cell_id")
    assert got["percent"].to_list() == ["c", "20.0", "z", "c", "25.0"]  # rounded cells: 10 of 40, not 12 of 41
    assert got["small_denominator"].to_list() == [False, False, True, False, False]


def test_a_secondary_cell_that_the_published_cells_fix_exactly_is_found_to_be_shown():
    """A rectangle protects the primary A-x; C-z, hidden alone in its row, is fixed by row C's total, so hiding
    it protects nothing and anyone could undo it: it is the only cell determined_secondaries gives back."""
    from disclosure_control.audit import audit
    from disclosure_control.primary import primary_cells
    from disclosure_control.prior import Attacker, required_protection
    from disclosure_control.protect import determined_secondaries

    frame = pl.DataFrame({"row": ["A", "A", "A", "B", "B", "B", "C", "C", "C"], "col": ["x", "y", "z"] * 3,
                          "n": [3, 14, 40, 30, 31, 50, 20, 22, 60]})
    table = from_frequencies(frame, ["row", "col"], "n")
    ids = {(r["row"], r["col"]): r["cell_id"] for r in table.cells.iter_rows(named=True)}
    primary = {ids[("A", "x")]}
    suppressed = primary | {ids[("A", "y")], ids[("B", "x")], ids[("B", "y")], ids[("C", "z")]}
    policy = Policy(threshold=5)
    required = required_protection(table, set(primary_cells(table, policy)["cell_id"]), policy)
    checked = audit(table, suppressed, required)
    plain = Attacker("this release", frozenset(), required)
    assert determined_secondaries(table, [plain], suppressed, primary, checked, 10) == ({ids[("C", "z")]}, set())


def test_an_amount_tied_to_another_is_attacked_with_it():
    """Funding is each type's known hourly rate times the hours. Published side by side, a district's hours and
    funding totals are two equations in its two hidden cells, which fix both; attacked one amount at a time that
    pattern looks safe. Tied, the intruder attacks the two together, and an independent LP over both shows every
    primary keeps its protection level in hours and in funding, the small count with no hours (D4 B) too: the
    rate holds there as everywhere, whatever hours the intruder tries."""
    rates = {"A": 5.0, "B": 8.0}
    micro = pl.DataFrame(
        [r for i in range(5) for r in _places("D1", "A", f"a{i}", 2, 100.0)] + _places("D1", "B", "b1", 6, 120.0)
        + [r for i in range(6) for r in _places("D2", "A", f"c{i}", 2, 90.0)]
        + [r for i in range(6) for r in _places("D2", "B", f"d{i}", 2, 110.0)]
        + [r for i in range(4) for r in _places("D3", "A", f"e{i}", 3, 95.0)]
        + [r for i in range(5) for r in _places("D3", "B", f"f{i}", 2, 105.0)]
        + [r for i in range(4) for r in _places("D4", "A", f"g{i}", 3, 80.0)] + _places("D4", "B", "h1", 2, 0.0))
    micro = micro.with_columns(funding=pl.col("hours") * pl.col("type").replace_strict(rates, return_dtype=pl.Float64))
    table = from_microdata(micro, [TableSpec("places", ("district", "type"))])

    def amount(column: str, tied_to: str | None = None):
        rows = micro.select("district", "type", pl.col("provider").alias(CONTRIBUTOR), pl.col(column).alias(VALUE))
        rate = table.inner["type"].replace_strict(rates, return_dtype=pl.Float64).to_numpy()  # known in every
        return amounts_of(table, column, rows, tied_to=tied_to, multiples=(rate, rate) if tied_to else None)  # cell
    policy = parse_policy({"threshold": 3, "dominance": {"n": 1, "k": 85}})
    separate = protect(table, policy, amounts=[amount("hours"), amount("funding")])
    tied = protect(table, policy, amounts=[amount("hours"), amount("funding", tied_to="hours")])
    assert statuses(separate, ["district", "type"])[("D1", "B")] == statuses(tied, ["district", "type"])[("D1", "B")] == "primary"
    shown = {(r["district"], r["type"]): r for r in separate.cells.iter_rows(named=True)}
    assert shown[("D1", T)]["status"] == "published"  # one amount at a time, D1's totals are shown, and they fix
    worked_out = (shown[("D1", T)]["funding"] - rates["A"] * shown[("D1", T)]["hours"]) / (rates["B"] - rates["A"])
    assert worked_out == shown[("D1", "B")]["hours"] == 720  # its dominated cell exactly
    assert statuses(tied, ["district", "type"])[("D1", T)] == "secondary"
    cells = tied.cells
    inner = cells.filter((pl.col("district") != T) & (pl.col("type") != T)).sort("cell_id")
    index = {(r["district"], r["type"]): i for i, r in enumerate(inner.iter_rows(named=True))}
    hidden = [k for k, s in zip(index, inner["status"], strict=True) if s != "published"]

    def under(cell: dict) -> list[tuple]:
        return [k for k in index if cell["district"] in (T, k[0]) and cell["type"] in (T, k[1])]
    a_eq, b_eq = [], []
    for cell in cells.filter(pl.col("status") == "published").iter_rows(named=True):
        for column, weight in (("hours", lambda k: 1.0), ("funding", lambda k: rates[k[1]])):
            row = np.array([weight(k) if k in under(cell) else 0.0 for k in hidden])
            known = sum(weight(k) * inner.row(index[k], named=True)["hours"] for k in under(cell) if k not in hidden)
            if row.any():
                a_eq.append(row)
                b_eq.append(cell[column] - known)
    for cell in cells.filter(pl.col("status") == "primary").iter_rows(named=True):
        for column, weight in (("hours", lambda k: 1.0), ("funding", lambda k: rates[k[1]])):
            objective = np.array([weight(k) if k in under(cell) else 0.0 for k in hidden])
            constant = sum(weight(k) * inner.row(index[k], named=True)["hours"] for k in under(cell) if k not in hidden)
            low, high = (constant + sign * linprog(sign * objective, A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None),
                                                   method="highs").fun for sign in (1, -1))
            need = max(1.0, np.ceil(policy.protection_level / 100 * cell[column]))
            assert high >= cell[column] + need - 1e-6 and low <= cell[column] - min(cell[column], need) + 1e-6, (column, cell)
    assert tied.cells["funding_protected"].filter(tied.cells["status"] == "primary").all()


def test_a_dominated_amount_stays_hidden_where_its_count_is_published_elsewhere():
    """Others publish the count of D1 A (the DfE's own figures, say), but not its hours, which one provider holds:
    the cell stays primary, and the intruder who has the count still cannot work out the hours."""
    micro = pl.DataFrame([r for d in ("D1", "D2") for t in ("A", "B") for i in range(6)
                          for r in _places(d, t, "big" if (d, t) == ("D1", "A") else f"p{i}{d}{t}", 1, 100.0)])
    table = from_microdata(micro, [TableSpec("places", ("district", "type"))])
    hours = amounts_of(table, "hours", micro.select("district", "type", pl.col("provider").alias(CONTRIBUTOR),
                                                    pl.col("hours").alias(VALUE)))
    ids = {(r["district"], r["type"]): r["cell_id"] for r in table.cells.iter_rows(named=True)}
    result = protect(table, parse_policy({"threshold": 3, "dominance": {"n": 1, "k": 85}}), amounts=[hours],
                     prior=Prior({ids[("D1", "A")]: "the DfE's file"}))
    got = statuses(result, ["district", "type"])
    assert got[("D1", "A")] == "primary" and got[("D1", "B")] == got[("D2", "A")] == got[("D2", "B")] == "secondary"
    assert result.cells.filter(pl.col("cell_id") == ids[("D1", "A")])["hours_protected"].item()


@pytest.mark.parametrize("seed", range(8))
def test_a_single_providers_cell_cannot_be_subtracted_from_a_sum_the_hours_and_funding_fix(seed):
    """Where one provider alone makes a primary cell, the sum of it and another primary along a margin must not be
    fixed by the hours and funding published (that provider would read the other cell off it), nor any primary
    narrowed: checked by LP on the joint model with the true rates, zero hours included."""
    from disclosure_control.audit import AttackModel
    from disclosure_control.singletons import singleton_cells, singleton_pairs
    from disclosure_control.table import joint_table

    rates, rng = {"U": 5.0, "E": 5.0, "Y": 8.0}, np.random.default_rng(seed)
    micro = pl.DataFrame([{"district": d, "type": t, "provider": f"p{int(rng.integers(0, providers))}{d}{t}",
                           "hours": float(rng.choice([0, 60, 100, 150]))}
                          for d in ("D1", "D2", "D3") for t in rates
                          for n, providers in [(int(rng.choice([1, 2, 3, 4, 6, 8])), int(rng.choice([1, 1, 2, 4])))]
                          for _ in range(n)])
    micro = micro.with_columns(funding=pl.col("hours") * pl.col("type").replace_strict(rates, return_dtype=pl.Float64))
    table = from_microdata(micro, [TableSpec("places", ("district", "type"))])
    rate = table.inner["type"].replace_strict(rates, return_dtype=pl.Float64).to_numpy()

    def amount(column: str, tied_to: str | None = None):
        rows = micro.select("district", "type", pl.col("provider").alias(CONTRIBUTOR), pl.col(column).alias(VALUE))
        return amounts_of(table, column, rows, tied_to=tied_to, multiples=(rate, rate) if tied_to else None)
    hours, funding = amount("hours"), amount("funding", "hours")
    policy = parse_policy({"threshold": 3, "dominance": {"n": 1, "k": 85}})
    result = protect(table, policy, amounts=[hours, funding])
    hidden = set(result.cells.filter(pl.col("status") != "published")["cell_id"].to_list())
    primary = set(result.cells.filter(pl.col("status") == "primary")["cell_id"].to_list())
    joint, n = joint_table(hours, [funding]), table.cells.height
    m = joint.membership.tocsc()
    for s, p in singleton_pairs(table, primary, singleton_cells(hours.table, primary)):
        for k in (0, 1):
            summed = m[:, [s + k * n]] + m[:, [p + k * n]]
            row = joint.cells[s].with_columns(pl.lit(2 * n, pl.Int64).alias("cell_id"),
                                              pl.lit(joint.cell_values[s + k * n] + joint.cell_values[p + k * n]).alias(VALUE))
            grown = replace(joint, membership=sparse.hstack([m, summed]).tocsc(), cells=pl.concat([joint.cells, row]))
            attack = AttackModel(grown, hidden | {c + n for c in hidden} | {2 * n})
            assert attack.reach(2 * n, True) - attack.reach(2 * n, False) > 1e-6, (s, p, k)
    attack = AttackModel(joint, hidden | {c + n for c in hidden})
    for c in primary:
        for k in (0, 1):
            value, low, high = joint.cell_values[c + k * n], attack.reach(c + k * n, False), attack.reach(c + k * n, True)
            need = max(1.0, np.ceil(policy.protection_level / 100 * value))
            assert high >= value + need - 1e-6 and low <= value - min(value, need) + 1e-6, (c, k)
