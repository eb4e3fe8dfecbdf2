"""Characteristics that the exports do not hold directly but publications report on.

Each is derived from staged columns by one function (frame, the run's term) -> column, named here once so that
every publication derives it the same way. A unit that lacks what a derivation needs gets null, which the
publication shows under its filter's `missing` label (or leaves out with `where`).
"""

from __future__ import annotations

import polars as pl

from pipelines.nodes.growth import bmi_categories
from schemas.calendar import Term, academic_year_label, age_reference_date
from schemas.lookups import codeset
from schemas.specs.publication import PublicationError

PERSISTENT_ABSENCE_SHARE = 0.10  # DfE: a pupil missing 10% or more of their possible sessions


def ks2_rwm_expected(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """Reading, writing and maths all at the expected standard; null unless all three were assessed."""
    subjects = [pl.col(f"ks2_{s}_expected") for s in ("reading", "writing", "maths")]
    return pl.when(pl.all_horizontal(s.is_not_null() for s in subjects)).then(pl.all_horizontal(subjects))


def persistent_absence(frame: pl.DataFrame, term: Term) -> pl.Expr:
    possible = pl.col("sessions_possible").cast(pl.Float64)
    return pl.when(possible > 0).then(pl.col("sessions_missed") / possible >= PERSISTENT_ABSENCE_SHARE)


def academic_age(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """Age on 31 August at the start of the academic year, as NCCIS cohorts are defined."""
    on = age_reference_date(term.academic_year)
    born = pl.col("date_of_birth")
    had_birthday = (born.dt.month() < on.month) | ((born.dt.month() == on.month) & (born.dt.day() <= on.day))
    return (on.year - born.dt.year() - (~had_birthday).cast(pl.Int32)).cast(pl.Int32)


def reported_activity_code(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """The activity a young person is counted under at the end of the term's census month (NCCIS's period end):
    a record whose currency lapsed before then is counted as 810, "Current situation not known", as the DfE
    counts records that are no longer current (the NCCIS return itself keeps the code and sends CurrencyLapsed
    Y). How long an activity stays current is the LA's own reckoning, sent as its lapse date; the requirement's
    currency appendix could not be read (schemas/reference/dfe-specs/nccis-mi-requirement-notes.md, section 5)."""
    lapsed = pl.col("due_to_lapse_date") < term.census_month_end
    return pl.when(lapsed.fill_null(False)).then(pl.lit("810")).otherwise(pl.col("activity_code").cast(pl.String))


def two_year_basis_group(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """A two-year-old's bases for funding as one category ("Economic criteria; Looked after ..."): a child can
    qualify on several, and a published breakdown must put each child in exactly one row. Null for any other
    entitlement (a basis left on the record from an earlier year funds nothing now), so the categories add up
    to the two-year-olds (filters.toml part_of)."""
    labels = dict(codeset("two_year_basis", term.academic_year).select("code", "label").iter_rows())
    bases = (pl.col("two_year_basis").str.split(";").list.eval(pl.element().str.strip_chars().replace_strict(labels, default=None))
             .list.drop_nulls().list.sort().list.join("; ").replace("", None))
    return pl.when(pl.col("entitlement") == "2YO").then(bases)


def funded_hours(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """Funded hours in the term: hours a week times funded weeks."""
    return pl.col("funded_hours_per_week").cast(pl.Float64) * pl.col("funded_weeks").cast(pl.Float64)


def funding(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """Funding in the term: the funded hours at the LA's hourly base rate to providers for the entitlement
    (schemas/codesets/ey_funding_rate.csv, per academic year: the LA's own rates from its local funding
    formula; the repository's are illustrative). Supplements are not in it. An entitlement with no rate for the
    year is an error, never a zero."""
    rates = {code: float(rate) for code, rate in
             codeset("ey_funding_rate", term.academic_year).select("code", "hourly_rate").iter_rows()}
    missing = sorted(set(frame["entitlement"].drop_nulls().unique().to_list()) - set(rates))
    if missing:
        raise PublicationError(f"ey_funding_rate: no hourly rate for entitlement {missing[0]!r} in "
                               f"{academic_year_label(term.academic_year)}")
    return funded_hours(frame, term) * pl.col("entitlement").replace_strict(rates, default=None, return_dtype=pl.Float64)


UNIVERSAL_HOURS = 15.0  # the universal (and two-year-old) entitlement a week; the extended hours are above it


def _weekly(entitlements: tuple[str, ...]) -> pl.Expr:
    hours = pl.col("funded_hours_per_week").cast(pl.Float64)
    return pl.when(pl.col("entitlement").is_in(list(entitlements))).then(hours)


def _universal_part() -> pl.Expr:
    """Of a working parent's 30 hours, the part of this setting's hours that is the universal 15: a child's 15
    counted once across its settings, so that a child split between two settings is not given 15 universal hours
    at each. Which setting's hours are the universal part the specifications do not say [I]: the first in URN
    order, so the same records always give the same split."""
    hours = _weekly(("E34",))
    before = (hours.cum_sum() - hours).over(["child_id", "term", "entitlement"], order_by="provider_urn")
    return pl.min_horizontal(hours, (UNIVERSAL_HOURS - before).clip(lower_bound=0.0))


def universal_hours(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """The early years census's funded hours: the universal or two-year-old entitlement a week (for a working
    parent's 30 hours, the first 15 across the child's settings)."""
    return pl.coalesce(_weekly(("2YO", "U34")), _universal_part())


def extended_hours(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """The census's extended hours: a working parent's hours a week above the universal 15 (across the child's
    settings)."""
    return _weekly(("E34",)) - _universal_part()


def expanded_hours(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """The census's expanded hours: a working parent's entitlement for a child from 9 months to 3 years."""
    return _weekly(("WPE",))


def eypp_receipt(frame: pl.DataFrame, term: Term) -> pl.Expr:
    """Whether the child attracts early years pupil premium: it has a basis for it."""
    return pl.col("eypp_basis").is_not_null()


def growth(frame: pl.DataFrame, term: Term) -> pl.DataFrame:
    """bmi (2 dp), its UK90 centile (1 dp) and the NCMP population-monitoring category
    (pipelines/nodes/growth.py): made together, in one pass over the reference."""
    return bmi_categories(frame).select(pl.col("bmi").round(2), pl.col("bmi_centile").round(1),
                                        pl.col("bmi_category").cast(pl.String))


DERIVED = {f.__name__: f for f in (ks2_rwm_expected, persistent_absence, academic_age, reported_activity_code, two_year_basis_group,
                                    funded_hours, funding, universal_hours, extended_hours, expanded_hours,
                                    eypp_receipt)}
DERIVED_TOGETHER = {column: growth for column in ("bmi", "bmi_centile", "bmi_category")}  # column -> its frame
