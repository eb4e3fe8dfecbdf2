"""The schedule: census dates from the config's rules, the term a run reports on, the deployments serve builds.

Building deployments needs no Prefect server (nothing here starts one); the dates are checked against a
calendar and against schemas.calendar's own census-day arithmetic, and Prefect's reading of each schedule is
checked to fire on the same days.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prefect.client.schemas.schedules import RRuleSchedule
from prefect.flows import load_flow_from_entrypoint
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.flows.returns import RETURNS
from pipelines.flows.serve import build_deployments
from schemas.calendar import Term, current_term, england_day
from schemas.config import load_schedule
from schemas.specs.schedule import ScheduleError, census_dates, describe, next_runs

LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def schedule():
    return load_schedule(None, RETURNS)


def spec(schedule, name):
    return next(d for d in schedule.deployments if d.name == name)


@pytest.mark.parametrize(("name", "expected"), [
    ("autumn-census", dt.date(2026, 10, 1)),       # October 2026 starts on a Thursday
    ("spring-census", dt.date(2027, 1, 21)),       # Thursdays 7, 14, 21 January 2027
    ("early-years-census", dt.date(2027, 1, 21)),
    ("summer-census", dt.date(2027, 5, 20)),       # Thursdays 6, 13, 20 May 2027
])
def test_next_census_day_after_1_september_2026(schedule, name, expected):
    (day,) = census_dates(spec(schedule, name), 1, dt.date(2026, 9, 1))
    assert day == expected and day.strftime("%A") == "Thursday"


def test_census_rules_agree_with_the_calendar_for_a_decade(schedule):
    for name, term in (("autumn-census", "autumn"), ("spring-census", "spring"), ("summer-census", "summer")):
        days = census_dates(spec(schedule, name), 10, dt.date(2025, 8, 31))
        assert days == [Term(year, term).census_date for year in range(2025, 2035)], name


def test_census_day_itself_is_not_next_and_runs_are_at_the_configured_hour_in_london(schedule):
    autumn = spec(schedule, "autumn-census")
    assert census_dates(autumn, 2, dt.date(2026, 10, 1)) == [dt.date(2027, 10, 7), dt.date(2028, 10, 5)]
    (run,) = next_runs(autumn, 1, dt.datetime(2026, 9, 1, tzinfo=LONDON))
    assert run == dt.datetime(2026, 10, 1, autumn.hour, tzinfo=LONDON)
    assert run.utcoffset() == dt.timedelta(hours=1)  # BST: 18:00 London is 17:00 UTC
    assert describe(autumn) == "first Thursday of October, 18:00 Europe/London, every year"


@pytest.mark.parametrize(("on", "period"), [
    ("2026-08-31", "2026-summer"), ("2026-09-01", "2026-autumn"),
    ("2026-10-01", "2026-autumn"), ("2026-12-31", "2026-autumn"),
    ("2027-01-01", "2027-spring"), ("2027-01-21", "2027-spring"),
    ("2027-03-31", "2027-spring"), ("2027-04-01", "2027-summer"),
    ("2027-05-20", "2027-summer"), ("2027-08-31", "2027-summer"),
])
def test_period_of_a_run_on_a_day(on, period):
    assert current_term(dt.date.fromisoformat(on)).label == period


def test_period_of_a_scheduled_start_time_is_taken_in_london():
    # 23:30 UTC on 31 August is 00:30 BST on 1 September: the autumn term has begun.
    assert current_term(dt.datetime(2026, 8, 31, 23, 30, tzinfo=dt.UTC)).label == "2026-autumn"
    assert current_term(dt.datetime(2027, 3, 31, 23, 30, tzinfo=dt.UTC)).label == "2027-summer"
    assert current_term(dt.datetime(2027, 1, 1, 0, 30, tzinfo=dt.UTC)).label == "2027-spring"


def test_the_purge_day_of_a_scheduled_start_is_its_day_in_england():
    """The one conversion the terms, the purge and the CLI share: a purge scheduled at 00:30 BST purges as of
    that day in England, not the UTC day before; in winter the two agree."""
    assert england_day(dt.datetime(2026, 8, 31, 23, 30, tzinfo=dt.UTC)) == dt.date(2026, 9, 1)
    assert england_day(dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)) == dt.date(2026, 12, 31)
    assert england_day(dt.date(2026, 3, 29)) == dt.date(2026, 3, 29)


GOOD = """
timezone = "Europe/London"
[deployments.autumn]
return = "census"
rrule = "FREQ=YEARLY;BYMONTH=10;BYDAY=1TH"
hour = 18
term = "autumn"
input = "landing"
output = "out"
"""


@pytest.mark.parametrize(("change", "key"), [
    (("hour = 18", "hours = 18"), "deployments.autumn.hours"),
    (("hour = 18", "hour = 24"), "deployments.autumn.hour"),
    (('return = "census"', 'return = "cencus"'), "deployments.autumn.return"),
    (('term = "autumn"', 'term = "spring"'), "deployments.autumn.term"),
    (("BYDAY=1TH", "BYDAY=1TH;BYHOUR=6"), "deployments.autumn.rrule"),
    (("BYDAY=1TH", "BYDAY=1XX"), "deployments.autumn.rrule"),
    (("BYMONTH=10;BYDAY=1TH", "BYMONTH=2;BYMONTHDAY=30"), "deployments.autumn.rrule"),
    (('output = "out"\n', ""), "deployments.autumn.output"),
    (('timezone = "Europe/London"', 'timezone = "Europe/Londres"'), "timezone"),
    (('timezone = "Europe/London"', 'timezones = "Europe/London"'), "timezones"),
])
def test_a_bad_key_is_named_with_the_file(tmp_path, change, key):
    path = tmp_path / "schedule.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ScheduleError) as error:
        load_schedule(path, RETURNS)
    assert str(error.value).startswith(f"{path}: {key}: ")


def test_good_config_loads(tmp_path):
    path = tmp_path / "schedule.toml"
    path.write_text(GOOD)
    (autumn,) = load_schedule(path, RETURNS).deployments
    assert (autumn.name, autumn.return_name, autumn.timezone, autumn.input) == ("autumn", "census", "Europe/London",
                                                                                Path("landing"))


def test_deployments_built_with_london_rrules_and_folder_parameters(schedule, tmp_path):
    deployments = build_deployments(schedule, tmp_path)
    assert [d.name for d in deployments] == [s.name for s in schedule.deployments]
    after = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    for s, deployment in zip(schedule.deployments, deployments, strict=True):
        assert deployment.flow_name == RETURNS[s.return_name].name
        # A scheduled run starts in a new process that loads the flow by this entrypoint.
        assert load_flow_from_entrypoint(deployment.entrypoint) is RETURNS[s.return_name]
        # No period: the flow derives it from the run's own date.
        assert deployment.parameters == {"input_dir": str((tmp_path / s.input).resolve()),
                                         "out": str((tmp_path / s.output).resolve())}
        (created,) = deployment.schedules
        assert isinstance(created.schedule, RRuleSchedule) and created.active
        assert created.schedule.timezone == "Europe/London"
        assert s.full_rrule in created.schedule.rrule
        # Prefect's own reading of the schedule fires on the configured days, at 18:00 London time.
        prefect_runs = list(created.schedule.to_rrule().xafter(after, count=3))
        assert prefect_runs == next_runs(s, 3, after)
        assert all(run.astimezone(LONDON).hour == s.hour for run in prefect_runs)


def test_serve_dry_run_prints_the_deployments_with_whole_paths_on_a_narrow_terminal(schedule, tmp_path):
    root = tmp_path / ("a-long-folder-name-" * 4)
    root.mkdir()
    result = CliRunner().invoke(app, ["serve", "--root", str(root), "--dry-run"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for s in schedule.deployments:
        heading = lines.index(next(line for line in lines if line.startswith(f"{s.name} (")))
        assert lines[heading] == f"{s.name} ({RETURNS[s.return_name].name}): {describe(s)}"
        assert lines[heading + 1].startswith(f"  next runs: {next_runs(s, 1)[0]:%Y-%m-%d}, ")
        assert f"  input_dir={(root / s.input).resolve()}" in lines[heading + 2:heading + 8]  # whole, on one line
    assert "No period is passed" in result.output


def test_serve_refuses_a_bad_config_in_one_line(tmp_path):
    path = tmp_path / "schedule.toml"
    path.write_text(GOOD.replace("hour = 18", "hours = 18"))
    result = CliRunner().invoke(app, ["serve", "--root", str(tmp_path), "--config", str(path), "--dry-run"],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {path}: deployments.autumn.hours: unknown key "
                                                  "(expected return, rrule, hour, timezone, term, input, output, "
                                                  "description)"]
    missing = CliRunner().invoke(app, ["serve", "--root", str(tmp_path / "nowhere"), "--dry-run"],
                                 env={"COLUMNS": "300"})
    assert missing.exit_code == 2 and "not a folder" in missing.output


@pytest.mark.parametrize(("label", "academic_year", "census", "start"), [
    ("2025-autumn", 2025, dt.date(2025, 10, 2), dt.date(2025, 9, 1)),
    ("2026-spring", 2025, dt.date(2026, 1, 15), dt.date(2026, 1, 1)),
    ("2026-summer", 2025, dt.date(2026, 5, 21), dt.date(2026, 4, 1)),
])
def test_a_term_is_named_by_its_calendar_year_and_counted_in_its_academic_year(label, academic_year, census, start):
    term = Term.parse(label)
    assert (term.academic_year, term.label, str(term), term.census_date, term.start) == (academic_year, label, label,
                                                                                         census, start)
    assert Term.of(census) == Term.of(start) == term
    assert Term.of(start - dt.timedelta(days=1)) < term


@pytest.mark.parametrize("label", ["2026-winter", "26-spring", "spring-2026", "2026"])
def test_a_term_label_that_is_not_one_is_one_line_naming_the_forms(label):
    with pytest.raises(ValueError, match=f"^period {label!r}: expected YYYY-autumn, YYYY-spring or YYYY-summer$"):
        Term.parse(label)
