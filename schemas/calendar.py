"""Academic years, terms and census days: the one home of term arithmetic.

An academic year is named by the calendar year it starts in (2025 is 2025/26, 1 September 2025 to
31 August 2026). Ages in DfE data are ages on 31 August at the start of the academic year.
A term is named by its calendar year: 2026-spring is the spring term of 2025/26. Terms follow the funding terms
(data-standards.md 2.6): autumn is 1 September to 31 December, spring 1 January to 31 March, summer 1 April to
31 August. Easter moves, so 1 April, not the Easter holiday, is the boundary; a census day is always well inside
its term. Census days (data-standards.md 2.1): autumn, the first Thursday of October; spring and the early years
census, the third Thursday of January; summer, the third Thursday of May.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

TERMS = ("autumn", "spring", "summer")  # in their order in the academic year (and alphabetical)
TERM_START_MONTHS = {"autumn": 9, "spring": 1, "summer": 4}
ENGLAND = "Europe/London"
DEFAULT_ACADEMIC_YEAR = 2025  # 2025/26, the spring 2026 census: the demo county's year and the commands' default
DEFAULT_CENSUS = "2026-spring"  # the demo county's census term (DEFAULT_ACADEMIC_YEAR's spring term)
_CENSUS_MONTH_AND_THURSDAY = {"autumn": (10, 1), "spring": (1, 3), "summer": (5, 3)}


@dataclass(frozen=True, order=True)
class Term:
    """One term of one academic year: what a run reports on, and what its files and ledger name (2026-spring)."""

    academic_year: int
    name: str  # autumn, spring or summer

    def __post_init__(self) -> None:
        if self.name not in TERMS:
            raise ValueError(f"term {self.name!r}: expected one of {', '.join(TERMS)}")

    @classmethod
    def parse(cls, label: str) -> Term:
        """The term a label such as 2026-spring (the spring term of 2025/26) names."""
        year, _, name = label.partition("-")
        if name not in TERMS or not year.isdigit() or len(year) != 4:
            raise ValueError(f"period {label!r}: expected YYYY-autumn, YYYY-spring or YYYY-summer")
        return cls(int(year) if name == "autumn" else int(year) - 1, name)

    @classmethod
    def of(cls, on: dt.date) -> Term:
        """The term a day falls in."""
        academic_year = on.year if on.month >= 9 else on.year - 1
        return max(t for t in (cls(academic_year, name) for name in TERMS) if t.start <= on)

    @property
    def calendar_year(self) -> int:
        return self.academic_year if self.name == "autumn" else self.academic_year + 1

    @property
    def label(self) -> str:
        return f"{self.calendar_year}-{self.name}"

    @property
    def start(self) -> dt.date:
        return dt.date(self.calendar_year, TERM_START_MONTHS[self.name], 1)

    @property
    def census_date(self) -> dt.date:
        month, n = _CENSUS_MONTH_AND_THURSDAY[self.name]
        return nth_thursday(self.calendar_year, month, n)

    @property
    def census_month_end(self) -> dt.date:
        """The last day of the census day's month: the month end a monthly return made for the term reports
        (NCCIS's PeriodEnd)."""
        day = self.census_date
        return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)

    def __str__(self) -> str:
        return self.label


def england_time(on: dt.datetime | None = None) -> dt.datetime:
    """The time in England (Europe/London, naive): of an aware datetime (a run's start, a flow run's scheduled
    start, in UTC), as a clock in England showed it; of a naive one, itself; default now."""
    if on is None:
        on = dt.datetime.now(ZoneInfo(ENGLAND))
    local = on.astimezone(ZoneInfo(ENGLAND)) if on.tzinfo is not None else on
    return dt.datetime.combine(local.date(), local.time())  # a plain datetime, whatever kind came in (Prefect's pendulum)


def england_day(on: dt.date | dt.datetime | None = None) -> dt.date:
    """The day in England: of a date, itself; of a datetime, its day in England (england_time), so 23:30 UTC on
    31 August in summer time is 1 September; default today."""
    return on if isinstance(on, dt.date) and not isinstance(on, dt.datetime) else england_time(on).date()


def current_term(on: dt.date | dt.datetime | None = None) -> Term:
    """The term a run on this day in England (england_day) reports on: a run at 00:30 BST on 1 September is
    autumn. 2026-10-01 is 2026-autumn (2026/27), 2027-01-21 is 2027-spring (also 2026/27)."""
    return Term.of(england_day(on))


def age_reference_date(academic_year: int) -> dt.date:
    return dt.date(academic_year, 8, 31)


def nth_thursday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    first_thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + dt.timedelta(weeks=n - 1)


def academic_year_label(academic_year: int) -> str:
    """2025/26, as messages name a year."""
    return f"{academic_year}/{(academic_year + 1) % 100:02d}"


def academic_year_end(academic_year: int) -> dt.date:
    return dt.date(academic_year + 1, 8, 31)
