"""Realistic defects injected into generated exports, each one listed so validation can be checked against it.

A faulted row carries exactly one fault, in one field. Faults that ingest should repair silently (stray
spaces, lower-case codes) are marked `normalise`; every other fault should send its row to quarantine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from schemas.identifiers import UPN_LETTERS

from .datasets import ni_numbers, nass_numbers

FAULT_COLUMNS = ["file", "source_row", "fault", "field", "expected"]
EXCEL_EPOCH = dt.date(1899, 12, 30)
FAR_NC_YEAR = {
    "N1": "3", "N2": "4", "R": "4", "1": "5", "2": "6", "3": "7", "4": "8", "5": "9", "6": "10",
    "7": "3", "8": "4", "9": "5", "10": "6", "11": "7", "12": "8", "13": "9", "14": "10",
}
HOURS_ABOVE_CAP = {"2YO": "22.5", "U34": "22.5", "E34": "37.5", "WPE": "37.5"}

@dataclass(frozen=True)
class Site:
    """Where a fault lands: the field's current values at the target rows, and the chunk around them."""

    values: np.ndarray
    rows: np.ndarray
    frame: pl.DataFrame
    faulted: np.ndarray  # every row given any fault in this chunk
    rng: np.random.Generator


Corruption = Callable[[Site], np.ndarray]


@dataclass(frozen=True)
class Fault:
    kind: str
    field: str
    corrupt: Corruption
    applies: pl.Expr | None = None  # rows that can carry it; default: the field has a value
    expected: str = "quarantine"

    def applicable(self) -> pl.Expr:
        return self.applies if self.applies is not None else pl.col(self.field).is_not_null()


def wrong_upn_check_letter(site: Site) -> np.ndarray:
    values, rng = site.values, site.rng
    shift = rng.integers(1, len(UPN_LETTERS), len(values))
    letters = np.array([UPN_LETTERS[(UPN_LETTERS.index(v[0]) + s) % len(UPN_LETTERS)] for v, s in zip(values, shift, strict=True)])
    return np.char.add(letters, np.array([v[1:] for v in values]))


def wrong_uln_check_digit(site: Site) -> np.ndarray:
    values, rng = site.values, site.rng
    last = (np.array([int(v[-1]) for v in values]) + rng.integers(1, 10, len(values))) % 10
    return np.char.add(np.array([v[:-1] for v in values]), last.astype(str))


def blank(site: Site) -> np.ndarray:
    values = site.values
    return np.full(len(values), None, dtype=object)


def future_date(site: Site) -> np.ndarray:
    values, rng = site.values, site.rng
    days = np.datetime64("2027-01-01") + rng.integers(0, 700, len(values)).astype("timedelta64[D]")
    return days.astype(str)


def excel_serial(site: Site) -> np.ndarray:
    """What a date becomes when a spreadsheet stores it as a number and the number is exported."""
    values = site.values
    days = np.array(values, dtype="datetime64[D]") - np.datetime64(EXCEL_EPOCH)
    return days.astype(int).astype(str)


def far_nc_year(site: Site) -> np.ndarray:
    values = site.values
    return np.array([FAR_NC_YEAR[v] for v in values])


def swapped_ncmp_year(site: Site) -> np.ndarray:
    values = site.values
    return np.where(values == "R", "6", "R")


def malformed_postcode(site: Site) -> np.ndarray:
    """Either the last letter lost, or an inward letter that postcodes never use (C)."""
    values, rng = site.values, site.rng
    truncated = np.array([v[:-1] for v in values])
    with_c = np.array([v[:-1] + "C" for v in values])
    return np.where(rng.random(len(values)) < 0.5, truncated, with_c)


def unknown(codes: list[str]) -> Corruption:
    return lambda site: site.rng.choice(codes, len(site.values))


def stray_spaces(site: Site) -> np.ndarray:
    values, rng = site.values, site.rng
    return np.char.add(np.char.add(rng.choice([" ", "  ", ""], len(values)), values.astype(str)), " ")


def lower_case(site: Site) -> np.ndarray:
    values = site.values
    return np.char.lower(values.astype(str))


def hours_above_cap(site: Site) -> np.ndarray:
    """Hours above the cap of the row's own entitlement."""
    return np.array([HOURS_ABOVE_CAP[v] for v in site.frame["entitlement"].to_numpy()[site.rows]])


def without_leading_zeros(site: Site) -> np.ndarray:
    values = site.values
    return np.char.lstrip(values.astype(str), "0")


def in_metres(site: Site) -> np.ndarray:
    values = site.values
    return np.round(values.astype(float) / 100, 2).astype(str)


def donor_candidates(frame: pl.DataFrame, faulted_rows: np.ndarray) -> np.ndarray:
    """Rows whose UPN another row may copy: unfaulted and singly registered."""
    clean = np.ones(frame.height, dtype=bool)
    clean[faulted_rows] = False
    if "enrolment_status" in frame.columns:
        clean &= (frame["enrolment_status"] == "C").to_numpy()
    return np.flatnonzero(clean)


def first_donor(frame: pl.DataFrame, faulted_rows: np.ndarray) -> int:
    candidates = donor_candidates(frame, faulted_rows)
    return int(candidates[0]) if len(candidates) else frame.height


def earlier_upn(site: Site) -> np.ndarray:
    """The UPN of an earlier, unfaulted, singly registered pupil, so the later row is the duplicate."""
    frame, targets, rng = site.frame, site.rows, site.rng
    candidates = donor_candidates(frame, site.faulted)
    below = np.searchsorted(candidates, targets)
    pick = candidates[np.floor(rng.random(len(targets)) * np.maximum(below, 1)).astype(int)]
    return frame["upn"].to_numpy()[pick]


def _upn_faults() -> list[Fault]:
    return [Fault("upn_check_letter", "upn", wrong_upn_check_letter),
            Fault("stray_spaces", "upn", stray_spaces, expected="normalise")]


def _dob_faults() -> list[Fault]:
    return [Fault("dob_missing", "date_of_birth", blank), Fault("dob_future", "date_of_birth", future_date)]


def _postcode_faults() -> list[Fault]:
    return [Fault("postcode_malformed", "postcode", malformed_postcode),
            Fault("lower_case_code", "postcode", lower_case, expected="normalise")]


CATALOGUE: dict[str, list[Fault]] = {
    "pupils": [
        *_upn_faults(), *_dob_faults(), *_postcode_faults(),
        Fault("uln_check_digit", "uln", wrong_uln_check_digit),
        Fault("nc_year_age", "nc_year", far_nc_year),
        Fault("duplicate_upn", "upn", earlier_upn, applies=pl.col("enrolment_status") == "C"),
        Fault("unknown_code", "ethnicity", unknown(["XXXX", "WBRT", "ASIA", "WHIT"])),
        Fault("unknown_code", "sen_provision", unknown(["Y", "SEN", "EHC"])),
        Fault("excel_date", "admission_date", excel_serial),
        Fault("stray_spaces", "ethnicity", stray_spaces, expected="normalise"),
        Fault("lower_case_code", "ethnicity", lower_case, expected="normalise"),
    ],
    "early_years": [
        *_upn_faults(), *_dob_faults(), *_postcode_faults(),
        Fault("unknown_code", "entitlement", unknown(["30H", "15H", "FEEE"])),
        Fault("ni_and_nass_both", "parent_nass_number", lambda site: nass_numbers(site.rng, len(site.values)),
              applies=pl.col("parent_ni_number").is_not_null()),
        Fault("ni_and_nass_both", "parent_ni_number", lambda site: ni_numbers(site.rng, len(site.values)),
              applies=pl.col("parent_nass_number").is_not_null()),
        Fault("hours_above_cap", "funded_hours_per_week", hours_above_cap, applies=pl.col("entitlement").is_not_null()),
        Fault("excel_date", "date_of_birth", excel_serial),
        Fault("lost_leading_zero", "eligibility_code", without_leading_zeros,
              applies=pl.col("eligibility_code").str.starts_with("0").fill_null(False)),
        Fault("stray_spaces", "entitlement", stray_spaces, expected="normalise"),
        Fault("lower_case_code", "provider_type", lower_case, expected="normalise"),
    ],
    "destinations": [
        *_upn_faults(), *_dob_faults(), *_postcode_faults(),
        Fault("uln_check_digit", "uln", wrong_uln_check_digit),
        Fault("unknown_code", "activity_code", unknown(["999", "200", "NEET"])),
        Fault("excel_date", "activity_start_date", excel_serial),
        Fault("stray_spaces", "activity_code", stray_spaces, expected="normalise"),
        Fault("lower_case_code", "sex", lower_case, expected="normalise"),
    ],
    "ncmp": [
        *_upn_faults(), *_dob_faults(), *_postcode_faults(),
        Fault("nc_year_age", "nc_year", swapped_ncmp_year),
        Fault("unknown_code", "ethnicity", unknown(["XXXX", "WBRT", "ASIA", "WHIT"])),
        Fault("excel_date", "measurement_date", excel_serial),
        Fault("implausible_measurement", "height_cm", in_metres),
        Fault("lower_case_code", "sex", lower_case, expected="normalise"),
    ],
}


def choose_faults(frame: pl.DataFrame, faults: list[Fault], rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Which rows get a fault, and which fault (by catalogue position).

    Kinds are drawn evenly, then rows among those that can take each kind, so that rare kinds (a code that
    starts with zero) are still represented. Duplicate UPNs come last: each must have an earlier donor.
    """
    can_take = frame.select([f.applicable().fill_null(False).alias(str(i)) for i, f in enumerate(faults)]).to_numpy()
    wanted = rng.multinomial(rng.binomial(frame.height, rate), np.full(len(faults), 1 / len(faults)))
    used = np.zeros(frame.height, dtype=bool)
    rows, kinds = [], []
    for i in sorted(range(len(faults)), key=lambda k: faults[k].kind == "duplicate_upn"):
        open_rows = can_take[:, i] & ~used
        if faults[i].kind == "duplicate_upn":
            open_rows &= np.arange(frame.height) > first_donor(frame, np.flatnonzero(used))
        candidates = np.flatnonzero(open_rows)
        chosen = rng.choice(candidates, min(wanted[i], len(candidates)), replace=False)
        used[chosen] = True
        rows.append(chosen)
        kinds.append(np.full(len(chosen), i))
    rows_all, kinds_all = np.concatenate(rows), np.concatenate(kinds)
    order = np.argsort(rows_all)
    return rows_all[order], kinds_all[order]


def inject(frame: pl.DataFrame, dataset: str, rate: float, rng: np.random.Generator, first_row: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The frame with faults applied, and the faults.csv rows for them (source_row counts from first_row)."""
    faults = CATALOGUE[dataset]
    rows, kinds = choose_faults(frame, faults, rate, rng)
    columns = {name: frame[name].to_numpy().astype(object).copy() for name in {f.field for f in faults}}
    for i, fault in enumerate(faults):
        target = rows[kinds == i]
        if len(target):
            columns[fault.field][target] = fault.corrupt(Site(columns[fault.field][target], target, frame, rows, rng))
    faulted = frame.with_columns(pl.Series(name, values.tolist(), dtype=pl.String) for name, values in columns.items())
    listing = pl.DataFrame({
        "file": f"{dataset}.csv",
        "source_row": rows + first_row,
        "fault": [faults[k].kind for k in kinds],
        "field": [faults[k].field for k in kinds],
        "expected": [faults[k].expected for k in kinds],
    }, schema={"file": pl.String, "source_row": pl.Int64, "fault": pl.String, "field": pl.String, "expected": pl.String})
    return faulted, listing
