"""Published rows: every unit is placed in the area hierarchy or counted as left out, never dropped silently."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import replace

import polars as pl
import pytest

from disclosure_control.policy import Dominance, PolicyError
from pipelines.nodes.publication import published_rows
from schemas.calendar import Term
from schemas.catalog import DISCLOSURE_POLICY, EXTRACTS_DIR, PUBLICATIONS_DIR
from schemas.config import checked_magnitude_rules, load_extract, load_publication, load_recipients, load_run_config
from schemas.specs.extract import ExtractError
from schemas.specs.publication import AREA, PublicationError, parse_filters, parse_publication

FILTERS = parse_filters({"sex": {"label": "Sex", "codeset": "sex"}})
SPEC = {"title": "t", "return": "school_statistics", "recipient": "publication", "dataset": "pupils", "unit": ["upn"],
        "geography": {"kind": "school", "source": "school_urn"}, "indicator": {"col_name": "headcount", "label": "n"},
        "tables": [{"name": "pupils_by_sex", "filters": ["sex"]}]}
SCHOOLS = pl.DataFrame({"urn": ["100001", "100002"], "lad_code": ["E07000129", "E07000130"]})
POSTCODES = pl.DataFrame({"postcode": ["LE1 6XN"], "lad_code": ["E07000129"]})
PUPILS = pl.DataFrame({"upn": ["A1", "A2", "A3", "A3"], "school_urn": ["100001", "100002", "149999", "149999"],
                       "sex": ["M", "F", None, None]})


def test_a_pupil_at_a_school_outside_the_list_is_left_out_and_counted():
    rows, unplaced = published_rows(PUPILS, parse_publication(SPEC, FILTERS, "t"), Term.parse("2026-spring"), SCHOOLS, POSTCODES)
    assert rows.select(AREA, "sex").rows() == [("100001", "Male"), ("100002", "Female")]
    assert unplaced == 1  # A3, once: units are counted once


def test_by_district_of_residence_an_unknown_postcode_is_left_out_and_counted():
    spec = SPEC | {"geography": {"kind": "residence", "source": "postcode"}}
    pupils = PUPILS.with_columns(postcode=pl.Series(["le1 6xn", "LE16XN", "ZZ9 9ZZ", "ZZ9 9ZZ"]))
    rows, unplaced = published_rows(pupils, parse_publication(spec, FILTERS, "t"), Term.parse("2026-spring"), SCHOOLS, POSTCODES)
    assert rows[AREA].to_list() == ["E07000129", "E07000129"] and unplaced == 1


def test_a_young_person_whose_activity_is_no_longer_current_is_counted_as_not_known():
    """Currency is judged at the end of the census month (31 January for spring 2026): a lapse on the 30th counts
    the record as not known, whatever its code; one on the 31st, or none, keeps the activity."""
    spec = load_publication(PUBLICATIONS_DIR / "destinations.toml")
    young = pl.DataFrame({
        "person_id": ["P1", "P2", "P3", "P4"], "postcode": ["LE1 6XN"] * 4,
        "date_of_birth": [dt.date(2009, 3, 1)] * 4, "sex": ["F", "M", "F", "M"], "sen_provision": ["N"] * 4,
        "ethnicity": ["WBRI"] * 4,
        "activity_code": ["230", "330", "619", "230"],
        "due_to_lapse_date": [dt.date(2026, 1, 30), dt.date(2026, 1, 31), dt.date(2026, 1, 2), None]})
    rows, unplaced = published_rows(young, spec, Term.parse("2026-spring"), SCHOOLS, POSTCODES)
    assert unplaced == 0
    assert rows["activity_group"].to_list() == ["Activity not known", "Employment",
                                               "Activity not known", "Education"]


AMOUNTS = "early_years_places"  # a spec with measures: amounts with contributors, one tied to the other


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace('title = ', 'titel = ', 1), "spec.titel: unknown key (expected title, return, recipient"),
    (lambda t: re.sub(r'return = "[a-z_]+"', 'return = "school_statistic"', t, count=1),
     "return: 'school_statistic' is not one of school_statistics, early_years, destinations, health, youth_support"),
    (lambda t: re.sub(r'recipient = "[a-z_]+"', 'recipient = "publications"', t, count=1),
     "recipient: 'publications' is not in recipients.toml"),
    (lambda t: re.sub(r'dataset = "[a-z_]+"', 'dataset = "pupil"', t, count=1), "dataset: 'pupil' is not a dataset with a contract"),
    (lambda t: t.replace('unit = ["upn"]', 'unit = ["pupil_upn"]'), "unit: 'pupil_upn' is not a column of pupils"),
    (lambda t: t.replace('source = "school_urn"', 'source = "school"'), "geography.source: 'school' is not a column of"),
    ((AMOUNTS, lambda t: t.replace('contributor = "provider_urn"\n', '', 1)), "measures[0].contributor: missing"),
    ((AMOUNTS, lambda t: t.replace('contributor = "provider_urn"', 'contributor = "provider"', 1)),
     "measures.funded_hours.contributor: 'provider' is not a column of early_years"),
    ((AMOUNTS, lambda t: t.replace('tied_to = "funded_hours"', 'tied_to = "funded_hour"')),
     "measures.funding.tied_to: 'funded_hour' is not a measure of this publication that is tied to none"),
    ((AMOUNTS, lambda t: re.sub(r"\nrate = .*\n", "\n", t)),
     "measures.funding: a measure tied to another needs its rate, and only it"),
    ((AMOUNTS, lambda t: t.replace('filter = "entitlement"', 'filter = "provider"')),
     "measures.funding.rate.filter: 'provider' is not a filter with a code set"),
])
def test_a_publication_specs_keys_and_references_are_checked_at_load_naming_file_and_key(tmp_path, edit, expected):
    folder = tmp_path / "publications"
    folder.mkdir()
    shutil.copy(PUBLICATIONS_DIR / "filters.toml", folder / "filters.toml")
    name, edit = edit if isinstance(edit, tuple) else ("absence", edit)
    spec = folder / f"{name}.toml"
    spec.write_text(edit((PUBLICATIONS_DIR / f"{name}.toml").read_text()))
    with pytest.raises(PublicationError) as caught:
        load_publication(spec)
    assert str(caught.value).startswith(f"{spec}: {expected}"), str(caught.value)


def test_a_filters_column_is_checked_at_load_naming_the_filter(tmp_path):
    folder = tmp_path / "publications"
    folder.mkdir()
    (folder / "filters.toml").write_text((PUBLICATIONS_DIR / "filters.toml").read_text().replace(
        'source = "ethnicity"', 'source = "ethnicty"'))
    shutil.copy(PUBLICATIONS_DIR / "absence.toml", folder / "absence.toml")
    with pytest.raises(PublicationError, match=r"absence.toml: filters.ethnicity_major.source: 'ethnicty' is not a "
                                               r"column of pupils or a derived characteristic"):
        load_publication(folder / "absence.toml")


WAS = 'was = { name = "absence_group", labels = { "Persistently absent" = "Persistent absence" } }'


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('unpublished = ["Not persistently absent"]', 'unpublished = ["Not persistently absnt"]',
     "filters.absence_type.unpublished: 'Not persistently absnt' is not one of its labels"),
    ('unpublished = ["Not persistently absent"]', 'unpublished = "Not persistently absent"',
     "filters.absence_type.unpublished: a list of one label (the intruder's remainder is one category)"),
    ('unpublished = ["Not persistently absent"]', 'unpublished = ["Not persistently absent", "Persistent absence"]',
     "filters.absence_type.unpublished: a list of one label (the intruder's remainder is one category)"),
    ('total = "Total pupils"', 'total = "Persistent absence"',
     "filters.absence_type.total: 'Persistent absence' must be a label of its own, not blank or a category's"),
    ('label = "Sex"\n', 'label = "Sex"\nunpublished = ["Other"]\n',
     "filters.sex.unpublished: only for a filter with its own labels and no part_of"),
    (WAS, 'was = { name = "absence_type" }', "filters.absence_type.was.name: 'absence_type' must be the name it had, "
     "not blank or its own"),
    (WAS, 'was = { nme = "absence_group" }', "filters.absence_type.was: a table with the keys name (its earlier name) "
     "and/or labels (earlier label = label)"),
    (WAS, 'was = "absence_group"', "filters.absence_type.was: a table with the keys name (its earlier name) and/or "
     "labels (earlier label = label)"),
    (WAS, 'was = { name = "sex" }', "filters.absence_type.was.name: 'sex' names another filter too, so an earlier "
     "file's column could be either"),
    (WAS, WAS.replace('= "Persistent absence"', '= "Persistently absnt"'),
     "filters.absence_type.was.labels: 'Persistently absent' = 'Persistently absnt' must map a label it no longer "
     "has (not its total) to one of its labels"),
    (WAS, WAS.replace('"Persistently absent" = "Persistent absence"',
                      '"Persistently absent" = "Persistent absence", "PA" = "Persistent absence"'),
     "filters.absence_type.was.labels: two earlier labels map to one label; their counts would be two rows of one category"),
    (WAS, WAS.replace('"Persistently absent" = "Persistent absence"', '"Total" = "Persistent absence"'),
     "filters.absence_type.was.labels: 'Total' = 'Persistent absence' must map a label it no longer has (not its "
     "total) to one of its labels"),
    ('label = "Sex"\n', 'label = "Sex"\nwas = { labels = { "F" = "Female" } }\n',
     "filters.sex.was.labels: only for a filter with its own labels (a code set's labels change in the code set)"),
])
def test_a_category_left_out_of_the_files_and_a_total_label_are_checked_at_load(tmp_path, old, new, expected):
    folder = tmp_path / "publications"
    folder.mkdir()
    text = (PUBLICATIONS_DIR / "filters.toml").read_text()
    assert old in text
    (folder / "filters.toml").write_text(text.replace(old, new))
    shutil.copy(PUBLICATIONS_DIR / "absence.toml", folder / "absence.toml")
    with pytest.raises(PublicationError) as caught:
        load_publication(folder / "absence.toml")
    assert str(caught.value) == f"{folder / 'filters.toml'}: {expected}", str(caught.value)


def test_a_filters_earlier_name_may_not_be_an_indicator_of_its_publication(tmp_path):
    folder = tmp_path / "publications"
    folder.mkdir()
    (folder / "filters.toml").write_text((PUBLICATIONS_DIR / "filters.toml").read_text().replace(
        WAS, 'was = { name = "pupil_count" }'))
    shutil.copy(PUBLICATIONS_DIR / "absence.toml", folder / "absence.toml")
    with pytest.raises(PublicationError) as caught:
        load_publication(folder / "absence.toml")
    assert str(caught.value).endswith("absence.toml: filters.absence_type.was.name: 'pupil_count' is an indicator of "
                                      "this publication, so an earlier file's indicator would be read as the filter")


def test_the_names_specs_may_use_are_those_the_nodes_make():
    """The specs are checked against the derived characteristics and generalisations the nodes define, without
    importing them (the growth reference is heavy): the two lists must not drift apart."""
    from pipelines.nodes.characteristics import DERIVED, DERIVED_TOGETHER
    from pipelines.nodes.deidentify import GENERALISATIONS
    from schemas.specs.publication import DERIVED_COLUMNS
    from schemas.specs.recipient import GENERALISATION_NAMES

    assert set(DERIVED_COLUMNS) == set(DERIVED) | set(DERIVED_TOGETHER)
    assert set(GENERALISATION_NAMES) == set(GENERALISATIONS)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace("flag =", "flg =", 1), "opt_out.flg: unknown key (expected flag, keep)"),
    (lambda t: re.sub(r"where = \{ (\w+)", r"where = { \1x", t, count=1), "is not a column of pupils"),
    (lambda t: re.sub(r'name = "(\w+)", source = "', r'name = "\1", sorce = "', t, count=1), "unknown key (expected name, source)"),
])
def test_an_extract_specs_nested_tables_and_columns_are_checked_at_load(tmp_path, edit, expected):
    """A misspelt opt-out flag would send every young person's data: it is an error, never ignored."""
    spec = tmp_path / "youth_support.toml"
    spec.write_text(edit((EXTRACTS_DIR / "youth_support.toml").read_text()))
    with pytest.raises(ExtractError, match=re.escape(expected)):
        load_extract(spec, load_recipients())


def test_a_publications_nested_key_and_an_extracts_term_are_checked_at_load(tmp_path):
    folder = tmp_path / "publications"
    folder.mkdir()
    shutil.copy(PUBLICATIONS_DIR / "filters.toml", folder / "filters.toml")
    (folder / "absence.toml").write_text((PUBLICATIONS_DIR / "absence.toml").read_text().replace(
        'label = "Number of pupils"', 'lable = "Number of pupils"'))
    with pytest.raises(PublicationError, match=r"absence.toml: indicator.lable: unknown key"):
        load_publication(folder / "absence.toml")
    spec = tmp_path / "ey_census.toml"
    spec.write_text((EXTRACTS_DIR / "ey_census.toml").read_text().replace('terms = ["spring"]', 'terms = ["sprng"]'))
    with pytest.raises(ExtractError, match=r"ey_census.toml: terms: 'sprng' is not one of autumn, spring, summer"):
        load_extract(spec, load_recipients())


def test_an_extract_specs_return_is_checked_at_load(tmp_path):
    spec = tmp_path / "nccis.toml"
    spec.write_text(re.sub(r'return = "[a-z_]+"', 'return = "destination"', (EXTRACTS_DIR / "nccis.toml").read_text(), count=1))
    with pytest.raises(ExtractError, match=r"nccis.toml: return: 'destination' is not one of"):
        load_extract(spec, load_recipients())


def test_a_policys_magnitude_rules_must_protect_some_amount(tmp_path):
    """The release's policy protects the funded hours (a measure), so its dominance and p% rules apply; the same
    rules in the health policy, whose NCMP statistics show no amount, would never apply: refused, naming both."""
    config = load_run_config()
    assert config.policies[DISCLOSURE_POLICY].dominance == Dominance(1, 85)
    health = load_recipients()["health"].policy
    ruled = replace(config, policies={**config.policies, health: replace(config.policies[health], p_percent=10.0)})
    with pytest.raises(PolicyError, match=rf"^{re.escape(str(health))}: p_percent: applies to amounts published beside "
                                          r"counts .* \(ncmp_prevalence\) has one"):
        checked_magnitude_rules(ruled)
    everything = tmp_path / "policy.toml"  # a run's own policy protects every publication, the funded hours too
    everything.write_text("threshold = 5\np_percent = 15\n")
    assert load_run_config(everything).policies[everything].p_percent == 15
