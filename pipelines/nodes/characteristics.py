"""Characteristics that the exports do not hold directly but publications report on.

Each is derived from staged columns by one function (frame, academic year) -> column, named here once so that
every publication derives it the same way. A unit that lacks what a derivation needs gets null, which the
publication shows under its filter's `missing` label (or leaves out with `where`).
"""

from __future__ import annotations

import polars as pl

from pipelines.nodes.growth import bmi_categories
from schemas.calendar import age_reference_date
from schemas.lookups import codeset

PERSISTENT_ABSENCE_SHARE = 0.10  # DfE: a pupil missing 10% or more of their possible sessions


def ks2_rwm_expected(frame: pl.DataFrame, academic_year: int) -> pl.Expr:
    """Reading, writing and maths all at the expected standard; null unless all three were assessed."""
    subjects = [pl.col(f"ks2_{s}_expected") for s in ("reading", "writing", "maths")]
    return pl.when(pl.all_horizontal(s.is_not_null() for s in subjects)).then(pl.all_horizontal(subjects))


def persistent_absence(frame: pl.DataFrame, academic_year: int) -> pl.Expr:
    possible = pl.col("sessions_possible").cast(pl.Float64)
    return pl.when(possible > 0).then(pl.col("sessions_missed") / possible >= PERSISTENT_ABSENCE_SHARE)


def academic_age(frame: pl.DataFrame, academic_year: int) -> pl.Expr:
    """Age on 31 August at the start of the academic year, as NCCIS cohorts are defined."""
    on = age_reference_date(academic_year)
    born = pl.col("date_of_birth")
    had_birthday = (born.dt.month() < on.month) | ((born.dt.month() == on.month) & (born.dt.day() <= on.day))
    return (on.year - born.dt.year() - (~had_birthday).cast(pl.Int32)).cast(pl.Int32)


def two_year_basis_group(frame: pl.DataFrame, academic_year: int) -> pl.Expr:
    """A two-year-old's bases for funding as one category ("Economic criteria; Looked after ..."): a child can
    qualify on several, and a published breakdown must put each child in exactly one row. Null for any other
    entitlement (a basis left on the record from an earlier year funds nothing now), so the categories add up
    to the two-year-olds (filters.toml part_of)."""
    labels = dict(codeset("two_year_basis", academic_year).select("code", "label").iter_rows())
    bases = (pl.col("two_year_basis").str.split(";").list.eval(pl.element().str.strip_chars().replace_strict(labels, default=None))
             .list.drop_nulls().list.sort().list.join("; ").replace("", None))
    return pl.when(pl.col("entitlement") == "2YO").then(bases)


def funded_hours(frame: pl.DataFrame, academic_year: int) -> pl.Expr:
    """Funded hours in the term: hours a week times funded weeks."""
    return pl.col("funded_hours_per_week").cast(pl.Float64) * pl.col("funded_weeks").cast(pl.Float64)


def growth(frame: pl.DataFrame, academic_year: int) -> pl.DataFrame:
    """bmi (2 dp), its UK90 centile (1 dp) and the NCMP population-monitoring category
    (pipelines/nodes/growth.py): made together, in one pass over the reference."""
    return bmi_categories(frame).select(pl.col("bmi").round(2), pl.col("bmi_centile").round(1),
                                        pl.col("bmi_category").cast(pl.String))


DERIVED = {f.__name__: f for f in (ks2_rwm_expected, persistent_absence, academic_age, two_year_basis_group,
                                    funded_hours)}
DERIVED_TOGETHER = {column: growth for column in ("bmi", "bmi_centile", "bmi_category")}  # column -> its frame
