"""The census return end to end: one real Prefect flow run (test harness) on a small generated county."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from tests.ees_screener import screen, text_csv
from disclosure_control.policy import PolicyError
from pipelines.flows import census_return

PUBLICATION = ("pupils_by_sex", "pupils_by_ethnicity", "pupils_by_sen", "pupils_by_fsm")


def test_every_delivery_exists_and_matches_its_manifest(census_run):
    out, result = census_run
    assert result["audit_passed"]
    folder = out / "deliveries" / "publication"
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {entry["file"]: entry for entry in manifest["files"]}
    assert set(listed) == {f"{name}{suffix}" for name in PUBLICATION for suffix in (".csv", ".meta.csv")}
    for name, entry in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
        assert entry["rows"] == len((folder / name).read_text().splitlines()) - 1
    assert manifest["run"]["run_id"] == result["run_id"] and manifest["run"]["policy_version"] == "2026.1"
    assert manifest["suppression"]["school_statistics"]["audit"]["passed"]
    assert (out / "report" / "auditor_report.html").exists() and (out / "report" / "auditor_report.json").exists()
    assert not list(out.glob(".staging-*"))


@pytest.mark.parametrize("name", PUBLICATION)
def test_ees_files_pass_the_screener(census_run, name):
    out, _ = census_run
    assert screen(out / "deliveries" / "publication" / f"{name}.csv") == []


def test_no_direct_identifier_reaches_a_delivery_or_the_report(census_run, small_clean):
    out, _ = census_run
    pupils = pl.read_csv(small_clean / "pupils.csv", infer_schema=False)
    texts = [p.read_text() for p in [*(out / "deliveries").rglob("*.csv"), *(out / "report").glob("*")]]
    for column in ("upn", "uln", "postcode", "email", "phone", "date_of_birth", "address_line1"):
        values = set(pupils[column].drop_nulls())
        assert not any(v in text for v in values for text in texts), column
    full_names = set(pupils.select(pl.concat_str("forename", pl.lit(" "), "surname")).to_series())
    assert not any(n in text for n in full_names for text in texts)


def attack_intervals(folder: Path) -> dict[tuple[str, str, str], tuple[float, float, float | None]]:
    """An attacker's LP over the joint counts (school x every filter) from the four published files.

    Returns, for each suppressed cell (file, geography node, filter value), its feasible [min, max].
    """
    files = {name: text_csv(folder / f"{name}.csv")
             for name in PUBLICATION}
    filters = {name: f.columns[-2] for name, f in files.items()}  # each file's filter, just before its indicator
    schools = files["pupils_by_sex"].filter(pl.col("geographic_level") == "School")
    district_of = dict(schools.select("school_urn", "lad_code").unique().iter_rows())
    levels = {name: sorted(set(files[name][filters[name]]) - {"Total"}) for name in PUBLICATION}
    grid = list(itertools.product(sorted(district_of), *[levels[n] for n in PUBLICATION]))
    index = {combo: i for i, combo in enumerate(grid)}

    def members(name: str, row: dict) -> list[int]:
        position = PUBLICATION.index(name) + 1
        node = row["school_urn"] or row["lad_code"] or None
        return [index[c] for c in grid
                if (node is None or c[0] == node or district_of[c[0]] == node)
                and (row[filters[name]] == "Total" or c[position] == row[filters[name]])]

    rows, values, hidden = [], [], []
    for name, frame in files.items():
        for row in frame.iter_rows(named=True):
            cells = members(name, row)
            key = (name, row["school_urn"] or row["lad_code"] or "LA", row[filters[name]])
            if row["headcount"].isdigit():
                rows.append(cells)
                values.append(float(row["headcount"]))
            else:
                hidden.append((key, cells))
    a = csr_matrix((np.ones(sum(map(len, rows))), (np.repeat(np.arange(len(rows)), [len(r) for r in rows]),
                                                  np.concatenate(rows))), shape=(len(rows), len(grid)))
    out = {}
    for key, cells in hidden:
        objective = np.zeros(len(grid))
        objective[cells] = 1.0
        bounds = []
        for sign in (1, -1):
            solved = linprog(sign * objective, A_eq=a, b_eq=values, bounds=(0, None), method="highs")
            assert solved.status in (0, 3), solved.message
            bounds.append(np.inf if solved.status == 3 else sign * solved.fun)
        out[key] = (bounds[0], bounds[1])
    return out


def test_an_independent_attack_across_the_linked_tables_recovers_no_suppressed_cell(census_run):
    out, _ = census_run
    intervals = attack_intervals(out / "deliveries" / "publication")
    cells = pl.read_parquet(out / "data" / "work" / "school_statistics.decisions.parquet")
    assert intervals and len(intervals) >= cells.filter(pl.col("status") != "published").height
    narrow = {key: bounds for key, bounds in intervals.items() if bounds[1] - bounds[0] < 1 - 1e-6}
    assert narrow == {}


def test_a_run_that_fails_midway_leaves_no_delivery(prefect_harness, small_clean, tmp_path):
    bad_policy = tmp_path / "policy.toml"
    bad_policy.write_text('threshold = "ten"\n')
    with pytest.raises(PolicyError, match="policy.toml: threshold: must be an integer"):
        census_return(small_clean, tmp_path / "out", "2026-spring", bad_policy)
    assert (tmp_path / "out" / "validated" / "validation.json").exists()  # validation ran before the failure
    assert not (tmp_path / "out" / "deliveries").exists() and not (tmp_path / "out" / "report").exists()
    assert not list((tmp_path / "out").glob(".staging-*"))
