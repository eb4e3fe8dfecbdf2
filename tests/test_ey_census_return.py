"""The early years census as the XML message of its specification: header, settings with their characteristics,
staff and pupil/child statistics modules, and their funded children; checked against the XML schema written from
the specification (with xmlschema, read independently of the builder) and against its validation rules."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import polars as pl
import pytest
import xmlschema

from pipelines.assurance.dfe_returns import ReturnRejected, checked_return, ey_census_rule_failures
from pipelines.nodes.characteristics import extended_hours, universal_hours
from pipelines.nodes.dfe_xml import EyCensusHeader, LayoutError, ey_census_document, parsed
from pipelines.store.warehouse import staged_frames
from schemas.calendar import Term
from schemas.catalog import FORMATS_DIR, RunPaths
from schemas.specs.layout import EY_CENSUS_XML

HEADER = EyCensusHeader("855", Term.parse("2026-spring"), dt.datetime(2026, 1, 20, 9, 30), "test")
PROVIDERS = pl.DataFrame({"provider_urn": [500001], "ofsted_urn": ["EY212345"], "provider_name": ["Ward Nursery"],
                          "provider_type": ["PVI"], "postcode": ["LE1 6XN"], "old_la_code": ["855"],
                          "hours_open_per_week": [50.0], "weeks_open_per_year": [51], "eyts_staff": [1],
                          "eyts_staff_with_children": [1]})
CHILD = {"EstablishmentURN": "500001", "Surname": "Lovelace", "Forename": "Ada", "DOB": dt.date(2022, 5, 1),
         "Sex": "F", "FundedHours": 15.0, "ExtendedHours": 15.0, "HoursAtSetting": 32.5, "EligibilityCode": "50012345678",
         "EYPPR": False, "DAFIndicator": True}


def document(providers: pl.DataFrame = PROVIDERS, **changes) -> bytes:
    return ey_census_document(pl.DataFrame([CHILD | changes]), EY_CENSUS_XML, providers, HEADER)


def test_the_delivered_census_matches_its_schema_and_its_settings(census_run):
    out, _ = census_run
    delivered = (RunPaths(out).deliveries / "dfe" / "ey_census.xml").read_bytes()
    xmlschema.XMLSchema(str(FORMATS_DIR / "ey_census.xsd")).validate(delivered.decode("utf-8"))
    assert {r for r, _ in ey_census_rule_failures(parsed(delivered)).items() if not r.endswith("Q")} == set()
    root = ET.fromstring(delivered)
    header = root.find("Header")
    assert [e.text for e in header.find("CollectionDetails")] == ["EYC", "SPR", "2026", "2026-01-15"]
    assert [e.tag for e in header.find("Source")] == ["SourceLevel", "LEA", "SoftwareCode", "Release", "SerialNo",
                                                     "DateTime"]
    providers = staged_frames(RunPaths(out).warehouse, ("providers",))["providers"]
    for setting in root.iterfind("Establishment"):
        urn = int(setting.findtext("EstablishmentCharacteristics/URN"))
        provider = providers.filter(pl.col("provider_urn") == urn).row(0, named=True)
        assert setting.findtext("EstablishmentCharacteristics/OfstedURN") == provider["ofsted_urn"]
        assert int(setting.findtext("StaffInformation/EstabEYTSTeachers")) == provider["eyts_staff"]
        counted = sum(int(e.text) for e in setting.find("PupilChildStatistics"))
        assert counted == len(setting.findall("PupilChildren/PupilChild")) > 0


def test_funding_bases_repeat_and_hours_are_the_census_items(census_run):
    out, _ = census_run
    root = ET.fromstring((RunPaths(out).deliveries / "dfe" / "ey_census.xml").read_bytes())
    children = root.findall("Establishment/PupilChildren/PupilChild")
    assert any(len(c.findall("FundingBasis")) > 1 for c in children)  # one element per basis, never a list
    assert all(";" not in (c.findtext("FundingBasis") or "") for c in children)
    assert {c.findtext("DAFIndicator") for c in children} <= {"true", "false", None}
    extended = [c for c in children if c.findtext("ExtendedHours")]
    assert extended and all(c.findtext("EligibilityCode") for c in extended)
    assert all(float(c.findtext("HoursAtSetting")) >= sum(float(c.findtext(h) or 0) for h in
                                                          ("FundedHours", "ExtendedHours", "ExpandedHours"))
               for c in children)


def test_designed_settings_and_children_break_exactly_the_named_rules(tmp_path):
    assert ey_census_rule_failures(parsed(document())) == {}
    assert ey_census_rule_failures(parsed(document(HoursAtSetting=25.0))) == {"8220": 1}
    assert ey_census_rule_failures(parsed(document(HoursAtSetting=32.25, FundedHours=10.0))) == {"8215": 1}
    assert ey_census_rule_failures(parsed(document(PROVIDERS.with_columns(weeks_open_per_year=pl.lit(53))))) == {"8105": 1}
    assert ey_census_rule_failures(parsed(document(DOB=dt.date(2020, 1, 1)))) == {"8155": 1}  # aged 6: no funded child under 5
    late = PROVIDERS.with_columns(hours_open_per_week=pl.lit(80.0))
    assert checked_return(tmp_path / "ey_census.xml", document(late), "ey_census_xml") == {"8100Q": 1}  # a query
    with pytest.raises(ReturnRejected, match=r"rule 8220 \(a child's funded hours .*\): 1 record"):
        checked_return(tmp_path / "ey_census.xml", document(HoursAtSetting=25.0), "ey_census_xml")


def test_a_setting_outside_the_reference_data_or_a_bad_item_is_refused_without_its_value(tmp_path):
    with pytest.raises(LayoutError, match="1 setting.* not in the provider reference data"):
        document(EstablishmentURN="500999")
    with pytest.raises(ReturnRejected) as refused:
        checked_return(tmp_path / "ey_census.xml", document(EligibilityCode="NOT-A-CODE"), "ey_census_xml")
    assert "EligibilityCode" in str(refused.value) and "NOT-A-CODE" not in str(refused.value)


def test_a_working_parents_30_hours_split_between_settings_count_the_universal_15_once():
    frame = pl.DataFrame({"child_id": ["a", "a", "b"], "term": ["2026-spring"] * 3, "entitlement": ["E34"] * 3,
                          "provider_urn": ["500002", "500001", "500003"], "funded_hours_per_week": ["10", "20", "30"]})
    term = Term.parse("2026-spring")
    split = frame.select("child_id", universal=universal_hours(frame, term), extended=extended_hours(frame, term))
    assert split.rows() == [("a", 0.0, 10.0), ("a", 15.0, 5.0), ("b", 15.0, 15.0)]
