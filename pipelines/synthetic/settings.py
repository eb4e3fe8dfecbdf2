"""Schools and early-years providers of one synthetic LA, on its real wards and districts."""

from __future__ import annotations

import numpy as np
import polars as pl

from .plan import PROVIDER_MIX, LaPlan, SchoolCounts

# kind: (DfE establishment number base, census phase, lowest and highest NC year, size spread, name endings)
SCHOOL_KINDS = {
    "primary": (2001, "PS", "R", "6", 0.65, ["Primary School", "C of E Primary School", "Community Primary School",
                                             "Primary Academy", "St Peter's Catholic Primary School"]),
    "secondary": (4001, "SS", "7", "11", 0.40, ["Academy", "High School", "Community College", "School"]),
    "special": (7001, "SP", "N2", "14", 0.45, ["Special School", "Specialist Learning Centre"]),
    "pru": (1101, "PR", "7", "11", 0.30, ["Pupil Referral Unit", "Learning Centre"]),
}
NURSERY_CLASS_SHARE = 0.4
SIXTH_FORM_SHARE = 0.6
ACADEMY_SHARE = {"primary": 0.45, "secondary": 0.85, "special": 0.4, "pru": 0.2}


def _ward_sample(postcodes: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    return postcodes[rng.integers(0, postcodes.height, n)].select(
        "postcode", "ward_code", "ward_name", "lad_code", "lad_name"
    )


def la_schools(plan: LaPlan, postcodes: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    counts = SchoolCounts.for_pupils(plan.pupils)
    frames, urn = [], plan.first_school_urn
    for kind, (estab_base, phase, low, high, spread, endings) in SCHOOL_KINDS.items():
        n = getattr(counts, kind)
        place = _ward_sample(postcodes, n, rng)
        ending = np.array(endings)[rng.integers(0, len(endings), n)]
        frames.append(
            place.with_columns(
                urn=pl.Series(np.arange(urn, urn + n), dtype=pl.Int64),
                laestab=pl.Series([f"{plan.old_la_code}{estab_base + i}" for i in range(n)]),
                school_name=pl.Series(np.char.add(np.char.add(place["ward_name"].to_numpy().astype(str), " "), ending)),
                kind=pl.lit(kind),
                phase=pl.lit(phase),
                nc_low=pl.lit(low),
                nc_high=pl.Series(np.where((kind == "secondary") & (rng.random(n) < SIXTH_FORM_SHARE), "13", high)),
                has_nursery=pl.Series((kind == "primary") & (rng.random(n) < NURSERY_CLASS_SHARE)),
                establishment_type=pl.Series(np.where(rng.random(n) < ACADEMY_SHARE[kind], "Academy", "LA maintained")),
                size_weight=pl.Series(rng.lognormal(0.0, spread, n)),
            )
        )
        urn += n
    schools = pl.concat(frames)
    return schools.with_columns(
        nc_low=pl.when(pl.col("has_nursery")).then(pl.lit("N1")).otherwise(pl.col("nc_low"))
    )


PROVIDER_NAME_ENDINGS = {
    "PVI": ["Pre-School", "Day Nursery", "Playgroup", "Children's Centre Nursery"],
    "CM": ["Registered childminder"],  # a childminder's own name is personal data
    "MNS": ["Nursery School"],
}


def la_providers(plan: LaPlan, postcodes: pl.DataFrame, schools: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """LA-issued early-years URNs (500000-799999) for settings; school nurseries keep the school's URN."""
    frames, urn = [], plan.first_ey_provider_urn
    for ptype, n in plan.providers.items():
        endings = PROVIDER_NAME_ENDINGS[ptype]
        place = _ward_sample(postcodes, n, rng)
        ending = np.array(endings)[rng.integers(0, len(endings), n)]
        names = ending if ptype == "CM" else np.char.add(np.char.add(place["ward_name"].to_numpy().astype(str), " "), ending)
        frames.append(
            place.with_columns(
                provider_urn=pl.Series(np.arange(urn, urn + n), dtype=pl.Int64),
                provider_name=pl.Series(names),
                provider_type=pl.lit(ptype),
                size_weight=pl.Series(rng.lognormal(0.0, 0.5, n) * PROVIDER_MIX[ptype][1]),
            )
        )
        urn += n
    school_nurseries = schools.filter(pl.col("nc_low").is_in(["N1", "N2"])).select(
        "postcode", "ward_code", "ward_name", "lad_code", "lad_name",
        pl.col("urn").alias("provider_urn"), pl.col("school_name").alias("provider_name"),
        provider_type=pl.lit("SCH"), size_weight=pl.col("size_weight") * 30,
    )
    return pl.concat([*frames, school_nurseries])


def provider_details(providers: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """What the early years census's establishment modules ask of each setting: its Ofsted EY URN, hours open a
    week and weeks open a year, and staff with early years teacher status (all of them, and those working with
    the two-, three- and four-year-olds). rng: a side stream (people.side_stream), so every other value is as it
    was."""
    n = providers.height
    childminder = providers["provider_type"].to_numpy() == "CM"
    eyts = np.where(childminder, 0, rng.binomial(3, 0.25, n))
    numbers = rng.integers(0, 10**5, n)
    return providers.with_columns(  # Ofsted's URNs: EY and 6 digits since 2008, 6 digits before
        ofsted_urn=pl.Series(np.where(numbers % 3 == 0, np.char.add("EY", np.char.zfill(numbers.astype(str), 6)),
                                      np.char.add("2", np.char.zfill(numbers.astype(str), 5)))),
        hours_open_per_week=pl.Series(np.where(childminder, rng.choice([40.0, 45.0, 50.0], n),
                                               rng.choice([15.0, 38.0, 50.0, 55.0], n, p=[0.1, 0.2, 0.5, 0.2]))),
        weeks_open_per_year=pl.Series(np.where(rng.random(n) < 0.6, 51, 38)),
        eyts_staff=pl.Series(eyts),
        eyts_staff_with_children=pl.Series(np.minimum(eyts, rng.binomial(2, 0.5, n))),
    )
