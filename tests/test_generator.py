"""The synthetic county: deterministic, valid identifiers, realistic proportions, linked files, listed faults."""

from __future__ import annotations

import datetime as dt
import filecmp
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.synthetic.datasets import DATASET_COLUMNS
from pipelines.synthetic.generate import generate
from schemas.identifiers import (
    is_valid_nass,
    is_valid_nino,
    is_valid_postcode,
    is_valid_uln,
    is_valid_upn,
    upn_la_code,
)
from schemas.lookups import codeset, dfe_lookup

from .conftest import read_export

DATASETS = list(DATASET_COLUMNS)
CENSUS_DAY = dt.date(2026, 1, 15)


def all_files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def share(frame: pl.DataFrame, condition: pl.Expr) -> float:
    return frame.select(condition.mean()).item()


def test_same_seed_gives_byte_identical_files(tmp_path, small_faulty):
    again = tmp_path / "again"
    generate(again, seed=7, scale="6000", fault_rate=0.05)
    assert all_files(again) == all_files(small_faulty)
    _, mismatch, errors = filecmp.cmpfiles(small_faulty, again, [str(p) for p in all_files(again)], shallow=False)
    assert mismatch == [] and errors == []


def test_another_seed_gives_other_children(tmp_path, small_clean):
    other = tmp_path / "other"
    generate(other, seed=8, scale="6000")
    assert (other / "pupils.csv").read_bytes() != (small_clean / "pupils.csv").read_bytes()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.integers(0, 100_000), st.integers(1000, 4000))
@example(7, 3000)  # had no pupil referral unit, and failed
def test_every_seed_and_small_scale_generates_a_county(tmp_path_factory, seed, pupils):
    """A small LA may have no pupil referral unit, no dual registration, few schools: still a county."""
    folder = tmp_path_factory.mktemp("any")
    generate(folder, seed=seed, scale=str(pupils))
    for name, columns in DATASET_COLUMNS.items():
        frame = read_export(folder, name)
        assert frame.columns == list(columns), name
    assert read_export(folder, "pupils").height > 0


def test_files_have_the_agreed_names_and_columns(county):
    for name in DATASETS:
        assert read_export(county, name).columns == DATASET_COLUMNS[name]
    for name in ("schools.csv", "early_years_providers.csv", "geography.csv", "codesets/ethnicity.csv"):
        assert (county / "reference" / name).exists()
    assert not (county / "faults.csv").exists()
    assert not list(county.glob(".staging-*"))


@pytest.mark.parametrize("name", DATASETS)
def test_every_identifier_in_a_fault_free_county_is_valid(county, name):
    frame = read_export(county, name)
    checks = {"upn": is_valid_upn, "former_upn": is_valid_upn, "uln": is_valid_uln,
              "parent_ni_number": is_valid_nino, "parent_nass_number": is_valid_nass, "postcode": is_valid_postcode}
    for column, check in checks.items():
        if column in frame.columns:
            present = frame.filter(pl.col(column).is_not_null())
            assert present.height > 0 or column in ("former_upn",), column
            invalid = present.filter(~check(pl.col(column)))
            assert invalid.height == 0, f"{name}.{column}: {invalid[column].head(3).to_list()}"
    if "upn" in frame.columns:
        known_las = dfe_lookup("las")["old_la_code"].to_list()
        assert frame.filter(pl.col("upn").is_not_null() & ~upn_la_code(pl.col("upn")).is_in(known_las)).is_empty()


def test_pupil_upns_are_unique_except_dual_registration_pairs(county):
    pupils = read_export(county, "pupils")
    repeated = pupils.filter(pl.col("upn").is_duplicated())
    assert repeated.height > 0  # the county has some dual registrations
    pairs = repeated.group_by("upn").agg(pl.col("enrolment_status").sort(), pl.col("school_urn").n_unique())
    assert pairs["enrolment_status"].to_list() == [["M", "S"]] * pairs.height
    assert (pairs["school_urn"] == 2).all()
    everyone = pl.concat([pupils.select("upn"), read_export(county, "destinations").filter(
        pl.col("activity_code") != "210").select("upn")])
    assert everyone["upn"].drop_nulls().n_unique() == everyone.filter(pl.col("upn").is_not_null()).unique().height
    assert pupils.unique("upn")["uln"].drop_nulls().is_unique().all()


def test_ulns_only_from_age_13(county):
    pupils = read_export(county, "pupils").with_columns(pl.col("date_of_birth").str.to_date())
    age = (pl.lit(CENSUS_DAY) - pl.col("date_of_birth")).dt.total_days() / 365.25
    assert pupils.filter(pl.col("uln").is_not_null() & (age < 13)).is_empty()
    assert share(pupils.filter(age >= 13.2), pl.col("uln").is_not_null()) == 1.0


def test_ages_fit_nc_years_with_a_few_out_of_cohort(county):
    pupils = read_export(county, "pupils").with_columns(pl.col("date_of_birth").str.to_date())
    ages = codeset("nc_year", 2025).select(pl.col("code").alias("nc_year"), pl.col("age_31_august").cast(pl.Int32))
    aug31 = dt.date(2025, 8, 31)
    age = aug31.year - pl.col("date_of_birth").dt.year() - (pl.col("date_of_birth").dt.month() >= 9).cast(pl.Int32)
    gap = pupils.join(ages, on="nc_year").select((age - pl.col("age_31_august")).alias("gap"))["gap"]
    assert gap.abs().max() <= 1
    assert 0.002 < (gap != 0).mean() < 0.012


def test_proportions_are_realistic(county):
    pupils = read_export(county, "pupils").filter(pl.col("enrolment_status") != "S")
    assert 95_000 <= pupils.height <= 105_000
    assert 0.11 <= share(pupils, pl.col("sen_provision") == "K") <= 0.15
    assert 0.035 <= share(pupils, pl.col("sen_provision") == "E") <= 0.055
    assert 0.19 <= share(pupils, pl.col("fsm_eligible") == "Y") <= 0.26
    assert 0.50 <= share(pupils, pl.col("sex") == "M") <= 0.53
    white_british = pl.col("ethnicity").is_in(["WBRI", "WENG", "WSCO", "WWEL", "WNIR", "WCOR", "WOWB"])
    assert 0.68 <= share(pupils, white_british) <= 0.82
    for rare in (["WIRT"], ["WROM", "WROG", "WROR", "WROO"]):
        n = pupils.filter(pl.col("ethnicity").is_in(rare)).height
        assert 20 <= n <= 600, (rare, n)  # present, and rare enough to make small cells by school
    sizes = pupils.group_by("school_urn").len()["len"]
    assert sizes.max() > 6 * sizes.median()  # heavy tail
    assert 250 <= sizes.len() <= 350


def test_other_files_are_county_sized(county):
    early_years = read_export(county, "early_years")
    assert 13_000 <= early_years["child_id"].n_unique() <= 17_000
    assert 12_000 <= read_export(county, "destinations").height <= 16_000
    assert 12_000 <= read_export(county, "ncmp").height <= 16_000


def test_files_link_the_same_children(county):
    pupils = read_export(county, "pupils")
    ncmp = read_export(county, "ncmp")
    linked = ncmp.join(pupils, on="upn", how="inner", suffix="_pupil")
    assert linked.height == ncmp.height
    assert (linked["date_of_birth"] == linked["date_of_birth_pupil"]).all()
    assert (linked["school_urn"] == linked["school_urn_pupil"]).all()
    early_years = read_export(county, "early_years").filter(pl.col("upn").is_not_null())
    nursery = early_years.join(pupils, on="upn", how="inner", suffix="_pupil")
    assert nursery.height == early_years.height > 0
    assert nursery["nc_year"].is_in(["N1", "N2"]).all()
    at_school = nursery.filter(pl.col("provider_type") == "SCH")
    assert (at_school["provider_urn"] == at_school["school_urn"]).all() and at_school.height > 0.9 * nursery.height
    schools = pl.read_csv(county / "reference" / "schools.csv", infer_schema=False)
    destinations = read_export(county, "destinations")
    assert destinations["last_school_urn"].is_in(schools["urn"].implode()).all()
    sixth_form = destinations.filter(pl.col("activity_code") == "210")
    assert sixth_form.join(pupils, on="upn", how="inner").select("upn").n_unique() == sixth_form.height


def test_early_years_rules_hold_without_faults(county):
    early_years = read_export(county, "early_years")
    caps = codeset("ey_entitlement", 2025).select(pl.col("code").alias("entitlement"), "max_hours_per_week")
    with_caps = early_years.join(caps, on="entitlement")
    assert with_caps.height == early_years.height
    assert (with_caps["funded_hours_per_week"].cast(float) <= with_caps["max_hours_per_week"].cast(float)).all()
    assert early_years.filter(pl.col("parent_ni_number").is_not_null() & pl.col("parent_nass_number").is_not_null()).is_empty()
    extended = early_years.filter(pl.col("entitlement") == "E34")
    assert extended["eligibility_code"].str.contains(r"^\d{11}$").all()
    assert early_years.select(pl.struct("child_id", "provider_urn", "term").is_unique().all()).item()
    urns = early_years["provider_urn"].cast(int)
    settings = early_years.filter(pl.col("provider_type") != "SCH")["provider_urn"].cast(int)
    assert settings.is_between(500_000, 799_999).all() and urns.len() > settings.len()
    assert set(early_years["entitlement"]) == {"2YO", "U34", "E34", "WPE"}


def test_faults_csv_lists_exactly_the_injected_defects(small_clean, small_faulty):
    faults = pl.read_csv(small_faulty / "faults.csv", infer_schema=False).with_columns(pl.col("source_row").cast(int))
    assert faults.columns == ["file", "source_row", "fault", "field", "expected"]
    for name in DATASETS:
        clean, faulty = read_export(small_clean, name), read_export(small_faulty, name)
        assert clean.height == faulty.height
        changed = pl.concat(
            [pl.DataFrame({"source_row": [i + 1 for i, d in enumerate((clean[c].fill_null("\0") != faulty[c].fill_null("\0")).to_list()) if d],
                           "field": c}, schema={"source_row": pl.Int64, "field": pl.String}) for c in clean.columns]
        ).sort("source_row", "field")
        listed = faults.filter(pl.col("file") == f"{name}.csv").select("source_row", "field").sort("source_row", "field")
        assert listed.height > 0
        assert changed.equals(listed), name


def test_fault_catalogue_covers_the_agreed_defects(small_faulty):
    faults = pl.read_csv(small_faulty / "faults.csv", infer_schema=False)
    kinds = set(faults["fault"])
    assert {"upn_check_letter", "dob_missing", "dob_future", "nc_year_age", "duplicate_upn", "postcode_malformed",
            "unknown_code", "ni_and_nass_both", "hours_above_cap", "excel_date", "lost_leading_zero",
            "stray_spaces", "lower_case_code"} <= kinds
    normalise = faults.filter(pl.col("expected") == "normalise")["fault"].unique().sort().to_list()
    assert normalise == ["lower_case_code", "stray_spaces"]


def test_duplicate_upn_copies_an_earlier_single_registration(small_faulty):
    pupils = read_export(small_faulty, "pupils").with_row_index("source_row", offset=1)
    faults = pl.read_csv(small_faulty / "faults.csv", infer_schema=False)
    duplicates = faults.filter(pl.col("fault") == "duplicate_upn")["source_row"].cast(pl.UInt32)
    assert duplicates.len() > 0
    for row in duplicates:
        upn = pupils.filter(pl.col("source_row") == row)["upn"].item()
        earlier = pupils.filter((pl.col("upn") == upn) & (pl.col("source_row") < row))
        assert earlier["enrolment_status"].to_list() == ["C"]


def test_cli_rejects_bad_options_with_one_line():
    runner = CliRunner()
    for args in (["--scale", "tiny"], ["--faults", "2"]):
        result = runner.invoke(app, ["generate", "--out", "unused", *args])
        assert result.exit_code == 2
        assert result.output.startswith("error: ") and "Traceback" not in result.output


def test_national_plan_gives_each_la_its_own_ranges():
    """Only the national scale stresses the ranges; the plan alone shows whether they fit and never overlap."""
    from pipelines.synthetic.plan import SchoolCounts, plan_las

    plans = plan_las("national", seed=1)
    assert len(plans) >= 150 and sum(p.pupils for p in plans) == 9_400_000
    schools = [(p.first_school_urn, p.first_school_urn + SchoolCounts.for_pupils(p.pupils).total) for p in plans]
    providers = [(p.first_ey_provider_urn, p.first_ey_provider_urn + sum(p.providers.values())) for p in plans]
    for ranges in (schools, providers):
        assert all(end <= next_start for (_, end), (next_start, _) in zip(ranges, ranges[1:]))
    assert providers[0][0] >= 500_000 and providers[-1][1] - 1 <= 799_999
    assert schools[-1][1] - 1 <= 499_999
