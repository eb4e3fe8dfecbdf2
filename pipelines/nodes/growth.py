"""NCMP BMI categories: each child's BMI as a UK90 centile, named by the population-monitoring cut-offs.

Pure: a frame of measurements in, the same rows with bmi, bmi_centile and bmi_category out.

Why these cut-offs. The NCMP publishes prevalence for populations (areas, years), not diagnoses for children, so
it uses the population-monitoring cut-offs on the UK90 BMI reference: underweight at or below the 2nd centile,
overweight from the 85th, obese from the 95th. The clinical cut-offs (0.4th, 91st, 98th) would give figures that
cannot be set beside the national ones.

Why rcpchgrowth. The L, M and S of UK90 BMI, and the way they are interpolated between its monthly ages, come from
RCPCH's maintained package (its "uk-who" reference, which is UK90 from 4 to 20 years: the "uk90_child" table),
not from a table typed in here, so a correction to the reference reaches us as a package upgrade. Ages are the
package's own chronological decimal age (days between the dates over 365.25, no gestational correction). Only
UK90 ages count: below 4 years "uk-who" switches to WHO 2006, on which these cut-offs were not defined, and past
20 there is no reference, so such rows, and rows missing a sex, a date or a positive height or weight, get a null
centile and category rather than an error that would stop a national run.

Why once per (sex, age in days). A decimal age is a function of the whole days between the two dates, and a
national year (about 1.2 million children in two school years) has only a few thousand distinct ages, so the
package is asked for L, M, S once per distinct (sex, days) and the SDS, z = ((bmi / M)^L - 1) / (L S), or
ln(bmi / M) / S when L is 0, is computed for every row at once. The tests hold it to the package's own
per-measurement SDS.

Why the boundary rule is on the SDS. A centile is the SDS through Phi and loses resolution in the tails, so the
category compares the SDS with the exact quantiles z(p) = Phi^-1(p): underweight if SDS <= z(0.02); healthy weight
if z(0.02) < SDS < z(0.85); overweight if z(0.85) <= SDS < z(0.95); obese if SDS >= z(0.95). Both sides are rounded
to 9 decimal places first (1e-9 SDS is about 1e-8 kg/m^2, far below what a 0.1 cm and 0.1 kg measurement can
resolve), so a BMI that lies on a centile line falls on the side the rule says, not on the side floating-point
noise says.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta
from statistics import NormalDist

import polars as pl

SEXES = ("M", "F")  # the sexes UK90 has a reference for
CATEGORY = pl.Enum(["Underweight", "Healthy weight", "Overweight", "Obese"])
SDS_DECIMALS = 9
UNDERWEIGHT_AT_MOST, OVERWEIGHT_FROM, OBESE_FROM = (round(NormalDist().inv_cdf(p), SDS_DECIMALS)
                                                     for p in (0.02, 0.85, 0.95))
KEY = ["sex", "age_days"]
EPOCH = date.min
DAYS_AS_DATES = (date.max - EPOCH).days  # longest age a Python date can carry; any longer is past the reference
LMS_SCHEMA = {"sex": pl.String, "age_days": pl.Int64, "L": pl.Float64, "M": pl.Float64, "S": pl.Float64}


def bmi() -> pl.Expr:
    """kg/m^2; null unless both height and weight are positive numbers."""
    height_m = pl.col("height_cm").fill_nan(None) / 100
    weight_kg = pl.col("weight_kg").fill_nan(None)
    return pl.when((height_m > 0) & (weight_kg > 0)).then(weight_kg / height_m.pow(2)).alias("bmi")


def age_days() -> pl.Expr:
    return (pl.col("measurement_date") - pl.col("date_of_birth")).dt.total_days().alias("age_days")


@functools.cache
def uk90_bmi(sex: str) -> list[dict]:
    """The UK90 BMI reference for a sex. rcpchgrowth (and scipy with it) is imported when growth is first computed,
    so that commands that never compute it start without it."""
    from rcpchgrowth import select_reference_data_for_uk_who_chart
    from rcpchgrowth.constants.reference_constants import BMI, FEMALE, MALE, UK90_CHILD

    return select_reference_data_for_uk_who_chart(UK90_CHILD, BMI, {"M": MALE, "F": FEMALE}[sex])


def uk90_bmi_lms(sex: str, days: int) -> tuple[float, float, float] | tuple[None, None, None]:
    """L, M, S at the package's decimal age for a whole number of days; nulls outside the UK90 ages."""
    from rcpchgrowth import chronological_decimal_age
    from rcpchgrowth.global_functions import fetch_lms

    reference = uk90_bmi(sex)
    age = chronological_decimal_age(EPOCH, EPOCH + timedelta(days=days))
    if not reference[0]["decimal_age"] <= age <= reference[-1]["decimal_age"]:
        return None, None, None
    lms = fetch_lms(age=age, lms_value_array_for_measurement=reference)
    return float(lms["l"]), float(lms["m"]), float(lms["s"])


def lms_by_sex_and_age(keys: pl.DataFrame) -> pl.DataFrame:
    """One row per distinct known (sex, age_days) in keys, with its L, M, S."""
    known = pl.col("sex").is_in(list(SEXES)) & pl.col("age_days").is_between(0, DAYS_AS_DATES)
    distinct = keys.filter(known).unique()
    rows = [(sex, days, *uk90_bmi_lms(sex, days)) for sex, days in distinct.iter_rows()]
    return pl.DataFrame(rows, schema=LMS_SCHEMA, orient="row")


def sds() -> pl.Expr:
    """UK90 BMI SDS from columns bmi, L, M, S."""
    ratio = pl.col("bmi") / pl.col("M")
    return (pl.when(pl.col("L") == 0).then(ratio.log() / pl.col("S"))
            .otherwise((ratio.pow(pl.col("L")) - 1) / (pl.col("L") * pl.col("S"))))


def bmi_sds(measured: pl.DataFrame) -> pl.Series:
    """Each row's UK90 BMI SDS, null where it has none; in the rows' order."""
    keyed = measured.select(pl.col("sex").cast(pl.String), age_days(), bmi())
    with_lms = keyed.join(lms_by_sex_and_age(keyed.select(KEY)), on=KEY, how="left", maintain_order="left")
    return with_lms.select(sds().alias("bmi_sds")).to_series()


def centiles(sds_values: pl.Series) -> pl.Series:
    """0-100, by the package's SDS-to-centile conversion applied to the whole column."""
    from rcpchgrowth import centile

    return pl.Series("bmi_centile", centile(sds_values.to_numpy()), dtype=pl.Float64).fill_nan(None)


def category(sds_values: pl.Expr) -> pl.Expr:
    """The NCMP category for each SDS, by the boundary rule in the module docstring; null for a null SDS."""
    rounded = sds_values.round(SDS_DECIMALS)
    return (pl.when(rounded <= UNDERWEIGHT_AT_MOST).then(pl.lit("Underweight"))
            .when(rounded < OVERWEIGHT_FROM).then(pl.lit("Healthy weight"))
            .when(rounded < OBESE_FROM).then(pl.lit("Overweight"))
            .when(rounded >= OBESE_FROM).then(pl.lit("Obese"))
            .cast(CATEGORY).alias("bmi_category"))


def bmi_categories(measured: pl.DataFrame) -> pl.DataFrame:
    """The measured rows with bmi, bmi_centile (0-100) and bmi_category added; see the module docstring."""
    sds_values = bmi_sds(measured)
    return measured.with_columns(bmi(), centiles(sds_values), category(pl.lit(sds_values)))
