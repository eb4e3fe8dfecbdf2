"""When the returns run: the schedule config and the census dates its rules give.

A deployment may instead run a housekeeping flow (`flow = "retention"`, the monthly retention purge), which has no
term. Pure: no Prefect here (pipelines/flows/serve.py turns this into deployments). The config is
schemas/policies/schedule.toml, read and checked once by schemas.config.load_schedule; every error names the file
and the key.

Each deployment's rule is an RFC 5545 RRULE for the day (FREQ=YEARLY;BYMONTH=10;BYDAY=1TH is the first Thursday
of October); its hour and timezone give the time of day, so the rule itself holds no time or start. Rules are
anchored as Prefect anchors them (1 January 2020, midnight, in the deployment's timezone), so the dates computed
here are the dates Prefect schedules.

A deployment's term is checked against the terms its first runs fall in (schemas/calendar.py Term); the term a
scheduled run reports on is the term of its scheduled start (schemas.calendar.current_term).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

from schemas.calendar import ENGLAND, TERMS, Term
from schemas.keys import check_keys

ANCHOR = dt.datetime(2020, 1, 1)  # Prefect's implicit DTSTART for a rule without one
RULE_PARTS = ("FREQ", "INTERVAL", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYSETPOS", "WKST")
FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY")
DEPLOYMENT_KEYS = ("return", "rrule", "hour", "timezone", "term", "input", "output", "description")
REQUIRED_KEYS = ("return", "rrule", "hour", "term", "input", "output")
# A housekeeping deployment (the retention purge) names a `flow` instead of a return, and has no term: it reports
# on no term, and may run in any month.
HOUSEKEEPING_KEYS = ("flow", "rrule", "hour", "timezone", "input", "output", "description")
HOUSEKEEPING_REQUIRED = ("flow", "rrule", "hour", "input", "output")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
TERM_CHECK_RUNS = 6  # occurrences checked to fall in the configured term
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday", "SA": "Saturday",
            "SU": "Sunday"}
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last", -2: "second last"}


class ScheduleError(ValueError):
    """A schedule config that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Deployment:
    """One scheduled return: which return, on which days (rrule) at which hour, and where it reads and writes."""

    name: str
    return_name: str  # the return it runs; for a housekeeping deployment, the housekeeping flow it runs
    rrule: str  # the day rule as configured, without RRULE: prefix
    hour: int
    timezone: str
    term: str | None  # None for housekeeping
    input: Path  # relative paths resolve against the root given to serve
    output: Path
    description: str = ""
    housekeeping: bool = False

    @property
    def full_rrule(self) -> str:
        """The rule with its time of day, as Prefect schedules it (in self.timezone)."""
        return f"{self.rrule};BYHOUR={self.hour};BYMINUTE=0;BYSECOND=0"

    def rule(self) -> rrule:
        return rrulestr(self.full_rrule, dtstart=ANCHOR.replace(tzinfo=ZoneInfo(self.timezone)))

    def folders(self, root: Path) -> tuple[Path, Path]:
        """(input, output) as absolute paths under root."""
        return (root / self.input).resolve(), (root / self.output).resolve()


@dataclass(frozen=True)
class Schedule:
    path: Path
    deployments: tuple[Deployment, ...]


def parse_schedule(raw: dict, returns: Collection[str],
                   housekeeping: Collection[str] | None = None) -> tuple[Deployment, ...]:
    check_keys(raw, "", ("timezone", "deployments"), (), ScheduleError)
    timezone = _timezone("timezone", raw.get("timezone", ENGLAND))
    deployments = raw.get("deployments")
    if not isinstance(deployments, dict) or not deployments:
        raise ScheduleError("deployments: missing (one [deployments.<name>] table per scheduled return)")
    return tuple(parse_deployment(name, spec, timezone, returns, housekeeping) for name, spec in deployments.items())


def parse_deployment(name: str, raw: object, timezone: str, returns: Collection[str],
                     housekeeping: Collection[str] | None = None) -> Deployment:
    key = f"deployments.{name}"
    if not NAME.fullmatch(name):
        raise ScheduleError(f"{key}: a deployment name is letters, digits, - and _")
    if not isinstance(raw, dict):
        raise ScheduleError(f"{key}: expected a table")
    if "flow" in raw and "return" in raw:
        raise ScheduleError(f"{key}.flow: a deployment runs a return or a housekeeping flow, not both")
    is_housekeeping = "flow" in raw
    allowed, required = ((HOUSEKEEPING_KEYS, HOUSEKEEPING_REQUIRED) if is_housekeeping
                         else (DEPLOYMENT_KEYS, REQUIRED_KEYS))
    if is_housekeeping and "term" in raw:
        raise ScheduleError(f"{key}.term: a housekeeping flow reports on no term; remove it")
    check_keys(raw, key, allowed, required, ScheduleError)
    if is_housekeeping:
        if not isinstance(raw["flow"], str) or (housekeeping is not None and raw["flow"] not in housekeeping):
            raise ScheduleError(f"{key}.flow: {raw['flow']!r} is not one of {', '.join(housekeeping or ())}")
    elif not isinstance(raw["return"], str) or raw["return"] not in returns:
        raise ScheduleError(f"{key}.return: {raw['return']!r} is not one of {', '.join(returns)}")
    hour = raw["hour"]
    if not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour <= 23:
        raise ScheduleError(f"{key}.hour: {hour!r} is not a whole hour from 0 to 23")
    if not is_housekeeping and raw["term"] not in TERMS:
        raise ScheduleError(f"{key}.term: {raw['term']!r} is not one of {', '.join(TERMS)}")
    folders = {}
    for folder in ("input", "output"):
        if not isinstance(raw[folder], str) or not raw[folder].strip():
            raise ScheduleError(f"{key}.{folder}: a folder path (relative to --root)")
        folders[folder] = Path(raw[folder])
    if not isinstance(raw.get("description", ""), str):
        raise ScheduleError(f"{key}.description: expected text")
    deployment = Deployment(name, raw["flow" if is_housekeeping else "return"], _rule(f"{key}.rrule", raw["rrule"]),
                            hour, _timezone(f"{key}.timezone", raw.get("timezone", timezone)), raw.get("term"),
                            folders["input"], folders["output"], raw.get("description", ""), is_housekeeping)
    runs = _first_runs(f"{key}.rrule", deployment)
    for run in [] if is_housekeeping else runs:
        if Term.of(run.date()).name != deployment.term:
            raise ScheduleError(f"{key}.term: {deployment.term!r}, but the rule runs on {run:%A %d %B %Y}, "
                                f"in the {Term.of(run.date()).name} term")
    return deployment


def _timezone(key: str, value: object) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{key}: {value!r} is not an IANA timezone (such as {ENGLAND})") from None
    return str(value)


def rule_parts(rule: str) -> dict[str, str]:
    """FREQ=YEARLY;BYDAY=1TH as {"FREQ": "YEARLY", "BYDAY": "1TH"} (an RRULE: prefix is allowed)."""
    body = rule.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:"):]
    parts = {}
    for item in body.split(";"):
        part, sep, value = item.partition("=")
        if not sep or not part.strip() or not value.strip():
            raise ValueError(f"{item!r} is not NAME=VALUE")
        parts[part.strip().upper()] = value.strip().upper()
    return parts


def _rule(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError(f"{key}: expected an RRULE such as FREQ=YEARLY;BYMONTH=10;BYDAY=1TH")
    if "\n" in value:
        raise ScheduleError(f"{key}: one RRULE line only")
    try:
        parts = rule_parts(value)
    except ValueError as error:
        raise ScheduleError(f"{key}: {error}") from None
    unknown = [part for part in parts if part not in RULE_PARTS]
    if unknown:
        why = "the time of day is the hour key" if unknown[0] in ("BYHOUR", "BYMINUTE", "BYSECOND") else \
            "the schedule repeats with no end" if unknown[0] in ("COUNT", "UNTIL") else f"use {', '.join(RULE_PARTS)}"
        raise ScheduleError(f"{key}: {unknown[0]} is not allowed here ({why})")
    if parts.get("FREQ") not in FREQUENCIES:
        raise ScheduleError(f"{key}: FREQ must be one of {', '.join(FREQUENCIES)}")
    rule = ";".join(f"{part}={value}" for part, value in parts.items())
    try:
        rrulestr(rule, dtstart=ANCHOR)
    except (ValueError, TypeError) as error:
        raise ScheduleError(f"{key}: {error}") from None
    return rule


def _first_runs(key: str, deployment: Deployment) -> list[dt.datetime]:
    """The rule's first runs after the anchor; a rule with none in its first ten years is a mistake."""
    anchor = ANCHOR.replace(tzinfo=ZoneInfo(deployment.timezone))
    runs = list(deployment.rule().xafter(anchor, count=TERM_CHECK_RUNS, inc=True))
    if not runs or runs[0].year >= ANCHOR.year + 10:
        raise ScheduleError(f"{key}: {deployment.rrule!r} never runs (no such day)")
    return runs


def next_runs(deployment: Deployment, count: int, after: dt.datetime | None = None) -> list[dt.datetime]:
    """The next count runs strictly after `after` (default now), as times in the deployment's timezone."""
    zone = ZoneInfo(deployment.timezone)
    after = after or dt.datetime.now(zone)
    if after.tzinfo is None:
        after = after.replace(tzinfo=zone)
    return list(deployment.rule().xafter(after.astimezone(zone), count=count))


def census_dates(deployment: Deployment, count: int, after: dt.date) -> list[dt.date]:
    """The next count days the deployment runs on, after the day `after` (a run on that day itself is not next)."""
    end_of_day = dt.datetime.combine(after, dt.time.max, ZoneInfo(deployment.timezone))
    return [run.date() for run in next_runs(deployment, count, end_of_day)]


def describe(deployment: Deployment) -> str:
    """The schedule in words: "first Thursday of October, 18:00 Europe/London, every year"."""
    when = f"{deployment.hour:02d}:00 {deployment.timezone}"
    parts = rule_parts(deployment.rrule)
    interval = int(parts.get("INTERVAL", "1"))
    unit = {"YEARLY": "year", "MONTHLY": "month", "WEEKLY": "week", "DAILY": "day"}[parts["FREQ"]]
    every = f"every {unit}" if interval == 1 else f"every {interval} {unit}s"
    if set(parts) - {"FREQ", "INTERVAL", "BYMONTH", "BYMONTHDAY", "BYDAY"}:
        return f"{deployment.rrule}, {when}"
    try:
        days = [_day_words(day) for day in parts["BYDAY"].split(",")] if "BYDAY" in parts else []
        days += [f"day {int(day)}" if int(day) > 0 else f"day {int(day)} from the end" for day in
                 parts.get("BYMONTHDAY", "").split(",") if day]
        months = [MONTHS[int(month) - 1] for month in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else []
    except (KeyError, ValueError, IndexError):
        return f"{deployment.rrule}, {when}"
    day_text = " or ".join(days) or "each day"
    month_text = f" of {_joined(months)}" if months else ""
    return f"{day_text}{month_text}, {when}, {every}"


def _day_words(day: str) -> str:
    match = re.fullmatch(r"([+-]?\d+)?(MO|TU|WE|TH|FR|SA|SU)", day)
    if not match:
        raise ValueError(day)
    weekday = WEEKDAYS[match[2]]
    return f"{ORDINALS[int(match[1])]} {weekday}" if match[1] else f"every {weekday}"


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
