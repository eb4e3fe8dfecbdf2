"""The four MIS-shaped exports of one LA, built from its people so that the same child links across files."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from schemas.calendar import TERMS, Term, academic_year_end
from schemas.identifiers import NINO_UNALLOCATED_PREFIXES
from schemas.lookups import codeset, live_english_las

from .people import (
    DUAL_REGISTRATION_SHARE,
    KS2_EXPECTED_RATE,
    Context,
    demographics,
    bernoulli,
    characteristics,
    nullable,
    pick,
    recorded_ethnicity,
    side_stream,
    ulns,
    upns,
)

DATASET_COLUMNS = {
    "pupils": [
        "upn", "former_upn", "uln", "surname", "forename", "date_of_birth", "sex", "ethnicity", "first_language",
        "address_line1", "address_line2", "town", "postcode", "phone", "email", "parent_name", "school_urn",
        "school_laestab", "enrolment_status", "nc_year", "sen_provision", "sen_primary_need", "fsm_eligible",
        "looked_after", "post_looked_after", "yss_opt_out", "sessions_possible", "sessions_missed",
        "ks2_reading_expected", "ks2_writing_expected", "ks2_maths_expected", "ks4_attainment8",
        "admission_date", "last_contact_date",
    ],
    "early_years": [
        "child_id", "upn", "surname", "forename", "date_of_birth", "sex", "ethnicity", "address_line1",
        "address_line2", "town", "postcode", "parent_name", "parent_ni_number", "parent_nass_number",
        "provider_urn", "provider_type", "term", "entitlement", "two_year_basis", "funded_hours_per_week",
        "hours_at_setting", "funded_weeks", "eligibility_code", "eypp_basis", "daf", "sen_provision", "case_closed_date",
    ],
    "destinations": [
        "person_id", "upn", "uln", "surname", "forename", "date_of_birth", "sex", "ethnicity", "address_line1",
        "address_line2", "town", "postcode", "cohort_status", "transferred_to_la", "la_at_year_11", "educated_la",
        "last_school_urn", "activity_code", "activity_start_date", "date_ascertained", "date_verified",
        "review_date", "predicted_end_date", "due_to_lapse_date", "neet_start_date", "level_of_need",
        "characteristics", "intended_destination", "sg_year11_status", "sg_year11_la", "sg_year12_status",
        "sg_year12_la", "sen_provision", "ehcp", "yss_opt_out",
    ],
    "ncmp": [
        "upn", "surname", "forename", "date_of_birth", "sex", "ethnicity", "postcode", "school_urn", "nc_year",
        "measurement_date", "height_cm", "weight_kg",
    ],
}
LEAVER_ACTIVITY = {
    "230": 0.45, "220": 0.18, "310": 0.10, "320": 0.02, "330": 0.02, "340": 0.01, "360": 0.01, "410": 0.01,
    "430": 0.01, "450": 0.005, "460": 0.005, "530": 0.01, "280": 0.02, "610": 0.01, "615": 0.005, "619": 0.03,
    "630": 0.004, "640": 0.006, "680": 0.005, "710": 0.005, "810": 0.02, "820": 0.01, "830": 0.005,
}
SEND_ADULT_ACTIVITY = {"230": 0.4, "280": 0.2, "460": 0.1, "610": 0.08, "619": 0.07, "640": 0.05, "810": 0.1}
TERM_WEEKS = {"autumn": 14, "spring": 12, "summer": 12}
STRETCHED_WEEKS_PER_TERM = 17
NCMP_PARTICIPATION = 0.95
FUNDED_SHARE_OF_UNDER_FIVES = 0.82  # generated under-fives who take a funded place in at least one term


def yes_no(values) -> pl.Expr | pl.Series:
    return nullable(np.where(values, "Y", "N"))


def iso(days: np.ndarray) -> pl.Series:
    return pl.Series(days.astype("datetime64[D]")).dt.to_string("%Y-%m-%d")


def contact_details(ctx: Context, people: pl.DataFrame) -> pl.DataFrame:
    """Address, phone and email as an MIS holds them; phones in Ofcom's drama ranges, emails at example.com."""
    rng, n = ctx.rng, people.height
    place = ctx.postcodes[people["postcode_row"].to_numpy()]
    mobile = bernoulli(rng, 0.7, n)
    number = np.char.zfill(rng.integers(0, 1000, n).astype(str), 3)
    phone = np.where(mobile, np.char.add("07700 900", number), np.char.add("01632 960", number))
    local_part = (
        people.select(
            (pl.col("parent_forename") + "." + pl.col("parent_surname")).str.to_lowercase().str.replace_all(r"[^a-z.]", "")
        ).to_series().to_numpy().astype(str)
    )
    email = np.char.add(np.char.add(local_part, rng.integers(1, 99, n).astype(str)), "@example.com")
    return pl.DataFrame({
        "address_line1": np.char.add(np.char.add(people["house_number"].to_numpy().astype(str), " "),
                                     place["street"].to_numpy().astype(str)),
        "address_line2": place["ward_name"],
        "town": place["lad_name"],
        "postcode": place["postcode"],
        "phone": phone,
        "email": email,
        "parent_name": (people["parent_forename"] + " " + people["parent_surname"]),
    })


def la_people(ctx: Context, on_roll: pl.DataFrame, leavers: pl.DataFrame) -> pl.DataFrame:
    people = pl.concat([on_roll.with_columns(send_over_18=pl.lit(False)), leavers], how="diagonal_relaxed")
    people = characteristics(ctx, people)
    people = upns(ctx, people)
    return people.with_columns(
        ulns(ctx, people),
        ethnicity=nullable(recorded_ethnicity(ctx, people), dtype=pl.String),
        **{c.name: c for c in contact_details(ctx, people)},
    )


def admission_dates(ctx: Context, people: pl.DataFrame) -> np.ndarray:
    """September of the year the child joined this school; about one in twelve joined mid-phase."""
    rng, ay = ctx.rng, ctx.academic_year
    age = people["age_31_august"].to_numpy()
    entry_age = np.select(
        [people["kind"].to_numpy() == k for k in ("primary", "secondary", "special", "pru")],
        [np.minimum(age, 4), np.minimum(age, 11), np.minimum(age, rng.integers(4, 12, len(age))), age],
        default=age,
    )
    entry_age = np.where(np.isin(people["nc_year"].to_numpy(), ["N1", "N2", "12", "13"]), age, entry_age)
    start = np.array([np.datetime64(dt.date(ay - k, 9, 3)) for k in range(0, 20)])
    joined = start[np.clip(age - entry_age, 0, 19)]
    census = np.datetime64(ctx.census_day)
    mover = bernoulli(rng, 0.08, len(age))
    moved = joined + (rng.random(len(age)) * (census - joined).astype(int)).astype("timedelta64[D]")
    return np.where(mover, moved, joined)


def pupils_frame(ctx: Context, people: pl.DataFrame) -> pl.DataFrame:
    rng = ctx.rng
    pupils = people.filter(pl.col("on_roll"))
    schools = ctx.schools.with_row_index("school")
    pupils = pupils.join(schools.select("school", "urn", "laestab"), on="school", how="left", maintain_order="left")
    admitted = admission_dates(ctx, pupils)
    census = np.datetime64(ctx.census_day)
    year_start = np.datetime64(dt.date(ctx.academic_year, 9, 3))
    full_sessions = 2 * np.busday_count(year_start, census) - 30  # less Christmas and half term
    share = np.busday_count(np.maximum(admitted, year_start), census) / np.busday_count(year_start, census)
    compulsory = pupils["age_31_august"].is_between(4, 15).to_numpy()
    possible = np.round(full_sessions * share).astype(int)
    rate = rng.beta(1.2, 17, pupils.height) * np.where(pupils["fsm_eligible"].to_numpy(), 1.6, 1.0)
    missed = np.minimum(np.round(possible * rate * np.where(pupils["sen_provision"].to_numpy() != "N", 1.4, 1.0)),
                        possible).astype(int)
    ability = pupils["ability"].to_numpy()
    year6 = pupils["nc_year"].to_numpy() == "6"
    year11 = pupils["nc_year"].to_numpy() == "11"
    ks2 = {}
    for column, target in KS2_EXPECTED_RATE.items():
        score = ability + rng.normal(0, 0.6, pupils.height)
        cut = np.quantile(score[year6], 1 - target) if year6.any() else 0.0
        ks2[column] = nullable(np.where(year6, np.where(score >= cut, "Y", "N"), None), dtype=pl.String)
    a8 = np.clip(np.round((46 + 15 * ability + rng.normal(0, 6, pupils.height)) * 2) / 2, 0, 90)
    pupils = pupils.with_columns(
        enrolment_status=pl.lit("C"),
        sessions_possible=nullable(np.where(compulsory, possible, None), dtype=pl.Int64),
        sessions_missed=nullable(np.where(compulsory, missed, None), dtype=pl.Int64),
        **ks2,
        ks4_attainment8=nullable(np.where(year11, a8, None), dtype=pl.Float64),
        admission_date=iso(admitted),
        last_contact_date=pl.lit(ctx.census_day.isoformat()),
    )
    return with_dual_registrations(ctx, pupils)


def with_dual_registrations(ctx: Context, pupils: pl.DataFrame) -> pl.DataFrame:
    """A few secondary pupils also attend a PRU: the same UPN twice, as a main and subsidiary pair."""
    rng = ctx.rng
    prus = ctx.schools.filter(pl.col("kind") == "pru")
    dual = (pupils["kind"] == "secondary").to_numpy() & bernoulli(rng, DUAL_REGISTRATION_SHARE, pupils.height)
    if not prus.height:  # a small LA may have no PRU to register anyone at
        dual[:] = False
    pupils = pupils.with_columns(enrolment_status=nullable(np.where(dual, "M", "C")))
    chosen = pl.Series(rng.integers(0, max(prus.height, 1), dual.sum()))
    subsidiary = pupils.filter(pl.Series(dual)).with_columns(
        urn=prus["urn"].gather(chosen),
        laestab=prus["laestab"].gather(chosen),
        enrolment_status=pl.lit("S"),
        admission_date=pl.lit((ctx.census_day - dt.timedelta(days=60)).isoformat()),
        sessions_possible=pl.col("sessions_possible") // 4,
        sessions_missed=pl.col("sessions_missed") // 4,
    )
    return pl.concat([pupils, subsidiary]).sort("urn", "nc_year", "surname", maintain_order=True).with_columns(
        school_urn=pl.col("urn").cast(pl.String),
        school_laestab=pl.col("laestab"),
    )


def early_years_children(ctx: Context, people: pl.DataFrame, providers: pl.DataFrame) -> pl.DataFrame:
    """Nursery-class pupils (who carry UPNs) and children at settings and childminders (who don't)."""
    rng = ctx.rng
    nursery = people.filter(pl.col("on_roll") & pl.col("nc_year").is_in(["N1", "N2"]))
    nursery = nursery.join(ctx.schools.with_row_index("school").select("school", "urn"), on="school", maintain_order="left").with_columns(
        provider_urn=pl.col("urn")
    )
    n = max(0, round((ctx.plan.ey_children - nursery.height) / FUNDED_SHARE_OF_UNDER_FIVES))
    age = pick(rng, {"3": 0.35, "2": 0.35, "1": 0.2, "0": 0.1}, n).astype(int)
    settings = providers.filter(pl.col("provider_type") != "SCH")
    weights = settings["size_weight"].to_numpy()
    others = pl.DataFrame(demographics(ctx, n, age, None)).with_columns(
        age_31_august=pl.Series(age),
        provider_urn=pl.Series(settings["provider_urn"].to_numpy()[rng.choice(settings.height, n, p=weights / weights.sum())]),
        upn=pl.lit(None, dtype=pl.String),
    )
    others = others.with_columns(
        ethnicity=pl.col("ethnicity_main"),
        **{c.name: c for c in contact_details(ctx, others)},
    )
    columns = [*others.columns]
    children = pl.concat([nursery.select(columns), others.select(columns)], how="vertical_relaxed")
    m = children.height
    disadvantaged = bernoulli(rng, 0.22, m)
    second = settings["provider_urn"].to_numpy()[rng.integers(0, settings.height, m)]
    splits = bernoulli(rng, 0.08, m) & (second != children["provider_urn"].to_numpy())
    return children.with_columns(
        child_id=pl.Series([f"EY{ctx.plan.old_la_code}{i:06d}" for i in range(1, m + 1)]),
        working=pl.Series(~disadvantaged & bernoulli(rng, 0.6, m)),
        disadvantaged=pl.Series(disadvantaged),
        two_year_basis=nullable(np.where(
            disadvantaged, pick(rng, {"ECO": 0.8, "HSD": 0.1, "LAA": 0.08, "ECO;HSD": 0.02}, m), None
        ), dtype=pl.String),
        parent_id_kind=nullable(np.where(bernoulli(rng, 0.97, m), "NI", "NASS")),
        stretched=pl.Series(bernoulli(rng, 0.2, m)),
        reduced_hours=nullable(np.where(bernoulli(rng, 0.2, m), rng.choice([2.5, 5.0], m), 0.0)),
        second_provider=pl.Series(np.where(splits, second, -1)),
        leaves_after=nullable(np.where(bernoulli(rng, 0.04, m), rng.choice(["autumn", "spring"], m), None),
                               dtype=pl.String),
        sen_provision=pl.Series(pick(rng, {"E": 0.02, "K": 0.06, "N": 0.92}, m)),
        daf=pl.Series(bernoulli(rng, 0.015, m)),
        eypp_basis=nullable(np.where(
            disadvantaged & bernoulli(rng, 0.7, m), pick(rng, {"EE": 0.9, "EB": 0.05, "EO": 0.05}, m),
            np.where(bernoulli(rng, 0.02, m), pick(rng, {"EO": 0.5, "EU": 0.5}, m), None),
        ), dtype=pl.String),
        eligibility_code=pl.Series(np.char.zfill(rng.integers(0, 10**11, m).astype(str), 11)),
        parent_ni_number=pl.Series(ni_numbers(rng, m)),
        parent_nass_number=pl.Series(nass_numbers(rng, m)),
    )


def ni_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    first = np.array(list("ABCEGHJKLMNOPRSTWXYZ"))
    second = np.array(list("ABCEGHJKLMNPRSTWXYZ"))
    prefixes = np.array([a + b for a in first for b in second if a + b not in NINO_UNALLOCATED_PREFIXES])
    digits = np.char.zfill(rng.integers(0, 10**6, n).astype(str), 6)
    return np.char.add(np.char.add(rng.choice(prefixes, n), digits), rng.choice(list("ABCD"), n))


def nass_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Asylum support references as the DfE's eligibility checker accepts them: YYMM then six digits."""
    year = np.char.zfill(rng.integers(15, 26, n).astype(str), 2)
    month = np.char.zfill(rng.integers(1, 13, n).astype(str), 2)
    return np.char.add(np.char.add(year, month), np.char.zfill(rng.integers(0, 10**6, n).astype(str), 6))


def early_years_frame(ctx: Context, people: pl.DataFrame, providers: pl.DataFrame) -> pl.DataFrame:
    """One row per child, provider and term, with the entitlement the child's age and family give."""
    ay = ctx.academic_year
    children = early_years_children(ctx, people, providers)
    caps = codeset("ey_entitlement", ay).select(
        pl.col("code").alias("entitlement"), pl.col("max_hours_per_week").cast(pl.Float64).alias("cap")
    )
    terms = pl.DataFrame({
        "term_name": list(TERMS),
        "term": [Term(ay, t).label for t in TERMS],
        "term_start": [Term(ay, t).start for t in TERMS],
        "term_order": [0, 1, 2],
        "term_weeks": [TERM_WEEKS[t] for t in TERMS],
    })
    birthday_before_term = lambda months: pl.col("date_of_birth").dt.offset_by(f"{months}mo") < pl.col("term_start")  # noqa: E731
    leave_order = pl.col("leaves_after").replace_strict({"autumn": 0, "spring": 1}, default=9, return_dtype=pl.Int64)
    rows = (
        children.with_columns(pl.col("date_of_birth").cast(pl.Date))
        .join(terms, how="cross", maintain_order="left")
        .filter(pl.col("term_order") <= leave_order)
        .with_columns(
            entitlement=pl.when(birthday_before_term(36) & pl.col("working")).then(pl.lit("E34"))
            .when(birthday_before_term(36)).then(pl.lit("U34"))
            .when(birthday_before_term(24) & pl.col("disadvantaged")).then(pl.lit("2YO"))
            .when(birthday_before_term(9) & pl.col("working")).then(pl.lit("WPE"))
        )
        .filter(pl.col("entitlement").is_not_null()  # and no funding from compulsory school age (a child held back)
                & (pl.col("date_of_birth").dt.offset_by("5y") >= pl.col("term_start")))
        .join(caps, on="entitlement", how="left", maintain_order="left")
    )
    weekly = pl.when(pl.col("stretched")).then(pl.col("cap") * 38 / 51).otherwise(pl.col("cap") - pl.col("reduced_hours"))
    rows = rows.with_columns(
        funded_weeks=pl.when(pl.col("stretched")).then(pl.lit(STRETCHED_WEEKS_PER_TERM)).otherwise(pl.col("term_weeks")),
        weekly=weekly,
    )
    split = rows.filter(pl.col("second_provider") >= 0)
    rows = pl.concat([
        rows.with_columns(weekly=pl.when(pl.col("second_provider") >= 0).then(pl.col("weekly") * 0.6).otherwise(pl.col("weekly"))),
        split.with_columns(provider_urn=pl.col("second_provider"), weekly=pl.col("weekly") * 0.4),
    ])
    closed = pl.when(pl.col("leaves_after") == "autumn").then(pl.lit(f"{ay}-12-31")).when(
        pl.col("leaves_after") == "spring").then(pl.lit(f"{ay + 1}-03-31")).when(
        pl.col("age_31_august") >= 3).then(pl.lit(academic_year_end(ay).isoformat()))
    needs_parent_id = pl.col("two_year_basis").str.contains("ECO").fill_null(False) | pl.col("eypp_basis").is_in(["EE", "EB"])
    rows = rows.join(providers.select("provider_urn", "provider_type"), on="provider_urn", how="left", maintain_order="left")
    rows = rows.sort("child_id", "term_order", "provider_urn")
    extra = side_stream(ctx.rng).choice([0.0, 0.0, 2.5, 5.0, 7.5, 15.0], rows.height)  # paid hours beyond the funded
    return rows.with_columns(
        provider_urn=pl.col("provider_urn").cast(pl.String),
        funded_hours_per_week=pl.col("weekly").round(2),
        hours_at_setting=((pl.col("weekly").round(2) * 2).ceil() / 2 + pl.Series(extra)).clip(upper_bound=70.0),
        two_year_basis=pl.when(pl.col("entitlement") == "2YO").then(pl.col("two_year_basis")),
        eligibility_code=pl.when(pl.col("entitlement").is_in(["E34", "WPE"])).then(pl.col("eligibility_code")),
        parent_ni_number=pl.when(needs_parent_id & (pl.col("parent_id_kind") == "NI")).then(pl.col("parent_ni_number")),
        parent_nass_number=pl.when(needs_parent_id & (pl.col("parent_id_kind") == "NASS")).then(pl.col("parent_nass_number")),
        case_closed_date=closed,
        date_of_birth=pl.col("date_of_birth").dt.to_string("%Y-%m-%d"),
    )


def destinations_frame(ctx: Context, people: pl.DataFrame) -> pl.DataFrame:
    """NCCIS cohort: academic age 16-17, and young people with an EHC plan up to 25."""
    rng, ay = ctx.rng, ctx.academic_year
    cohort = people.filter(pl.col("age_31_august").is_in([16, 17]) | pl.col("send_over_18"))
    schools = ctx.schools.with_row_index("school")
    secondaries = schools.filter(pl.col("kind") == "secondary")["urn"].to_numpy()
    specials = schools.filter(pl.col("kind") == "special")["urn"].to_numpy()
    n = cohort.height
    own = cohort.join(schools.select("school", "urn"), on="school", how="left", maintain_order="left")["urn"].to_numpy()
    ehcp = cohort["sen_provision"].to_numpy() == "E"
    last_school = np.where(
        ~np.isnan(own.astype(float)), own,
        np.where(ehcp & bernoulli(rng, 0.6, n), rng.choice(specials, n), rng.choice(secondaries, n)),
    ).astype(np.int64)
    on_roll = cohort["on_roll"].to_numpy()
    adult = cohort["send_over_18"].to_numpy()
    activity = np.where(on_roll, "210", np.where(adult, pick(rng, SEND_ADULT_ACTIVITY, n), pick(rng, LEAVER_ACTIVITY, n)))
    age = cohort["age_31_august"].to_numpy()
    sixth_form_start = np.array([np.datetime64(dt.date(ay - k, 9, 1)) for k in range(0, 10)])[np.clip(age - 16, 0, 9)]
    window = np.datetime64(ctx.census_day) - np.datetime64(dt.date(ay - 1, 9, 1))
    other_start = np.datetime64(dt.date(ay - 1, 9, 1)) + (rng.random(n) * window.astype(int)).astype("timedelta64[D]")
    start = np.where(activity == "210", sixth_form_start, other_start).astype("datetime64[D]")
    frame = cohort.with_columns(
        person_id=pl.Series([f"YP{ctx.plan.old_la_code}{i:07d}" for i in range(1, n + 1)]),
        last_school_urn=pl.Series(last_school.astype(str)),
        activity_code=pl.Series(activity),
        ehcp=yes_no(ehcp),
    )
    return frame.with_columns(**nccis_tracking(ctx, frame, start))


NCCIS_EDUCATION = [str(c) for c in (*range(110, 160, 10), *range(210, 300, 10), 410, 430, 440, 450, 460)]
NCCIS_NEET = ["540", "610", "615", "616", "619", "620", "630", "640", "650", "660", "670", "680"]
NCCIS_REVIEWED = ["260", "290", "350", "616", "710"]
NCCIS_CURRENT = (NCCIS_EDUCATION + [str(c) for c in (310, 320, 330, 340, 350, 360, 380, 381, 530, 550, 710)])
NCCIS_CHARACTERISTIC_BY_ACTIVITY = {"620": "140", "630": "120", "650": "180"}  # NCCIS errors 233-235
LAPSED_SHARE = 0.04  # records whose currency has lapsed by the month end (sent with CurrencyLapsed Y)
OUT_OF_AREA_YEAR_11 = 0.07


def nccis_tracking(ctx: Context, frame: pl.DataFrame, start: np.ndarray) -> dict[str, pl.Series]:
    """What a CCIS holds about each young person's tracking, consistent as the NCCIS rules ask: dates in order
    (start <= ascertained <= verified <= the month end), a review date on temporary activities, a NEET start
    date on NEET ones, a currency lapse date on current ones (some already lapsed by the month end), September
    Guarantee offers for last year's year 11s and year 12s. Drawn from a stream of their own, so adding them
    left every other generated value as it was."""
    rng = side_stream(ctx.rng)
    n = frame.height
    activity, age = frame["activity_code"].to_numpy(), frame["age_31_august"].to_numpy()
    census = np.datetime64(ctx.census_day)
    lapsed = np.isin(activity, NCCIS_CURRENT) & (activity != "210") & bernoulli(rng, LAPSED_SHARE, n)
    verified_before = np.where(lapsed, rng.integers(200, 300, n), rng.integers(0, 60, n)).astype("timedelta64[D]")
    start = np.where(lapsed, census - verified_before - rng.integers(0, 60, n).astype("timedelta64[D]"), start)
    verified = np.maximum(census - verified_before, start)
    ascertained = start + ((verified - start).astype(int) * rng.random(n)).astype("timedelta64[D]")
    course_end = np.array([np.datetime64(dt.date(ctx.academic_year + k, 7, 31)) for k in (1, 2)])[(age == 16).astype(int)]
    predicted_end = np.where(np.isin(activity, NCCIS_EDUCATION), course_end, np.datetime64("NaT"))
    lapse = np.where(lapsed, verified + np.timedelta64(182, "D"), verified + rng.integers(150, 270, n).astype("timedelta64[D]"))
    lapse = np.where(np.isin(activity, NCCIS_EDUCATION), np.minimum(lapse, course_end), lapse)
    lapse = np.where(np.isin(activity, NCCIS_CURRENT), lapse, np.datetime64("NaT"))
    review = np.where(np.isin(activity, NCCIS_REVIEWED), np.minimum(verified + np.timedelta64(91, "D"), course_end),
                      np.datetime64("NaT"))
    neet_start = np.where(np.isin(activity, NCCIS_NEET), start - rng.integers(0, 60, n).astype("timedelta64[D]"),
                          np.datetime64("NaT"))
    la = ctx.plan.old_la_code
    others = [c for c in live_english_las()["old_la_code"].to_list() if c != la]
    year_11_la = np.where(bernoulli(rng, OUT_OF_AREA_YEAR_11, n), rng.choice(others, n), la)
    transferred = bernoulli(rng, 0.005, n)
    need = np.where(np.isin(activity, NCCIS_NEET + ["810", "820", "830"]), pick(rng, {"1": 0.4, "2": 0.6}, n),
                    pick(rng, {"2": 0.15, "3": 0.85}, n))
    return {
        "cohort_status": pl.Series(np.where(transferred, "T", "P")),
        "transferred_to_la": nullable(np.where(transferred, rng.choice(others, n), None), dtype=pl.String),
        "la_at_year_11": pl.Series(year_11_la),
        "educated_la": pl.Series(np.full(n, la)),
        "activity_start_date": iso(start),
        "date_ascertained": iso(ascertained),
        "date_verified": iso(verified),
        "review_date": iso(review),
        "predicted_end_date": iso(predicted_end),
        "due_to_lapse_date": iso(lapse),
        "neet_start_date": iso(neet_start),
        "level_of_need": pl.Series(need),
        "characteristics": characteristic_codes(rng, frame),
        "intended_destination": nullable(np.where((age == 16) & bernoulli(rng, 0.9, n),
                                                  np.where(activity == "210", "111", pick(rng, INTENDED, n)), None),
                                         dtype=pl.String),
        "sg_year11_status": nullable(np.where(age == 16, pick(rng, GUARANTEE, n), None), dtype=pl.String),
        "sg_year11_la": nullable(np.where(age == 16, year_11_la, None), dtype=pl.String),
        "sg_year12_status": nullable(np.where(age == 17, pick(rng, {**GUARANTEE, "114": 0.3}, n), None), dtype=pl.String),
        "sg_year12_la": nullable(np.where(age == 17, la, None), dtype=pl.String),
    }


INTENDED = {"121": 0.7, "211": 0.12, "311": 0.03, "321": 0.02, "411": 0.03, "511": 0.08, "611": 0.02}
GUARANTEE = {"110": 0.9, "120": 0.02, "122": 0.02, "140": 0.02, "151": 0.02, "154": 0.01, "159": 0.01}


def characteristic_codes(rng: np.random.Generator, frame: pl.DataFrame) -> pl.Series:
    """NCCIS characteristics (IC01) as a ';' list: looked after, care leaver, the one an activity needs (a young
    carer, a teenage parent, a pregnancy), and a few supervised by the youth offending team."""
    n = frame.height
    activity = frame["activity_code"].to_numpy()
    looked_after = frame["looked_after"].to_numpy().astype(bool)
    care_leaver = frame["post_looked_after"].is_not_null().to_numpy() & ~looked_after & bernoulli(rng, 0.3, n)
    parts = [np.where(looked_after, "110", ""), np.where(care_leaver, "160", ""),
             np.vectorize(lambda a: NCCIS_CHARACTERISTIC_BY_ACTIVITY.get(a, ""))(activity) if n else np.array([], str),
             np.where(bernoulli(rng, 0.01, n), "170", "")]
    joined = [";".join(sorted({p for p in row if p})) or None for row in zip(*parts, strict=True)]
    return pl.Series(joined, dtype=pl.String)


def ncmp_frame(ctx: Context, people: pl.DataFrame) -> pl.DataFrame:
    """Reception and year 6 in state primaries, measured between October and June.

    Heights follow a linear growth curve; BMI is log-normal with a heavier upper tail in year 6, giving
    obesity around one child in ten in reception and one in five in year 6, as in published NCMP data.
    """
    rng, ay = ctx.rng, ctx.academic_year
    schools = ctx.schools.with_row_index("school").filter(pl.col("kind") == "primary")
    measured = people.filter(pl.col("on_roll") & pl.col("nc_year").is_in(["R", "6"])).join(
        schools.select("school", "urn"), on="school", how="inner", maintain_order="left"
    )
    measured = measured.filter(pl.Series(bernoulli(rng, NCMP_PARTICIPATION, measured.height)))
    n = measured.height
    first, last = np.datetime64(dt.date(ay, 10, 1)), np.datetime64(dt.date(ay + 1, 6, 30))
    day = np.busday_offset(first, rng.integers(0, np.busday_count(first, last), n), roll="forward")
    age = (day - measured["date_of_birth"].to_numpy().astype("datetime64[D]")).astype(int) / 365.25
    male = measured["sex"].to_numpy() == "M"
    year6 = measured["nc_year"].to_numpy() == "6"
    height = (84.0 + 5.7 * age + 0.6 * male) * (1 + 0.043 * rng.normal(0, 1, n))
    median_bmi = np.where(year6, 17.6, 15.6)
    spread = np.where(year6, 0.16, 0.10)
    bmi = median_bmi * np.exp(spread * (rng.normal(0, 1, n) + 0.35 * rng.exponential(1.0, n)))
    weight = bmi * (height / 100) ** 2
    return measured.with_columns(
        school_urn=pl.col("urn").cast(pl.String),
        measurement_date=iso(day),
        height_cm=pl.Series(np.round(height, 1)),
        weight_kg=pl.Series(np.round(weight, 1)),
    )


def la_datasets(ctx: Context, on_roll: pl.DataFrame, leavers: pl.DataFrame, providers: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Every dataset of one LA, each with exactly the export columns, all as text as a CSV holds them."""
    people = la_people(ctx, on_roll, leavers)
    frames = {
        "pupils": pupils_frame(ctx, people),
        "early_years": early_years_frame(ctx, people, providers),
        "destinations": destinations_frame(ctx, people),
        "ncmp": ncmp_frame(ctx, people),
    }
    return {name: as_export(frame, DATASET_COLUMNS[name]) for name, frame in frames.items()}


def as_export(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    flags = [c for c in columns if frame.schema.get(c) == pl.Boolean]
    dates = [c for c in columns if frame.schema.get(c) in (pl.Date, pl.Datetime("us"), pl.Datetime("ns"))]
    return frame.with_columns(
        *[pl.when(pl.col(c)).then(pl.lit("Y")).otherwise(pl.lit("N")).alias(c) for c in flags],
        *[pl.col(c).dt.to_string("%Y-%m-%d") for c in dates],
    ).select(pl.col(c).cast(pl.String) for c in columns)
