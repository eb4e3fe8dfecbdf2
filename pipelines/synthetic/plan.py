"""The shape of a synthetic county or country, fixed before any child is generated.

Everything that must be unique across local authorities (school URNs, early-years provider URNs, postcode
districts, identifier ranges) is allocated here from the whole plan, so that each LA can then be generated
on its own, in any order or in parallel, with its own random stream, and still give byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

from schemas.identifiers import POSTCODE_INWARD_LETTERS
from schemas.lookups import live_english_las, wards

DATA_DIR = Path(__file__).parent / "data"

COUNTY_LA = "855"  # Leicestershire
COUNTY_PUPILS = 100_000
NATIONAL_PUPILS = 9_400_000
PUPILS_PER_COHORT = 13.13  # pupils on roll per single-year cohort, nursery to year 14 (see people.YEAR_SHARES)
EY_CHILDREN_PER_PUPIL = 0.15
FIRST_EY_PROVIDER_URN, LAST_EY_PROVIDER_URN = 500_000, 799_999  # LA-issued early-years URNs
# provider type: (share of non-school early-years children, children per provider)
PROVIDER_MIX = {"PVI": (0.62 / 0.8, 40), "CM": (0.13 / 0.8, 5), "MNS": (0.05 / 0.8, 120)}
NURSERY_CLASS_SHARE_OF_EY = 0.2
POSTCODES_PER_WARD = 60
MAX_PUPILS_PER_LA = 500_000  # identifier ranges are allocated in blocks of this size per LA


@dataclass(frozen=True)
class LaPlan:
    index: int
    old_la_code: str
    new_la_code: str
    la_name: str
    region_code: str
    region_name: str
    pupils: int
    first_school_urn: int
    first_ey_provider_urn: int
    postcode_area: str
    first_postcode_district: int

    @property
    def cohort(self) -> float:
        return self.pupils / PUPILS_PER_COHORT

    @property
    def ey_children(self) -> int:
        return round(self.pupils * EY_CHILDREN_PER_PUPIL)

    @property
    def providers(self) -> dict[str, int]:
        return provider_counts(self.ey_children)


def provider_counts(ey_children: int) -> dict[str, int]:
    """Early-years settings by type for an LA; nursery classes in schools come on top."""
    outside_schools = ey_children * (1 - NURSERY_CLASS_SHARE_OF_EY)
    return {kind: max(1, round(outside_schools * share / per)) for kind, (share, per) in PROVIDER_MIX.items()}


@dataclass(frozen=True)
class SchoolCounts:
    primary: int
    secondary: int
    special: int
    pru: int

    @classmethod
    def for_pupils(cls, pupils: int) -> "SchoolCounts":
        """About 31 pupils a year group in a primary, 150 in a secondary (Leicestershire's shape)."""
        cohort = pupils / PUPILS_PER_COHORT
        return cls(
            primary=max(2, round(cohort / 31)),
            secondary=max(1, round(cohort / 150)),
            special=max(1, round(cohort / 900)),
            pru=max(1, round(cohort / 3000)),
        )

    @property
    def total(self) -> int:
        return self.primary + self.secondary + self.special + self.pru


def parse_scale(scale: str) -> tuple[str, int]:
    """'county', 'national' or a number of pupils (a county of that size)."""
    if scale == "county":
        return "county", COUNTY_PUPILS
    if scale == "national":
        return "national", NATIONAL_PUPILS
    if scale.isdigit() and int(scale) >= 1_000:
        return "county", int(scale)
    raise ValueError(f"--scale must be 'county', 'national' or a number of pupils of at least 1000, not {scale!r}")


@cache
def ward_table() -> pl.DataFrame:
    return wards()


def la_pupil_targets(kind: str, pupils: int, seed: int) -> pl.DataFrame:
    """Pupils per LA: the county alone, or the country shared out by number of wards with some noise."""
    las = live_english_las().join(
        ward_table().group_by("new_la_code").agg(pl.len().alias("wards")), on="new_la_code", how="inner", maintain_order="left"
    )
    if kind == "county":
        return las.filter(pl.col("old_la_code") == COUNTY_LA).with_columns(pl.lit(pupils).alias("pupils"))
    rng = np.random.default_rng([seed, 0])
    weight = las["wards"].to_numpy() * rng.lognormal(0.0, 0.25, las.height)
    share = np.floor(pupils * weight / weight.sum()).astype(np.int64)
    share[: pupils - share.sum()] += 1
    return las.with_columns(pl.Series("pupils", share))


def plan_las(scale: str, seed: int) -> list[LaPlan]:
    kind, pupils = parse_scale(scale)
    targets = la_pupil_targets(kind, pupils, seed)
    if targets["pupils"].max() > MAX_PUPILS_PER_LA:
        raise ValueError(f"an LA of more than {MAX_PUPILS_PER_LA} pupils is beyond the identifier ranges")
    areas = pl.read_csv(DATA_DIR / "postcode_areas.csv")["area"].to_list()
    ward_counts = dict(ward_table().group_by("new_la_code").agg(pl.len()).iter_rows())
    plans, next_urn, next_ey_urn, districts_used = [], 100_001, FIRST_EY_PROVIDER_URN, {}
    for index, row in enumerate(targets.iter_rows(named=True)):
        area = "LE" if row["old_la_code"] == COUNTY_LA else areas[index % len(areas)]
        first_district = districts_used.get(area, 1)
        districts_used[area] = first_district + -(-ward_counts[row["new_la_code"]] // 10)
        plans.append(
            LaPlan(
                index=index,
                old_la_code=row["old_la_code"],
                new_la_code=row["new_la_code"],
                la_name=row["la_name"],
                region_code=row["region_code"],
                region_name=row["region_name"],
                pupils=int(row["pupils"]),
                first_school_urn=next_urn,
                first_ey_provider_urn=next_ey_urn,
                postcode_area=area,
                first_postcode_district=first_district,
            )
        )
        next_urn += SchoolCounts.for_pupils(int(row["pupils"])).total
        next_ey_urn += sum(plans[-1].providers.values())
    if next_ey_urn - 1 > LAST_EY_PROVIDER_URN:
        raise ValueError("more early-years providers than the LA-issued URN range 500000-799999 holds")
    if max(districts_used.values()) > 100:
        raise ValueError("more wards share a postcode area than its 99 districts can hold")
    return plans


def la_postcodes(plan: LaPlan, rng: np.random.Generator) -> pl.DataFrame:
    """Synthetic postcodes, format-valid and unique nationally, each in one real ward of the LA.

    Ward w of the LA gets district first_postcode_district + w // 10 and sector w % 10, and a sample of the
    400 two-letter units, so a postcode never straddles wards or LAs.
    """
    la_wards = ward_table().filter(pl.col("new_la_code") == plan.new_la_code)
    letters = np.array(list(POSTCODE_INWARD_LETTERS))
    units = np.char.add(letters[:, None], letters[None, :]).ravel()
    per_ward = [rng.choice(units, POSTCODES_PER_WARD, replace=False) for _ in range(la_wards.height)]
    w = np.repeat(np.arange(la_wards.height), POSTCODES_PER_WARD)
    district = plan.first_postcode_district + w // 10
    postcode = [
        f"{plan.postcode_area}{d} {s}{u}" for d, s, u in zip(district, w % 10, np.concatenate(per_ward), strict=True)
    ]
    return pl.DataFrame({"postcode": postcode, "ward_index": w, "street": street_names(rng, len(postcode))}).join(
        la_wards.with_row_index("ward_index").with_columns(pl.col("ward_index").cast(pl.Int64)),
        on="ward_index",
        maintain_order="left",
    )


@cache
def _street_parts() -> tuple[np.ndarray, np.ndarray]:
    parts = pl.read_csv(DATA_DIR / "streets.csv")
    return tuple(parts.filter(pl.col("part") == p)["value"].to_numpy().astype(str) for p in ("base", "suffix"))


def street_names(rng: np.random.Generator, n: int) -> np.ndarray:
    base, suffix = _street_parts()
    return np.char.add(np.char.add(rng.choice(base, n), " "), rng.choice(suffix, n))
