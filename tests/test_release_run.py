"""Release-wide protection in real runs: the whole release, a second census after a child left, figures already
published elsewhere, the same data under two period labels, and the audit of a release protected the old way."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from disclosure_control.protect import protect
from disclosure_control.release import population_cells, release_table
from disclosure_control.rounding import round_published
from pipelines.assurance import intruder
from pipelines.assurance.verify import attack_findings
from pipelines.cli import app
from pipelines.flows.returns import census_return, publish
from pipelines.nodes.release import ROW, ReleaseError, build_release, check_relations
from pipelines.store.warehouse import staged_frames
from schemas.calendar import Term
from schemas.catalog import RunPaths
from schemas.config import load_run_config

SCHOOL_STATISTICS = ("school_statistics", "absence", "attainment")


def findings(out: Path) -> dict[str, dict]:
    return {f["check"].split(" against ")[0]: f for f in json.loads((out / "05_report" / "auditor_report.json").read_text())["attack"]}


def decisions(out: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(RunPaths(out).decisions(name))


def test_the_report_lists_the_relations_the_release_was_protected_with(census_run):
    out, _ = census_run
    document = json.loads((out / "05_report" / "auditor_report.json").read_text())
    assert document["relations"] == [
        "absence counts some of the units school_statistics counts: each of its cells is at most the cell at the same "
        "coordinates in school_statistics",
        "attainment counts some of the units school_statistics counts: each of its cells is at most the cell at the "
        "same coordinates in school_statistics",
        "early_years_children counts some of the units early_years_places counts: each of its cells is at most the cell "
        "at the same coordinates in early_years_places",
        "in early_years_children, the categories of two_year_basis other than its missing label add up to the units "
        "with entitlement = Early learning for 2 year olds"]
    protected_with = {t["name"]: t["protected_with"] for t in document["tables"]}
    assert protected_with["absence"] == protected_with["school_statistics"] == list(sorted(SCHOOL_STATISTICS))
    assert protected_with["ncmp_prevalence"] == ["ncmp_prevalence"]
    assert findings(out)["release attack"]["passed"]
    assert sorted(p.name for p in (out / "06_history" / "releases").iterdir()) == [document["run"]["run_id"]]


def test_the_audit_fails_a_release_protected_one_population_at_a_time(census_run, tmp_path):
    """The old way: each population protected alone, written with the same writers. The intruder, told only what
    the specs say (absence pupils are among the pupils on roll), narrows hidden cells below their protection."""
    out, _ = census_run
    shutil.copytree(out, tmp_path / "run")
    paths = RunPaths(tmp_path / "run")
    config = load_run_config()
    publications = config.publications_of(("school_statistics",))
    frames = staged_frames(paths.warehouse, ("pupils", "schools", "postcodes"))
    release = build_release(frames, publications, Term.parse("2026-spring"), frames["schools"], frames["postcodes"])
    for population in release.groups:
        alone = release_table({population.name: release.parts[population.name]})
        policy = config.problem_policy(release.problem_of(population.name).publications).for_counts()  # counts only
        result = round_published(protect(alone, policy))
        cells = population_cells(result.cells, alone, population.name, release.parts[population.name])
        for publication in population.publications:
            cells.write_parquet(paths.decisions(publication.name))
            publish.fn(paths, config, publication.name, paths.root, Term.parse("2026-spring"))
    found = {f.check: f for f in attack_findings(paths)}
    assert not found["release attack"].passed
    assert found["release attack"].detail.startswith("4 hidden values narrowed below their protection")
    reasons = [c["reason"] for c in found["release attack"].cells]
    assert len(reasons) == 4 and set(reasons) == {"narrowed below its protection level", "worked out exactly"}
    audited = CliRunner().invoke(app, ["audit", str(paths.root)])
    assert audited.exit_code == 1 and "Traceback" not in audited.output
    assert "release attack: the values it narrowed" in " ".join(audited.output.split())


def test_the_audit_fails_funding_protected_apart_from_the_hours_it_is_a_multiple_of(census_run, tmp_path):
    """Funding is the hours at each entitlement's public rate. Protected as two unrelated amounts, the pattern
    holds each alone, but the intruder who reads both as sums of the same hours narrows hidden ones; the run's
    own pattern, with funding tied to the hours, passes the same attack (test_census_return)."""
    out, _ = census_run
    shutil.copytree(out, tmp_path / "run")
    paths, term = RunPaths(tmp_path / "run"), Term.parse("2026-spring")
    config = load_run_config()
    frames = staged_frames(paths.warehouse, ("early_years", "schools", "postcodes"))
    release = build_release(frames, config.publications_of(("early_years",)), term, frames["schools"], frames["postcodes"])
    problem = release.problem_of("early_years_places")
    amounts = release.amounts(problem, problem.table, term.academic_year)
    apart = [replace(a, tied_to=None, multiples=None) for a in amounts]
    assert {a.name for a in apart} == {"funded_hours", "funding"}
    result = round_published(protect(problem.table, config.problem_policy(problem.publications), amounts=apart))
    for publication in problem.publications:
        release.publication_cells(result.cells, publication).write_parquet(paths.decisions(publication.name))
        publish.fn(paths, config, publication.name, paths.root, term)
    found = {f.check: f for f in attack_findings(paths)}
    assert found["release attack"].passed  # the counts are protected as before
    assert not found["release attack on funded_hours"].passed and not found["release attack on funding"].passed
    assert re.match(r"\d+ hidden amounts narrowed below their protection", found["release attack on funding"].detail)


def test_the_same_data_under_two_period_labels_gives_the_same_published_files(census_run, small_clean, tmp_path):
    """Autumn 2025 and spring 2026 are both 2025/26: every publication not limited to the run's term is the same.
    An autumn run checks admissions against the October census day, and NCCIS dates against October's month end,
    so what happened since is dated at the October census here: the same people are staged under both labels.
    Destinations are left out: a record whose currency lapses between the two month ends is current in October and
    not known in January, as the DfE counts it."""
    out, _ = census_run
    autumn, inputs = tmp_path / "autumn", tmp_path / "inputs"
    shutil.copytree(small_clean, inputs)
    october = Term.parse("2025-autumn").census_date.isoformat()
    pupils = pl.read_csv(inputs / "pupils.csv", infer_schema=False)
    capped = lambda c: pl.when(pl.col(c) > october).then(pl.lit(october)).otherwise(pl.col(c)).alias(c)  # noqa: E731
    pupils.with_columns(capped("admission_date")).write_csv(inputs / "pupils.csv")
    tracked = pl.read_csv(inputs / "destinations.csv", infer_schema=False)  # NCCIS: nothing verified after the month
    tracked.with_columns(capped(c) for c in ("activity_start_date", "date_ascertained", "date_verified",
                                             "neet_start_date")).write_csv(inputs / "destinations.csv")
    census_return(inputs, autumn, "2025-autumn")
    for name in ("absence", "attainment", "ncmp_prevalence", "school_statistics"):
        columns = ["cell_id", "status", "display"]
        assert decisions(autumn, name).select(columns).equals(decisions(out, name).select(columns)), name
    for path in (p for p in (out / "04_deliveries" / "publication").glob("pupils_by_*.csv") if not p.name.endswith(".meta.csv")):
        spring, later = (pl.read_csv(p, infer_schema=False).drop("time_identifier")
                         for p in (path, autumn / "04_deliveries" / "publication" / path.name))
        assert spring.equals(later), path.name


@pytest.fixture(scope="module")
def second_census(census_run, small_clean, tmp_path_factory) -> tuple[Path, dict]:
    """The census a term later into the same folder, one looked-after child having left a district where the
    spring release showed 10 looked-after pupils."""
    out, _ = census_run
    root = tmp_path_factory.mktemp("second")
    shutil.copytree(out, root / "run")
    shutil.copytree(small_clean, root / "input")
    spring = decisions(out, "school_statistics")
    district = spring.filter((pl.col("looked_after_status") == "Looked after") & (pl.col("value") == 10)
                             & (pl.col("status") == "published") & (pl.col("area").str.starts_with("E0")))["area"][0]
    pupils = pl.read_csv(root / "input" / "pupils.csv", infer_schema=False)
    schools = pl.read_csv(root / "input" / "reference" / "schools.csv", infer_schema=False)
    leaver = pupils.join(schools.select(pl.col("urn").alias("school_urn"), "lad_code"), on="school_urn").filter(
        (pl.col("lad_code") == district) & (pl.col("looked_after") == "Y") & (pl.col("enrolment_status") == "C"))["upn"][0]
    pupils.filter(pl.col("upn") != leaver).write_csv(root / "input" / "pupils.csv")
    return root / "run", {"district": district, "result": census_return(root / "input", root / "run", "2026-summer")}


def test_a_second_census_after_one_child_left_gives_nothing_away_by_differencing(second_census):
    out, context = second_census
    found = findings(out)
    school = found["differencing attack on absence, attainment, school_statistics"]
    assert school["passed"], school
    assert re.match(r"no value hidden in both releases is narrowed; \d+ values no pattern could hold to their protection "
                    r"level \(most shown in the other release: a count that crossed the threshold\) are narrowed but not "
                    r"worked out, e\.g\. current / pupils_by_looked_after / " + context["district"] + " / Looked after$",
                    school["detail"]), school["detail"]
    assert found["differencing attack on early_years_children, early_years_places"]["detail"].startswith(
        "the releases differ by more than 1 unit")  # the summer term's children are not the spring's
    crossed = decisions(out, "school_statistics").filter((pl.col("area") == context["district"])
                                                         & (pl.col("looked_after_status") == "Looked after")).row(0, named=True)
    assert crossed["value"] == 9 and crossed["status"] == "primary" and crossed["protected_against_both"] is False
    assert re.match(r"count 9 is below the threshold of 10; shown in the 2026-spring release \(run \w+-\w+\), which bounds "
                    r"it: differencing the two releases narrows it whatever this release hides, and it is kept from being "
                    r"worked out exactly$", crossed["reason"]), crossed["reason"]
    assert all(f["passed"] for f in found.values())


def test_cells_hidden_in_the_earlier_release_stay_hidden(census_run, second_census):
    spring_out, _ = census_run
    out, _ = second_census
    for name in SCHOOL_STATISTICS:
        before, after = decisions(spring_out, name), decisions(out, name)
        dims = [c for c in before.columns if c not in ("cell_id", "value", "status", "display", "rule", "reason", "lower",
                                                       "upper", "exact", "safe", "protected", "protected_against_both", "is_total",
                                                       "tables")]
        hidden = before.filter(pl.col("status").is_in(["primary", "secondary"])).select(dims)
        again = after.join(hidden, on=dims)
        assert again.height == hidden.height and again["status"].is_in(["primary", "secondary"]).all(), name


def test_the_audit_of_the_second_run_attacks_it_with_the_first(second_census, ledger_public_key):
    out, context = second_census
    checks = {f.check.split(" against ")[0]: f for f in attack_findings(RunPaths(out))}
    assert checks["release attack"].passed
    differencing = checks["differencing attack on absence, attainment, school_statistics"]
    assert differencing.passed and differencing.cells
    assert {c["reason"] for c in differencing.cells} == {"shown in the other release (a count that crossed the threshold), "
                                                          "which bounds it"}
    assert {"release": "current", "file": "pupils_by_looked_after", "area": context["district"],
            "filters": ["Looked after"]}.items() <= next(c for c in differencing.cells if c["area"] == context["district"]).items()
    assert len(list((out / "06_history" / "releases").iterdir())) == len(list((out / "06_history" / "counts").iterdir())) == 2
    audited = CliRunner().invoke(app, ["audit", str(out), "--public-key", str(ledger_public_key)])
    assert audited.exit_code == 0, audited.output
    assert "the values it narrowed" in " ".join(audited.output.split())


def test_a_pupil_counted_from_different_rows_stays_within_the_wider_population(census_run):
    """A pupil whose first row on roll has no attendance record but whose second has: school statistics keeps the
    first row, and absence, counted from the rows school statistics kept, leaves the pupil out (and says so)
    rather than count a row school statistics does not."""
    out, _ = census_run
    frames = staged_frames(RunPaths(out).warehouse, ("pupils", "schools", "postcodes"))
    pupils = frames["pupils"]
    first = pupils.filter(pl.col("enrolment_status") == "C").head(1)
    twice = pl.concat([first.with_columns(pl.lit(None, pupils.schema["sessions_possible"]).alias("sessions_possible")),
                       first.with_columns(pl.lit("M").alias("enrolment_status")), pupils])
    publications = load_run_config().publications_of(("school_statistics",))
    before = build_release(frames, publications, Term.parse("2026-spring"), frames["schools"], frames["postcodes"])
    after = build_release(frames | {"pupils": twice}, publications, Term.parse("2026-spring"), frames["schools"], frames["postcodes"])
    assert after.rows["absence"].height == before.rows["absence"].height - 1  # the pupil's own row is not counted
    assert after.unplaced["absence"] == before.unplaced["absence"] + 1
    assert after.rows["school_statistics"].height == before.rows["school_statistics"].height


def test_a_relation_the_rows_contradict_stops_the_release_naming_it(census_run):
    out, _ = census_run
    frames = staged_frames(RunPaths(out).warehouse, ("pupils", "schools", "postcodes"))
    publications = load_run_config().publications_of(("school_statistics",))
    release = build_release(frames, publications, Term.parse("2026-spring"), frames["schools"], frames["postcodes"])
    gone = release.rows["absence"][ROW][0]  # an absence pupil missing from the pupils on roll
    rows = dict(release.rows) | {"school_statistics": release.rows["school_statistics"].filter(pl.col(ROW) != gone)}
    with pytest.raises(ReleaseError, match="^absence counts some of the units school_statistics counts: each of its cells is "
                                           "at most the cell at the same coordinates in school_statistics: but 1 of its units "
                                           "are not among school_statistics's, so a spec is wrong$"):
        check_relations(list(release.relations), rows, list(release.groups))


def known_file(folder: Path, out: Path, cells: pl.DataFrame) -> Path:
    """An EES file of school-level pupil numbers by sex, as the DfE would publish from the same census, holding
    the true counts of the given cells of pupils_by_sex."""
    folder.mkdir(exist_ok=True)
    ours = pl.read_csv(out / "04_deliveries" / "publication" / "pupils_by_sex.csv", infer_schema=False)
    truth = cells.select(pl.col("area").alias("school_urn"), "sex", pl.col("value").cast(pl.String).alias("pupil_count"))
    rows = ours.drop("pupil_count").join(truth, on=["school_urn", "sex"])
    rows.write_csv(folder / "dfe_school_pupils.csv")
    shutil.copy(out / "04_deliveries" / "publication" / "pupils_by_sex.meta.csv", folder / "dfe_school_pupils.meta.csv")
    return folder


def test_figures_already_published_elsewhere_are_shown_and_protected_around(census_run, small_clean, tmp_path):
    out, _ = census_run
    spring = decisions(out, "school_statistics")
    hidden = spring.filter((pl.col("status") == "secondary") & pl.col("tables").list.contains("pupils_by_sex")
                           & (pl.col("area").str.len_chars() == 6) & (pl.col("sex") != "Total")).head(3)
    known = known_file(tmp_path / "known", out, hidden)
    run = tmp_path / "run"
    census_return(small_clean, run, "2026-spring", known_dir=known)
    after = decisions(run, "school_statistics").join(hidden.select("area", "sex"), on=["area", "sex"]).filter(
        pl.col("tables").list.contains("pupils_by_sex"))
    assert after.height == hidden.height > 0 and set(after["status"]) == {"published"}
    assert set(after["reason"]) == {"already published in dfe_school_pupils.csv"}
    document = json.loads((run / "05_report" / "auditor_report.json").read_text())
    assert document["known_published"] == [{"file": "dfe_school_pupils.csv", "publication": "school_statistics",
                                            "figures": hidden.height, "left_out": 0}]
    assert findings(run)["release attack"]["passed"]
    assert {f.check: f.passed for f in attack_findings(RunPaths(run), known)}["release attack"]


def test_a_known_file_that_is_not_of_these_units_stops_the_run(census_run, small_clean, tmp_path):
    out, _ = census_run
    cells = decisions(out, "school_statistics").filter(pl.col("tables").list.contains("pupils_by_sex")
                                                       & (pl.col("area").str.len_chars() == 6) & (pl.col("sex") == "Female")).head(2)
    known = known_file(tmp_path / "known", out, cells.with_columns(pl.col("value") + 1))
    with pytest.raises(ReleaseError, match=r"dfe_school_pupils.csv: row 1 \(and 1 more\) is not this release's count of "
                                           "the same units, so the file is not about school_statistics's population"):
        census_return(small_clean, tmp_path / "run", "2026-spring", known_dir=known)
    assert not (tmp_path / "run" / "04_deliveries").exists()


def test_exports_of_another_term_are_one_line_naming_the_terms_they_cover(census_run):
    out, _ = census_run
    frames = staged_frames(RunPaths(out).warehouse, ("early_years", "schools", "postcodes"))
    with pytest.raises(ReleaseError, match=r"^early_years: the exports hold no rows for 2026-autumn \(they cover 2025-autumn, "
                                           r"2026-spring, 2026-summer\); run for one of those with --period$"):
        build_release(frames, load_run_config().publications_of(("early_years",)), Term.parse("2026-autumn"), frames["schools"], frames["postcodes"])


def test_a_publication_with_no_units_this_term_is_published_empty_with_a_note(prefect_harness, health_key, small_clean, tmp_path):
    """No pupil in year 6 (a small LA's infant schools): no KS2 cohort. The attainment files are published with
    their header and no rows, and the report says why; everything else is as usual."""
    shutil.copytree(small_clean, tmp_path / "input")
    pupils = pl.read_csv(tmp_path / "input" / "pupils.csv", infer_schema=False)
    pupils.filter(pl.col("nc_year") != "6").write_csv(tmp_path / "input" / "pupils.csv")
    result = census_return(tmp_path / "input", tmp_path / "out", "2026-spring")
    attainment = next(p for p in result["publications"] if p["name"] == "attainment")
    assert attainment["cells"] == 0 and attainment["passed"]
    data = pl.read_csv(tmp_path / "out" / "04_deliveries" / "publication" / "ks2_attainment_by_sex.csv", infer_schema=False)
    assert data.height == 0 and "pupil_count" in data.columns
    document = json.loads((tmp_path / "out" / "05_report" / "auditor_report.json").read_text())
    notes = next(t for t in document["tables"] if t["name"] == "attainment")["summary"]["notes"]
    assert notes == ["no units in 2026-spring: published empty"]
    assert all(f["passed"] for f in document["attack"])


def absence_file(rows: list[tuple[str, str, str, str]]) -> intruder.PublishedFile:
    """An absence table as published, the pupils not persistently absent left out: (level, district, absence
    type, pupils)."""
    data = pl.DataFrame(rows, schema=["geographic_level", "lad_code", "absence_type", "pupil_count"], orient="row")
    return intruder.PublishedFile("absence_by_district", data, ("absence_type",), "pupil_count",
                                  remainders=("absence_type",))


def test_the_intruder_works_out_a_category_the_files_leave_out_wherever_they_give_it_away():
    """District A shows its 30 pupils and 28 persistently absent: the 2 others are read off, though no row shows
    them. District B hides its persistent absence, so its others are only known to lie between 0 and its 20."""
    published = absence_file([("Local authority", "", "Total", "50"), ("Local authority", "", "Persistent absence", "c"),
                              ("Local authority district", "A", "Total", "30"),
                              ("Local authority district", "A", "Persistent absence", "28"),
                              ("Local authority district", "B", "Total", "20"),
                              ("Local authority district", "B", "Persistent absence", "c")])
    found = intruder.attack({"current": [intruder.Population("pupils", [published])]})
    left_out = {key[2]: interval for key, interval in found.items() if key[3] == intruder.REMAINDER}
    assert left_out == {"A": (2.0, 2.0), "B": (0.0, 20.0), "Total": (2.0, 22.0)}
    assert found[("current", "absence_by_district", "B", "Persistent absence")] == (0.0, 20.0)


def test_a_file_read_back_takes_its_meta_files_filter_default_as_the_total(tmp_path):
    data, meta = tmp_path / "absence.csv", tmp_path / "absence.meta.csv"
    pl.DataFrame({"geographic_level": ["Local authority"] * 2, "absence_type": ["Total pupils", "Persistent absence"],
                  "pupil_count": ["9", "4"]}).write_csv(data)
    pl.DataFrame({"col_name": ["absence_type", "pupil_count"], "col_type": ["Filter", "Indicator"],
                  "label": ["Absence", "Pupils"], "filter_default": ["Total pupils", ""]}).write_csv(meta)
    assert intruder.PublishedFile.read(data).data["absence_type"].to_list() == ["Total", "Persistent absence"]


def as_before_the_rename(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame as the release before persistent absence took the data dictionary's names wrote it."""
    return frame.rename({"absence_type": "absence_group"}).with_columns(
        pl.col("absence_group").replace({"Persistent absence": "Persistently absent", "Total pupils": "Total"}))


def test_a_release_written_before_a_filter_was_renamed_is_read_under_todays_names(census_run):
    """The spring release called the filter absence_group and its categories Persistently absent and Total: with
    the filter's `was`, the engine and the intruder read it as they read a release under today's names, and
    without it the run stops in one line naming the filter."""
    from disclosure_control.hierarchy import Hierarchy
    from pipelines.nodes.ees import district_geography
    from pipelines.nodes.protection import EarlierRun, current_counts, earlier_shown, protected_release
    from pipelines.store.history import earlier_run

    out, _ = census_run
    paths, config, term = RunPaths(out), load_run_config(), Term.parse("2026-summer")
    frames = staged_frames(paths.warehouse, ("pupils", "schools", "postcodes"))
    release = build_release(frames, config.publications_of(("school_statistics",)), term, frames["schools"], frames["postcodes"])
    problem = release.problem_of("absence")
    run = earlier_run(paths, problem)
    assert "Total pupils" not in run.shown[("publication", "absence_by_sex")]["absence_type"].to_list()  # read as Total
    inner, trees = run.counts["absence"]
    old_trees = {"absence_group" if d == "absence_type" else d: Hierarchy(
        "absence_group", tuple((c.replace("Persistent absence", "Persistently absent"), p) for c, p in h.parent_of))
        if d == "absence_type" else h for d, h in trees.items()}
    old = EarlierRun(run.label, {k: as_before_the_rename(v) if "absence_type" in v.columns else v for k, v in run.shown.items()},
                     {**run.counts, "absence": (as_before_the_rename(inner), old_trees)})
    la_code = district_geography(frames["schools"])["new_la_code"][0]
    now = protected_release(release, {problem.names: run}, [], config, la_code, term)
    before = protected_release(release, {problem.names: old}, [], config, la_code, term)
    assert {p["name"]: p["earlier"] for p in before.protections}["absence"] == run.label
    for name in ("absence", "attainment", "school_statistics"):
        assert before.decisions[name].equals(now.decisions[name]), name

    filters = release.group("absence").filters
    assert current_counts(old.counts["absence"], filters, run.label)[1] == trees  # the hierarchies as named today
    with pytest.raises(ReleaseError) as caught:
        current_counts(old.counts["absence"], tuple(replace(f, was=None) for f in filters), run.label)
    assert str(caught.value) == (f"{run.label}: the counts its run kept have no filter 'absence_type'; if it was renamed "
                                 "since, give its earlier name as `was` in schemas/publications/filters.toml")
    with pytest.raises(ReleaseError) as caught:  # a relabelled category would otherwise be a category of its own
        current_counts(old.counts["absence"], tuple(replace(f, was_labels=()) for f in filters), run.label)
    assert str(caught.value) == (f"{run.label}: the counts its run kept have absence_type 'Persistently absent', no "
                                 "longer one of its labels; if it was relabelled since, map it in `was.labels` in "
                                 "schemas/publications/filters.toml")
    for dropped, line in (("absence_type", "has no filter 'absence_type'; if it was renamed since, give its earlier "
                                           "name as `was` in schemas/publications/filters.toml"),
                          ("pupil_count", "has no indicator 'pupil_count', so it cannot be compared with this release")):
        files = EarlierRun(run.label, {k: v.drop(dropped, strict=False) for k, v in run.shown.items()}, None)
        with pytest.raises(ReleaseError) as caught:
            earlier_shown(problem.table, release, config.publications["absence"], files)
        assert str(caught.value) == f"{run.label}: its file absence_by_sex {line}"


def test_the_intruder_reads_a_release_written_before_a_filter_was_renamed_under_todays_names(census_run, tmp_path):
    from disclosure_control.policy import as_mapping
    from pipelines.assurance.verify import earlier_release_view
    from pipelines.store.history import EarlierRelease, earlier_release

    out, _ = census_run
    config = load_run_config()
    publications = config.publications_of(("school_statistics",))
    found = earlier_release(RunPaths(out), [(p.recipient, t.name) for p in publications for t in p.tables])
    shutil.copytree(found.folder, tmp_path / "release")
    for data in (tmp_path / "release").rglob("absence_by_*.csv"):
        if data.name.endswith(".meta.csv"):
            continue
        meta = data.with_name(data.stem + ".meta.csv")
        as_before_the_rename(pl.read_csv(data, infer_schema=False)).write_csv(data)
        pl.read_csv(meta, infer_schema=False).with_columns(
            pl.col("col_name").replace("absence_type", "absence_group"), pl.lit(None, pl.String).alias("filter_default")
        ).write_csv(meta)
    assert "absence_group" in pl.read_csv(tmp_path / "release" / "publication" / "absence_by_sex.csv").columns
    policies = {p.name: as_mapping(config.problem_policy([p])) for p in publications}
    renamed = earlier_release_view(EarlierRelease(found.run_id, found.period, tmp_path / "release"), publications, policies)
    as_written = earlier_release_view(found, publications, policies)
    assert [p.name for p in renamed] == [p.name for p in as_written]
    for mine, theirs in zip(renamed, as_written, strict=True):
        assert [(f.stem, f.filters, f.remainders) for f in mine.files] == [(f.stem, f.filters, f.remainders) for f in theirs.files]
        for a, b in zip(mine.files, theirs.files, strict=True):
            assert a.data.equals(b.data), a.stem
