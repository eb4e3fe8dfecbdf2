"""NCMP BMI categories: the vectorised SDS is the package's own, each cut-off falls on the side the rule says,
and rows the reference does not cover get nulls rather than an error."""

from __future__ import annotations

from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest
from rcpchgrowth import bmi_from_height_weight, chronological_decimal_age, sds_for_measurement
from rcpchgrowth.global_functions import fetch_lms, lms_value_array_for_measurement_for_reference, measurement_for_z

from pipelines.nodes.growth import bmi_categories, bmi_sds

SEX = {"M": "male", "F": "female"}
MEASURED = date(2025, 3, 14)
HEIGHT_CM = 120.0
SCHEMA = {"sex": pl.String, "date_of_birth": pl.Date, "measurement_date": pl.Date,
          "height_cm": pl.Float64, "weight_kg": pl.Float64}


def synthetic_children(n: int, seed: int) -> pl.DataFrame:
    """Random children aged 4 to 12 with plausible heights and BMIs, plus the UK90 table's first and last days."""
    rng = np.random.default_rng(seed)
    days = np.concatenate([rng.integers(1461, 4383, n), [1461, 1462, 7304, 7305]])  # 4.0 y ... 12 y; 20 y
    age = days / 365.25
    height = 80 + 6 * age + rng.normal(0, 6, days.size)
    bmi = rng.uniform(12.5, 28.0, days.size)
    return pl.DataFrame({
        "sex": rng.choice(["M", "F"], days.size),
        "date_of_birth": [MEASURED - timedelta(days=int(d)) for d in days],
        "measurement_date": [MEASURED] * days.size,
        "height_cm": height.round(1),
        "weight_kg": (bmi * (height.round(1) / 100) ** 2).round(1),
    })


def package_sds(row: dict) -> float:
    age = chronological_decimal_age(row["date_of_birth"], row["measurement_date"])
    bmi = bmi_from_height_weight(row["height_cm"], row["weight_kg"])
    return sds_for_measurement("uk-who", age, "bmi", bmi, SEX[row["sex"]])


def test_vectorised_sds_is_the_packages_per_measurement_sds():
    children = synthetic_children(200, seed=20250314)
    expected = np.array([package_sds(row) for row in children.iter_rows(named=True)])
    got = bmi_sds(children).to_numpy()
    assert np.abs(got - expected).max() < 1e-6


def test_centile_is_the_sds_as_a_percentage():
    children = bmi_categories(synthetic_children(50, seed=1))
    expected = [100 * NormalDist().cdf(package_sds(row)) for row in children.iter_rows(named=True)]
    assert children["bmi_centile"].to_list() == pytest.approx(expected, abs=1e-6)


def at_bmi(sex: str, age_days: int, bmis: list[float]) -> pl.DataFrame:
    """Children of one sex and age whose weights give these BMIs at HEIGHT_CM."""
    return pl.DataFrame({
        "sex": [sex] * len(bmis),
        "date_of_birth": [MEASURED - timedelta(days=age_days)] * len(bmis),
        "measurement_date": [MEASURED] * len(bmis),
        "height_cm": [HEIGHT_CM] * len(bmis),
        "weight_kg": [bmi * (HEIGHT_CM / 100) ** 2 for bmi in bmis],
    }, schema=SCHEMA)


def bmi_on_centile(sex: str, age_days: int, centile: float) -> float:
    """The BMI exactly on a UK90 centile line, by inverting the package's L, M, S for that sex and age."""
    age = chronological_decimal_age(MEASURED - timedelta(days=age_days), MEASURED)
    reference = lms_value_array_for_measurement_for_reference("uk-who", age, "bmi", SEX[sex])
    lms = fetch_lms(age=age, lms_value_array_for_measurement=reference)
    return measurement_for_z(NormalDist().inv_cdf(centile / 100), lms["l"], lms["m"], lms["s"])


@pytest.mark.parametrize("sex, age_days", [("M", 1461), ("F", 1700), ("M", 3900), ("F", 4020)])
@pytest.mark.parametrize("centile, below, at, above", [
    (2, "Underweight", "Underweight", "Healthy weight"),  # underweight is at or below the 2nd
    (85, "Healthy weight", "Overweight", "Overweight"),
    (95, "Overweight", "Obese", "Obese"),
])
def test_each_cut_off_falls_on_the_side_the_rule_says(sex, age_days, centile, below, at, above):
    line = bmi_on_centile(sex, age_days, centile)
    rows = bmi_categories(at_bmi(sex, age_days, [line * (1 - 1e-6), line, line * (1 + 1e-6)]))
    assert rows["bmi_category"].to_list() == [below, at, above]
    assert rows["bmi_centile"][1] == pytest.approx(centile, abs=1e-6)


def test_rows_the_reference_does_not_cover_get_null_centile_and_category():
    rows = pl.DataFrame({
        "sex": ["M", "F", "M", "F", None, "M", "F"],
        "date_of_birth": [MEASURED - timedelta(days=d) for d in (1460, 7306, -30, 2000, 2000, 2000, 2000)],
        "measurement_date": [MEASURED] * 7,
        "height_cm": [100.0, 160.0, 100.0, None, 110.0, 0.0, 110.0],
        "weight_kg": [16.0, 55.0, 16.0, 20.0, 20.0, 20.0, float("nan")],
    })  # a day under 4 (UK-WHO is WHO 2006 there), a day over 20, born after measured, no height, no sex, 0 cm, NaN kg
    out = bmi_categories(rows)
    assert out["bmi_category"].null_count() == out["bmi_centile"].null_count() == rows.height
    assert out["bmi"].is_not_null().to_list() == [True, True, True, False, True, False, False]
    assert out.select(rows.columns).equals(rows)


def test_no_rows_in_no_rows_out():
    empty = at_bmi("M", 2000, [])
    assert bmi_categories(empty).columns == [*empty.columns, "bmi", "bmi_centile", "bmi_category"]
