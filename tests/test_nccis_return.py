"""The NCCIS return as the DfE takes it: the monthly XML of the management information requirement, checked
against the XML schema written from it (with xmlschema, read independently of the builder) and against its
validation rules; CurrencyLapsed as the rules ask; a spec that cannot fill the layout refused at load."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import polars as pl
import pytest
import xmlschema

from pipelines.assurance.dfe_returns import NCCIS_RULES, ReturnRejected, checked_return, nccis_rule_failures
from pipelines.nodes.dfe_xml import LayoutError, NccisHeader, nccis_document, parsed
from pipelines.store.warehouse import staged_frames
from schemas.catalog import EXTRACTS_DIR, FORMATS_DIR, RunPaths
from schemas.config import load_extract, load_recipients
from schemas.specs.extract import ExtractError
from schemas.specs.layout import NCCIS_XML

HEADER = NccisHeader("855", "855", dt.date(2026, 1, 20), dt.date(2026, 1, 31), "test")
GOOD = {  # one young person, every required item, consistent as the rules ask
    "PersonalDetails/YoungPersonsID": "YP8550000001", "PersonalDetails/CohortStatus": "P",
    "PersonalDetails/GivenName": "Ada", "PersonalDetails/FamilyName": "Lovelace",
    "PersonalDetails/AddressLine1": "1 High Street", "PersonalDetails/Postcode": "LE1 6XN",
    "PersonalDetails/Gender": "F", "PersonalDetails/DOB": dt.date(2009, 3, 1), "PersonalDetails/Ethnicity": "WBRI",
    "PersonalDetails/EducatedLEA": "855", "LevelOfNeed/LevelOfNeedCode": "3", "LevelOfNeed/SENDFlag": False,
    "LevelOfNeed/SENSupportFlag": None, "Activities/Cohort/ActivityCode": "230",
    "Activities/Cohort/StartDate": dt.date(2025, 9, 1), "Activities/Cohort/DateAscertained": dt.date(2025, 9, 20),
    "Activities/Cohort/DateVerified": dt.date(2026, 1, 10), "Activities/Cohort/DueToLapseDate": dt.date(2026, 7, 10),
    "Activities/Cohort/CurrencyLapsed": dt.date(2026, 7, 10), "Activities/Cohort/PredictedEndDate": dt.date(2027, 7, 31),
}


def document(**changes) -> bytes:
    return nccis_document(pl.DataFrame([GOOD | changes]), NCCIS_XML, HEADER, 2025)


@pytest.fixture(scope="module")
def delivered(census_run):
    out, _ = census_run
    return (RunPaths(out).deliveries / "dfe" / "nccis.xml").read_bytes()


def test_the_delivered_nccis_file_matches_its_schema_and_breaks_no_rule(delivered, census_run):
    schema = xmlschema.XMLSchema(str(FORMATS_DIR / "nccis.xsd"))
    schema.validate(delivered.decode("utf-8"))  # raises on the first failure
    assert nccis_rule_failures(parsed(delivered)) == {}
    root = ET.fromstring(delivered)
    assert root.tag == "NCCIS" and root.findtext("FileHeader/PeriodEnd") == "2026-01-31"
    staged = staged_frames(RunPaths(census_run[0]).warehouse, ("destinations",))["destinations"]
    records = root.findall("YoungPersonsRecord")
    assert len(records) == staged.height  # one record per young person staged
    assert {r.findtext("PersonalDetails/LeadLEA") for r in records} == {root.findtext("FileHeader/SourceLEAs/LEACode")}
    ids = [r.findtext("PersonalDetails/YoungPersonsID") for r in records]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"\d{13}", i) for i in ids)


def test_the_file_carries_the_datasets_the_requirement_asks_for(delivered):
    root = ET.fromstring(delivered)
    counts = {path: len(root.findall(f"YoungPersonsRecord/{path}")) for path in (
        "SeptemberGuarantee/Year11/GuaranteeStatus", "SeptemberGuarantee/Year12/GuaranteeStatus",
        "LevelOfNeed/SENSupportFlag", "LevelOfNeed/Characteristics/CharacteristicCode", "Activities/Cohort/ReviewDate",
        "Activities/Cohort/NEETStartDate", "IntendedDestination/IntendedDestinationYr11", "PersonalDetails/LEACodeAtYear11")}
    assert all(counts.values()), counts
    lapsed = [r for r in root.iterfind("YoungPersonsRecord") if r.findtext("Activities/Cohort/CurrencyLapsed") == "Y"]
    assert lapsed and all(r.findtext("Activities/Cohort/DueToLapseDate") < "2026-01-31" for r in lapsed)
    assert not root.findall("YoungPersonsRecord/PersonalDetails[Ethnicity='WCOR']")  # extended codes go as main codes


def test_a_designed_record_passes_and_each_broken_rule_is_named():
    assert nccis_rule_failures(parsed(document())) == {}
    assert nccis_rule_failures(parsed(document(**{"Activities/Cohort/ActivityCode": "619"}))) == {"224": 1}
    assert nccis_rule_failures(parsed(document(**{"PersonalDetails/CohortStatus": "T"}))) == {"13": 1}
    assert nccis_rule_failures(parsed(document(**{"Activities/Cohort/ActivityCode": "260"}))) == {"262": 1}
    assert nccis_rule_failures(parsed(document(**{"Activities/Cohort/DateVerified": dt.date(2026, 2, 3)}))) == {"305": 1}
    assert nccis_rule_failures(parsed(document(**{"PersonalDetails/LEACodeAtYear11": "999"}))) == {"24": 1}
    lapsed = document(**{"Activities/Cohort/DueToLapseDate": dt.date(2026, 1, 5),
                         "Activities/Cohort/CurrencyLapsed": dt.date(2026, 1, 5)})
    assert b"<CurrencyLapsed>Y</CurrencyLapsed>" in lapsed and nccis_rule_failures(parsed(lapsed)) == {}


BROKEN = {  # Appendix D error -> a change to the designed record that breaks it and no other rule
    "13": {"PersonalDetails/CohortStatus": "T"},
    "19": {"PersonalDetails/EducatedLEA": "999"},
    "24": {"PersonalDetails/LEACodeAtYear11": "999"},
    "25": {"PersonalDetails/LEACodeAtYear11": "855", "SeptemberGuarantee/Year11/LEACode": "856"},
    "31": {"PersonalDetails/AddressLine1": None},
    "34": {"PersonalDetails/TransferredToLACode": "856"},
    "43": {"PersonalDetails/Postcode": "LE16XN"},
    "224": {"Activities/Cohort/ActivityCode": "619"},
    "225": {"Activities/Cohort/ActivityCode": "619", "Activities/Cohort/NEETStartDate": dt.date(2025, 10, 1)},
    "226": {"Activities/Cohort/NEETStartDate": dt.date(2025, 8, 1)},
    "233": {"Activities/Cohort/ActivityCode": "620", "Activities/Cohort/NEETStartDate": dt.date(2025, 9, 1)},
    "234": {"Activities/Cohort/ActivityCode": "630", "Activities/Cohort/NEETStartDate": dt.date(2025, 9, 1)},
    "235": {"Activities/Cohort/ActivityCode": "650", "Activities/Cohort/NEETStartDate": dt.date(2025, 9, 1),
            "LevelOfNeed/Characteristics/CharacteristicCode": "140"},
    "237": {"Activities/Cohort/DateVerified": dt.date(2025, 9, 10)},
    "238": {"Activities/Cohort/PredictedEndDate": dt.date(2026, 6, 30)},
    "242": {"Activities/Cohort/DateAscertained": dt.date(2025, 8, 20), "Activities/Cohort/DateVerified": dt.date(2025, 8, 25)},
    "260": {"LevelOfNeed/Characteristics/CharacteristicCode": "180", "PersonalDetails/Gender": "M"},
    "261": {"SeptemberGuarantee/Year11/LEACode": "999"},
    "262": {"Activities/Cohort/ActivityCode": "260"},
    "305": {"Activities/Cohort/DateVerified": dt.date(2026, 2, 3)},
    "306": {"LevelOfNeed/SENDFlag": True, "LevelOfNeed/SENSupportFlag": "K"},
}


@pytest.mark.parametrize("rule", sorted(BROKEN, key=int))
def test_each_appendix_d_rule_fires_on_a_record_designed_to_break_it(rule):
    """Every rule the checker knows, broken alone (231, 232 and 903 are set by the builder itself and 26 by the
    header: a record cannot be built to break them)."""
    assert nccis_rule_failures(parsed(document(**BROKEN[rule]))) == {rule: 1}
    assert set(BROKEN) | {"231", "232", "903", "26"} == set(NCCIS_RULES)


def test_two_people_whose_ids_have_the_same_digits_are_refused_not_merged():
    """NCCIS's YoungPersonsID keeps only digits: YP0000001 and ZZ0000001 would become one young person."""
    rows = pl.DataFrame([GOOD | {"PersonalDetails/YoungPersonsID": "YP0000001"},
                         GOOD | {"PersonalDetails/YoungPersonsID": "ZZ0000001"}])
    with pytest.raises(LayoutError, match="^two or more person ids have the same digits") as refused:
        nccis_document(rows, NCCIS_XML, HEADER, 2025)
    assert "0000001" not in str(refused.value)
    assert nccis_document(rows.head(1), NCCIS_XML, HEADER, 2025).count(b"<YoungPersonsRecord>") == 1


def test_a_file_the_dfe_would_reject_is_refused_in_one_line_without_its_values(tmp_path):
    bad = document(**{"Activities/Cohort/ActivityCode": "999"})
    with pytest.raises(ReturnRejected) as refused:
        checked_return(tmp_path / "nccis.xml", bad, "nccis_xml")
    message = str(refused.value)
    assert "ActivityCode" in message and "nccis.xsd" in message and "999" not in message and "\n" not in message
    with pytest.raises(ReturnRejected, match=r"rule 224 \(a NEET activity without a NEET start date\): 1 record"):
        checked_return(tmp_path / "nccis.xml", document(**{"Activities/Cohort/ActivityCode": "619"}), "nccis_xml")


def test_a_missing_item_a_bad_value_and_a_broken_file_are_told_apart_without_values(tmp_path):
    target = tmp_path / "nccis.xml"
    no_status = re.sub(rb"<CohortStatus>P</CohortStatus>\s*", b"", document())
    with pytest.raises(ReturnRejected, match=r"PersonalDetails/GivenName: missing or out of order") as refused:
        checked_return(target, no_status, "nccis_xml")  # GivenName is found where CohortStatus should be
    assert "\n" not in str(refused.value)
    with pytest.raises(ReturnRejected, match=r"Gender: not valid for its type") as refused:
        checked_return(target, document(**{"PersonalDetails/Gender": "Q"}), "nccis_xml")
    assert "'Q'" not in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ReturnRejected, match=r"^nccis\.xml: not readable as XML \(line \d+\)$"):
        checked_return(target, document()[:-40], "nccis_xml")


@pytest.mark.parametrize(("change", "error"), [
    (lambda t: t.replace('  { name = "PersonalDetails/Postcode", source = "postcode" },\n', ""),
     r"columns: the nccis_xml layout requires PersonalDetails/Postcode"),
    (lambda t: t.replace('"PersonalDetails/Town"', '"PersonalDetails/Tonw"'),
     r"columns.PersonalDetails/Tonw: not an item of the nccis_xml layout"),
    (lambda t: t.replace('layout = "nccis_xml"', 'layout = "nccis"'), r"layout: 'nccis' is not one of csv, nccis_xml"),
    (lambda t: t.replace('{ name = "PersonalDetails/Postcode", source = "postcode" }',
                         '{ name = "PersonalDetails/Postcode", source = "address_line2" }'),
     r"columns.PersonalDetails/Postcode: the nccis_xml layout requires it, and 'address_line2' is not required in the "
     r"destinations contract"),
])
def test_a_spec_that_cannot_fill_the_layout_is_refused_at_load(tmp_path, change, error):
    spec = tmp_path / "nccis.toml"
    spec.write_text(change((EXTRACTS_DIR / "nccis.toml").read_text()))
    with pytest.raises(ExtractError, match=re.escape("nccis.toml: ") + error):
        load_extract(spec, load_recipients())
