"""The children and young people of one synthetic LA, with the characteristics schools record.

Proportions follow published national figures (SEN support about 13%, EHC plans about 4-5%, FSM about 22%,
a county's ethnicity mix with genuinely rare groups) so that small cells arise where they would in real data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

from schemas.calendar import Term
from schemas.identifiers import UPN_LETTERS, uln_check_digit, upn_check_letter
from schemas.lookups import codeset, live_english_las

from .plan import DATA_DIR, MAX_PUPILS_PER_LA, LaPlan

# Share of one single-year cohort on roll in each NC year, by kind of school.
YEAR_SHARES = {
    "N1": {"primary": 0.03},
    "N2": {"primary": 0.30, "special": 0.002},
    **{y: {"primary": 0.985, "special": 0.012} for y in ("R", "1", "2", "3", "4", "5", "6")},
    **{y: {"secondary": 0.975, "special": 0.015, "pru": 0.003} for y in ("7", "8", "9", "10", "11")},
    "12": {"secondary": 0.42, "special": 0.01},
    "13": {"secondary": 0.38, "special": 0.01},
    "14": {"special": 0.005},
}
DUAL_REGISTRATION_SHARE = 0.002  # secondary pupils also registered at a PRU (main + subsidiary)
OUT_OF_COHORT_SHARE = 0.006
IN_MIGRANT_SHARE = 0.03  # UPN allocated by a school in another LA
TEMPORARY_UPN_SHARE = 0.003
FORMER_UPN_SHARE = 0.012
NCCIS_COVERAGE = 0.9  # share of a 16-17 cohort on the NCCIS caseload
SEND_ADULT_SHARE = 0.01  # share of each cohort aged 18-25 tracked for an EHC plan

ETHNICITY_MIX = {  # a county mix close to Leicestershire's pupil population
    "WBRI": 0.752, "WIRI": 0.003, "WIRT": 0.0012, "WROM": 0.0025, "WOTH": 0.045,
    "MWBC": 0.012, "MWBA": 0.004, "MWAS": 0.010, "MOTH": 0.012,
    "AIND": 0.055, "APKN": 0.006, "ABAN": 0.003, "AOTH": 0.008, "ABRI": 0.002, "AWEL": 0.0002,
    "CHNE": 0.004, "BCRB": 0.002, "BAFR": 0.012, "BOTH": 0.002, "BBRI": 0.001, "BWEL": 0.0001,
    "OOTH": 0.008, "REFU": 0.005, "NOBT": 0.006,
}
EXTENDED_ETHNICITY = {  # in schools that use extended codes, how each main code's pupils are recorded
    "WBRI": {"WENG": 0.85, "WSCO": 0.05, "WWEL": 0.04, "WNIR": 0.02, "WCOR": 0.01, "WOWB": 0.03},
    "WOTH": {"WEEU": 0.35, "WPOR": 0.15, "WITA": 0.1, "WALB": 0.1, "WGRE": 0.05, "WTUR": 0.1, "WOTW": 0.15},
    "WROM": {"WROG": 0.4, "WROR": 0.5, "WROO": 0.1},
    "MWAS": {"MWAI": 0.5, "MWAP": 0.3, "MWAO": 0.2},
    "OOTH": {"ORAB": 0.4, "OOTH": 0.6},
}
EXTENDED_CODE_SCHOOL_SHARE = 0.1
NAME_GROUP = {  # ethnicity main code prefix -> names.csv group
    "WB": "white_british", "WI": "white_british", "WR": "white_other", "WO": "white_other", "M": "white_british",
    "CH": "east_asian", "A": "south_asian", "B": "black", "O": "arab_other", "R": "white_british", "N": "white_british",
}
FIRST_LANGUAGE = {  # by name group
    "white_british": {"ENG": 0.992, "ENB": 0.005, "REF": 0.003},
    "white_other": {"ENG": 0.34, "POL": 0.3, "ROM": 0.2, "LIT": 0.08, "POR": 0.08},
    "south_asian": {"ENG": 0.44, "GUJ": 0.25, "PNJ": 0.15, "URD": 0.1, "BNG": 0.05, "OTB": 0.01},
    "black": {"ENG": 0.7, "SOM": 0.2, "YOR": 0.1},
    "east_asian": {"ENG": 0.5, "CHI": 0.5},
    "arab_other": {"ENG": 0.4, "ARA": 0.5, "TUR": 0.1},
}
SEN_NEED = {
    "E": {"ASD": 0.33, "SEMH": 0.15, "SLCN": 0.15, "SLD": 0.09, "MLD": 0.08, "PMLD": 0.03, "PD": 0.04,
          "SPLD": 0.03, "HI": 0.02, "VI": 0.01, "MSI": 0.003, "OTH": 0.057},
    "K": {"SLCN": 0.25, "SEMH": 0.2, "MLD": 0.16, "SPLD": 0.14, "ASD": 0.08, "OTH": 0.05, "NSA": 0.05,
          "PD": 0.03, "HI": 0.02, "VI": 0.01, "MSI": 0.01},
}
POST_LOOKED_AFTER = {"A": 0.5, "S": 0.35, "C": 0.12, "R": 0.03}
FSM_RATE = 0.22
KS2_EXPECTED_RATE = {"ks2_reading_expected": 0.74, "ks2_writing_expected": 0.72, "ks2_maths_expected": 0.73}


@dataclass(frozen=True)
class Context:
    """What every part of one LA's generation needs."""

    plan: LaPlan
    academic_year: int
    rng: np.random.Generator
    postcodes: pl.DataFrame
    schools: pl.DataFrame

    @property
    def census_day(self) -> dt.date:
        return Term(self.academic_year, "spring").census_date


def side_stream(rng: np.random.Generator) -> np.random.Generator:
    """A generator of its own, spawned from the LA's seed: values added later draw from it, so everything the LA's
    main stream generates stays as it was (the same seed, the same files)."""
    return np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])


def nullable(values: np.ndarray, dtype: pl.DataType | None = None) -> pl.Series:
    """A numpy array that may hold None (so has object dtype) as a typed polars series."""
    return pl.Series(values.tolist() if values.dtype == object else values, dtype=dtype)


def pick(rng: np.random.Generator, distribution: dict[str, float], n: int) -> np.ndarray:
    keys = np.array(list(distribution))
    weights = np.array(list(distribution.values()), dtype=float)
    return keys[rng.choice(len(keys), n, p=weights / weights.sum())]


def bernoulli(rng: np.random.Generator, p, n: int) -> np.ndarray:
    return rng.random(n) < p


def calibrated_probability(score: np.ndarray, rate: float) -> np.ndarray:
    """Logistic probabilities whose mean is the target rate, keeping the score's ordering."""
    low, high = -20.0, 20.0
    for _ in range(50):
        mid = (low + high) / 2
        if (1 / (1 + np.exp(-(score + mid)))).mean() < rate:
            low = mid
        else:
            high = mid
    return 1 / (1 + np.exp(-(score + (low + high) / 2)))


@cache
def name_lists() -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    names = pl.read_csv(DATA_DIR / "names.csv")
    return {
        (kind, group): (part["name"].to_numpy(), part["weight"].to_numpy() / part["weight"].sum())
        for (kind, group), part in names.group_by("kind", "group", maintain_order=True)
    }


def names_for(rng: np.random.Generator, kind: str, groups: np.ndarray) -> np.ndarray:
    out = np.empty(len(groups), dtype=object)
    for group in np.unique(groups):
        values, weights = name_lists()[(kind, group)]
        where = groups == group
        out[where] = rng.choice(values, where.sum(), p=weights)
    return out


def forenames(rng: np.random.Generator, sex: np.ndarray, groups: np.ndarray) -> np.ndarray:
    female = names_for(rng, "forename_f", groups)
    male = names_for(rng, "forename_m", groups)
    return np.where(sex == "F", female, male)


def name_group(ethnicity_main: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    groups = np.full(len(ethnicity_main), "white_british", dtype=object)
    for prefix in sorted(NAME_GROUP, key=len):  # longer prefixes win
        groups[np.char.startswith(ethnicity_main.astype(str), prefix)] = NAME_GROUP[prefix]
    mixed = np.char.startswith(ethnicity_main.astype(str), "M") & bernoulli(rng, 0.3, len(groups))
    groups[mixed] = rng.choice(["black", "south_asian", "white_other"], mixed.sum())
    return groups


def dates_of_birth(rng: np.random.Generator, academic_year: int, age_31_august: np.ndarray) -> np.ndarray:
    """Born in the twelve months (1 September to 31 August) that give this age at the start of the year."""
    birth_year = academic_year - age_31_august  # year of the 31 August ending that twelve-month window
    first = (birth_year - 1 - 1970).astype("datetime64[Y]").astype("datetime64[M]") + 8  # 1 September
    last = (birth_year - 1970).astype("datetime64[Y]").astype("datetime64[M]") + 8  # 1 September after
    span = (last.astype("datetime64[D]") - first.astype("datetime64[D]")).astype(int)
    return first.astype("datetime64[D]") + np.floor(rng.random(len(age_31_august)) * span).astype("timedelta64[D]")


def school_places(ctx: Context) -> pl.DataFrame:
    """One row per pupil on roll: school and NC year, cohort sizes spread over heavy-tailed schools."""
    schools = ctx.schools
    nc_order = codeset("nc_year", ctx.academic_year)["code"].to_list()
    rank = {code: i for i, code in enumerate(nc_order)}
    frames = []
    for year, shares in YEAR_SHARES.items():
        for kind, share in shares.items():
            offers = (
                (pl.col("kind") == kind)
                & (pl.col("nc_low").replace_strict(rank, return_dtype=pl.Int32) <= rank[year])
                & (pl.col("nc_high").replace_strict(rank, return_dtype=pl.Int32) >= rank[year])
            )
            eligible = schools.with_row_index("school").filter(offers)
            if eligible.is_empty():
                continue
            weights = eligible["size_weight"].to_numpy()
            counts = ctx.rng.multinomial(round(ctx.plan.cohort * share), weights / weights.sum())
            frames.append(
                pl.DataFrame(
                    {"school": np.repeat(eligible["school"].to_numpy(), counts), "nc_year": year},
                    schema={"school": pl.UInt32, "nc_year": pl.String},
                )
            )
    return pl.concat(frames)


def demographics(ctx: Context, n: int, age_31_august: np.ndarray, home_wards: np.ndarray | None) -> dict:
    """Sex, ethnicity, names, birth date and address for n people; home ward near their school if given."""
    rng = ctx.rng
    sex = np.where(bernoulli(rng, 0.512, n), "M", "F")
    main = pick(rng, ETHNICITY_MIX, n)
    groups = name_group(main, rng)
    if home_wards is None:
        postcode_row = rng.integers(0, ctx.postcodes.height, n)
    else:
        postcode_row = postcodes_near(ctx, home_wards)
    surname = names_for(rng, "surname", groups)
    parent_sex = np.where(bernoulli(rng, 0.8, n), "F", "M")
    parent_surname = np.where(bernoulli(rng, 0.85, n), surname, names_for(rng, "surname", groups))
    return {
        "sex": sex,
        "ethnicity_main": main,
        "name_group": groups,
        "surname": surname,
        "forename": forenames(rng, sex, groups),
        "date_of_birth": dates_of_birth(rng, ctx.academic_year, age_31_august),
        "postcode_row": postcode_row,
        "house_number": rng.integers(1, 180, n),
        "parent_forename": forenames(rng, parent_sex, groups),
        "parent_surname": parent_surname,
    }


def postcodes_near(ctx: Context, ward_codes: np.ndarray) -> np.ndarray:
    """A postcode in the given ward nine times in ten, otherwise anywhere in the LA."""
    by_ward = ctx.postcodes.with_row_index("row").group_by("ward_code").agg(pl.col("row"))
    rows_of = dict(zip(by_ward["ward_code"].to_list(), by_ward["row"].to_list(), strict=True))
    out = ctx.rng.integers(0, ctx.postcodes.height, len(ward_codes))
    local = bernoulli(ctx.rng, 0.9, len(ward_codes))
    for ward in np.unique(ward_codes[local]):
        where = local & (ward_codes == ward)
        out[where] = ctx.rng.choice(rows_of[ward], where.sum())
    return out


def pupils_on_roll(ctx: Context) -> pl.DataFrame:
    places = school_places(ctx)
    schools = ctx.schools.with_row_index("school")
    places = places.join(schools.select("school", "kind", "ward_code"), on="school", how="left", maintain_order="left")
    ages = codeset("nc_year", ctx.academic_year).select("code", pl.col("age_31_august").cast(pl.Int32))
    age = places.join(ages, left_on="nc_year", right_on="code", how="left", maintain_order="left")["age_31_august"].to_numpy()
    shift = np.where(bernoulli(ctx.rng, OUT_OF_COHORT_SHARE, len(age)), ctx.rng.choice([-1, 1], len(age)), 0)
    people = demographics(ctx, places.height, age + shift, places["ward_code"].to_numpy())
    return places.with_columns(
        pl.Series("age_31_august", age + shift),
        *[pl.Series(k, v) for k, v in people.items()],
        on_roll=pl.lit(True),
    )


def destination_only_people(ctx: Context, on_roll: pl.DataFrame) -> pl.DataFrame:
    """Young people tracked for NCCIS but not on a school roll: leavers aged 16-17, and SEND up to 25."""
    in_sixth_form = on_roll.filter(pl.col("age_31_august").is_in([16, 17])).height
    leavers = max(0, round(2 * NCCIS_COVERAGE * ctx.plan.cohort) - in_sixth_form)
    send = round(8 * SEND_ADULT_SHARE * ctx.plan.cohort)
    age = np.concatenate([ctx.rng.choice([16, 17], leavers), ctx.rng.integers(18, 26, send)])
    people = demographics(ctx, len(age), age, None)
    return pl.DataFrame(
        {
            "school": pl.Series([None] * len(age), dtype=pl.UInt32),
            "nc_year": np.where(age <= 17, (age - 4).astype(str), "X"),
            "kind": "leaver",
            "age_31_august": age,
            **people,
            "on_roll": False,
            "send_over_18": np.arange(len(age)) >= leavers,
        }
    )


def characteristics(ctx: Context, people: pl.DataFrame) -> pl.DataFrame:
    """SEN, FSM, language, care status and opt-outs, correlated the way published data are."""
    rng, n = ctx.rng, people.height
    male = people["sex"].to_numpy() == "M"
    special = people["kind"].to_numpy() == "special"
    send_adult = people["send_over_18"].fill_null(False).to_numpy()
    nursery = np.isin(people["nc_year"].to_numpy(), ["N1", "N2"])
    p_ehcp = np.where(special | send_adult, 1.0, np.where(nursery, 0.005, 0.025 * np.where(male, 1.3, 0.7)))
    p_support = np.where(nursery, 0.05, 0.13 * np.where(male, 1.2, 0.8))
    draw = rng.random(n)
    sen = np.where(draw < p_ehcp, "E", np.where(draw < p_ehcp + p_support * (1 - p_ehcp), "K", "N"))
    need = np.full(n, None, dtype=object)
    for level, distribution in SEN_NEED.items():
        need[sen == level] = pick(rng, distribution, (sen == level).sum())
    ward_effect = {w: e for w, e in zip(ctx.postcodes["ward_code"].unique(maintain_order=True).to_list(),
                                        rng.normal(0, 0.8, ctx.postcodes["ward_code"].n_unique()), strict=True)}
    home_ward = ctx.postcodes["ward_code"].to_numpy()[people["postcode_row"].to_numpy()]
    main = people["ethnicity_main"].to_numpy()
    score = (
        np.vectorize(ward_effect.get)(home_ward)
        + np.isin(main, ["WIRT", "WROM", "BAFR", "BOTH", "MWBC"]) * 1.0
        - np.isin(main, ["AIND", "CHNE"]) * 0.8
        + (sen != "N") * 0.6
    )
    fsm = bernoulli(rng, calibrated_probability(score, FSM_RATE), n)
    looked_after = bernoulli(rng, np.where(special, 0.03, 0.006), n)
    post_la = np.where(~looked_after & bernoulli(rng, 0.012, n), pick(rng, POST_LOOKED_AFTER, n), None)
    language = np.empty(n, dtype=object)
    groups = people["name_group"].to_numpy()
    for group, distribution in FIRST_LANGUAGE.items():
        language[groups == group] = pick(rng, distribution, (groups == group).sum())
    age_on_census = (np.datetime64(ctx.census_day) - people["date_of_birth"].to_numpy()).astype(int) // 365.25
    opt_out = (age_on_census >= 13) & bernoulli(rng, 0.04, n)
    return people.with_columns(
        sen_provision=pl.Series(sen),
        sen_primary_need=nullable(need, dtype=pl.String),
        fsm_eligible=pl.Series(fsm),
        looked_after=pl.Series(looked_after),
        post_looked_after=nullable(post_la, dtype=pl.String),
        first_language=nullable(language, dtype=pl.String),
        yss_opt_out=pl.Series(opt_out),
        age_on_census=pl.Series(age_on_census.astype(np.int32)),
        ability=pl.Series(rng.normal(0, 1, n) - 0.45 * fsm - 0.9 * (sen == "K") - 2.0 * (sen == "E")),
    )


def recorded_ethnicity(ctx: Context, people: pl.DataFrame) -> np.ndarray:
    """Main codes, or extended codes for pupils of the schools that record those."""
    main = people["ethnicity_main"].to_numpy().astype(object)
    uses_extended = bernoulli(ctx.rng, EXTENDED_CODE_SCHOOL_SHARE, ctx.schools.height)
    school = people["school"].to_numpy()
    extended_school = np.zeros(len(main), dtype=bool)
    on_roll = ~np.isnan(school.astype(float))
    extended_school[on_roll] = uses_extended[school[on_roll].astype(int)]
    recorded = main.copy()
    for code, distribution in EXTENDED_ETHNICITY.items():
        where = extended_school & (main == code)
        recorded[where] = pick(ctx.rng, distribution, where.sum())
    return recorded


def upns(ctx: Context, people: pl.DataFrame) -> pl.DataFrame:
    """Permanent UPNs from the school that first admitted each child, temporary ones for a few.

    Serial numbers run per allocating school and year, so every UPN is unique; children from other LAs
    carry their first LA's code, in an establishment number reserved for this LA's in-migrants.
    """
    rng, n = ctx.rng, people.height
    primaries = ctx.schools.with_row_index("school").filter(pl.col("kind") == "primary")
    own_school = people["school"].to_numpy()
    kind = people["kind"].to_numpy()
    estab = ctx.schools["laestab"].str.slice(3, 4).to_numpy()
    first_school_estab = np.where(
        np.isin(kind, ["primary", "special"]),
        estab[np.nan_to_num(own_school.astype(float)).astype(int)],
        primaries["laestab"].str.slice(3, 4).to_numpy()[rng.integers(0, primaries.height, n)],
    )
    la = np.full(n, ctx.plan.old_la_code, dtype=object)
    migrant = bernoulli(rng, IN_MIGRANT_SHARE, n)
    other_las = np.array(live_english_las()["old_la_code"].to_list())
    la[migrant] = rng.choice(other_las, migrant.sum())
    first_school_estab[migrant] = str(3500 + ctx.plan.index)
    age = people["age_31_august"].to_numpy()
    issue_year = (ctx.academic_year - np.maximum(age - 4, 0)) % 100
    temporary = bernoulli(rng, TEMPORARY_UPN_SHARE, n)
    former = ~temporary & bernoulli(rng, FORMER_UPN_SHARE, n)
    keys = pl.DataFrame({
        "stem": np.char.add(np.char.add(la.astype(str), first_school_estab.astype(str)),
                            np.char.zfill(issue_year.astype(str), 2)),
        "temporary": temporary,
        "former": former,
    })
    serial = keys.select(pl.int_range(pl.len()).over("stem", "temporary").alias("serial"))["serial"].to_numpy()
    former_serial = keys.select(
        (pl.int_range(pl.len()).over("stem") + pl.col("temporary").sum().over("stem")).alias("s")
    )["s"].to_numpy()
    if serial.max(initial=0) >= 999:
        raise ValueError(f"more than 999 UPNs for one school and year in LA {ctx.plan.old_la_code}")
    permanent_body = np.char.add(keys["stem"].to_numpy().astype(str), np.char.zfill((serial + 1).astype(str), 3))
    temp_body = np.char.add(keys["stem"].to_numpy().astype(str), temporary_suffix(serial))
    former_body = np.char.add(keys["stem"].to_numpy().astype(str), temporary_suffix(former_serial))
    frame = pl.DataFrame({"body": np.where(temporary, temp_body, permanent_body), "former_body": former_body})
    frame = frame.with_columns(
        upn=upn_check_letter(pl.col("body")) + pl.col("body"),
        former_upn=pl.when(pl.Series(former)).then(upn_check_letter(pl.col("former_body")) + pl.col("former_body")),
    )
    return people.with_columns(frame["upn"], frame["former_upn"])


def temporary_suffix(serial: np.ndarray) -> np.ndarray:
    """Two serial digits and a letter: 2,300 temporary UPNs per school and year."""
    letters = np.array(list(UPN_LETTERS))
    return np.char.add(np.char.zfill((serial // 23).astype(str), 2), letters[serial % 23])


def ulns(ctx: Context, people: pl.DataFrame) -> pl.Series:
    """ULNs for the over-13s, unique nationally: an 8-digit stem drawn from the LA's own block.

    The ninth digit (weight 2) is chosen so the stem has a check digit: at most one of its ten values
    makes the weighted sum divisible by 11.
    """
    rng, n = ctx.rng, people.height
    index = ctx.plan.index * MAX_PUPILS_PER_LA + np.arange(n)
    prefix = 10_000_000 + (index * 7_919 + 12_345) % 90_000_000
    digit = rng.integers(0, 10, n)
    stems = pl.Series(np.char.add(prefix.astype(str), digit.astype(str)))
    bad = pl.select(uln_check_digit(pl.lit(stems)).is_null()).to_series().to_numpy()
    stems = pl.Series(np.char.add(prefix.astype(str), np.where(bad, (digit + 1) % 10, digit).astype(str)))
    uln = pl.select(pl.lit(stems) + uln_check_digit(pl.lit(stems)).cast(pl.String)).to_series().to_numpy()
    over_13 = people["age_on_census"].to_numpy() >= 13
    return nullable(np.where(over_13, uln, None), dtype=pl.String).alias("uln")
