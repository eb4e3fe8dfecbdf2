"""Academic years, terms and census days.

An academic year is named by the calendar year it starts in (2025 is 2025/26, 1 September 2025 to
31 August 2026). Ages in DfE data are ages on 31 August at the start of the academic year.
Census days (data-standards.md 2.1): autumn, the first Thursday of October; spring and the early years
census, the third Thursday of January; summer, the third Thursday of May.
"""

from __future__ import annotations

import datetime as dt

TERMS = ("autumn", "spring", "summer")
DEFAULT_ACADEMIC_YEAR = 2025  # 2025/26, the spring 2026 census: the demo county's year and the commands' default
_CENSUS_MONTH_AND_THURSDAY = {"autumn": (10, 1), "spring": (1, 3), "summer": (5, 3)}


def age_reference_date(academic_year: int) -> dt.date:
    return dt.date(academic_year, 8, 31)


def term_calendar_year(academic_year: int, term: str) -> int:
    return academic_year if term == "autumn" else academic_year + 1


def term_label(academic_year: int, term: str) -> str:
    """A term as named in lareturns periods and files, such as 2026-spring."""
    return f"{term_calendar_year(academic_year, term)}-{term}"


def nth_thursday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    first_thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + dt.timedelta(weeks=n - 1)


def census_date(academic_year: int, term: str) -> dt.date:
    month, n = _CENSUS_MONTH_AND_THURSDAY[term]
    return nth_thursday(term_calendar_year(academic_year, term), month, n)


def term_start(academic_year: int, term: str) -> dt.date:
    """Funding terms start on 1 September, 1 January and 1 April (data-standards.md 2.6)."""
    month = {"autumn": 9, "spring": 1, "summer": 4}[term]
    return dt.date(term_calendar_year(academic_year, term), month, 1)


def academic_year_end(academic_year: int) -> dt.date:
    return dt.date(academic_year + 1, 8, 31)


def parse_term_label(label: str) -> tuple[int, str]:
    """(academic year, term) from a label such as 2026-spring (the spring term of 2025/26)."""
    year, _, term = label.partition("-")
    if term not in TERMS or not year.isdigit() or len(year) != 4:
        raise ValueError(f"period {label!r}: expected YYYY-autumn, YYYY-spring or YYYY-summer")
    return (int(year) if term == "autumn" else int(year) - 1), term
