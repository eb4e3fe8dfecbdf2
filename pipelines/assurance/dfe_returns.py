"""The DfE's XML returns checked as the receiver would before they leave: against the XML schema written from the
specification (schemas/formats/, with libxml2's validator through lxml; the tests check the same files with
`xmlschema`, a second validator) and against the specification's validation rules that apply to an LA's data.
Independent of the builder: the file is read back as written.

A finding names the rule (the NCCIS Appendix D error number, as the 2019-20 rules give it; the early years
census rule number, from the only edition whose rules could be read, about 2015, with Q for a query) and how many
records break it, or the element path of a schema failure; never a value from a record. An error refuses the
return; an early years query is reported with the extract and does not.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from functools import cache
from pathlib import Path

from lxml import etree as ET

from pipelines.nodes.dfe_xml import LayoutError, parsed
from schemas.catalog import format_schema
from schemas.rules import NCCIS_AREA_CODES, known_la_codes

NEET = {"540", "610", "615", "616", "619", "620", "630", "640", "650", "660", "670", "680"}
REVIEWED = {"260", "290", "350", "616", "710"}
NEEDS_CHARACTERISTIC = {"620": "140", "630": "120", "650": "180"}
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$")
ADDRESS = ("AddressLine1", "AddressLine2", "AddressLine3", "AddressLine4", "Town", "County")
NCCIS_RULES = {
    "13": "cohort status T without the LA transferred to",
    "19": "EducatedLEA is not an LA code",
    "24": "LEACodeAtYear11 is not an LA code",
    "25": "LEACodeAtYear11 differs from the year 11 September Guarantee LA",
    "26": "LeadLEA is not one of the file's SourceLEAs",
    "31": "no address line",
    "34": "TransferredToLACode without cohort status T",
    "43": "a postcode not in the UK format",
    "224": "a NEET activity without a NEET start date",
    "225": "a NEET start date after the activity's start",
    "226": "a NEET start date on an activity that is not NEET",
    "231": "CurrencyLapsed Y but the lapse date is after the period end",
    "232": "CurrencyLapsed N but the lapse date is before the period end",
    "233": "activity 620 (young carer) without characteristic 140",
    "234": "activity 630 (teenage parent) without characteristic 120",
    "235": "activity 650 (pregnancy) without characteristic 180",
    "237": "the activity verified before it was ascertained",
    "238": "the currency lapse date after the expected course end",
    "261": "a September Guarantee LA that is not an LA code",
    "242": "the activity ascertained before it started",
    "260": "characteristic 180 (pregnancy) with gender M",
    "262": "a temporary activity (260, 290, 350, 616, 710) without a review date",
    "305": "the activity verified after the period end",
    "306": "both SENDFlag and SENSupportFlag",
    "903": "a YoungPersonsID that does not start with the file's database id",
}


EY_CENSUS_RULES = {
    "8100Q": ("query", "hours open a week outside 1 to 70"),
    "8105": ("error", "weeks open a year outside 1 to 52"),
    "8155": ("error", "no funded children under 5 at the setting (the rule, written before under-2s were funded, "
                      "counts 2, 3 and 4 year olds; here every funded age counts)"),
    "8215": ("error", "a child's hours at the setting outside 0 to 70 or not to the nearest half hour"),
    "8220": ("error", "a child's funded hours (funded, extended and expanded) more than the hours at the setting"),
}


class ReturnRejected(ValueError):
    """A return the receiver would reject: it breaks its schema or the specification's rules."""


@cache
def _schema(layout: str) -> ET.XMLSchema:
    return ET.XMLSchema(ET.parse(str(format_schema(layout))))


CONTENT_ERRORS = ("SCHEMAV_ELEMENT_CONTENT", "SCHEMAV_CVC_COMPLEX_TYPE_2_4", "SCHEMAV_CVC_ELT_1")  # libxml2's


def schema_problems(root: ET._Element, layout: str, limit: int = 5) -> list[str]:
    """Where the document breaks its XML schema: element paths and the kind of failure, at most `limit` (libxml2's
    messages quote the failing value, so only their path and type are kept)."""
    schema = _schema(layout)
    if schema.validate(root):
        return []
    kinds = {True: "missing or out of order", False: "not valid for its type"}
    return [f"{error.path or '/'}: {kinds[error.type_name in CONTENT_ERRORS]}"
            for error in list(schema.error_log)[:limit]]


def _date(element: ET._Element, path: str) -> dt.date | None:
    value = element.findtext(path)
    return dt.date.fromisoformat(value) if value else None


def nccis_rule_failures(root: ET._Element) -> Counter:
    """Appendix D error number -> records breaking it (rules the XML schema cannot express)."""
    header = root.find("FileHeader")
    sources = {e.text for e in header.iterfind("SourceLEAs/LEACode")}
    database = header.findtext("Databases/DatabaseId") or ""
    period_end = dt.date.fromisoformat(header.findtext("PeriodEnd"))
    las = set(known_la_codes()) | set(NCCIS_AREA_CODES)
    failures: Counter = Counter()
    for record in root.iterfind("YoungPersonsRecord"):
        failures.update(record_failures(record, sources, database, period_end, las))
    return failures


def record_failures(record: ET._Element, sources: set[str], database: str, period_end: dt.date,
                    las: set[str]) -> set[str]:
    person, cohort = record.find("PersonalDetails"), record.find("Activities/Cohort")
    need = record.find("LevelOfNeed")
    broken = set()
    status, activity = person.findtext("CohortStatus"), cohort.findtext("ActivityCode")
    characteristics = {e.text for e in need.iterfind("Characteristics/CharacteristicCode")}
    if status == "T" and not person.findtext("TransferredToLACode"):
        broken.add("13")
    if status != "T" and person.findtext("TransferredToLACode"):
        broken.add("34")
    if person.findtext("EducatedLEA") not in las:
        broken.add("19")
    if (person.findtext("LEACodeAtYear11") or "000") not in las:
        broken.add("24")
    if any(e.text not in las for e in record.iterfind("SeptemberGuarantee/*/LEACode")):
        broken.add("261")
    year_11, guarantee_11 = person.findtext("LEACodeAtYear11"), record.findtext("SeptemberGuarantee/Year11/LEACode")
    if year_11 and guarantee_11 and year_11 != guarantee_11:
        broken.add("25")
    if person.findtext("LeadLEA") not in sources:
        broken.add("26")
    if not any(person.findtext(a) for a in ADDRESS):
        broken.add("31")
    if not POSTCODE.match(person.findtext("Postcode") or ""):
        broken.add("43")
    if not (person.findtext("YoungPersonsID") or "").startswith(database):
        broken.add("903")
    start, ascertained = _date(cohort, "StartDate"), _date(cohort, "DateAscertained")
    verified, neet_start = _date(cohort, "DateVerified"), _date(cohort, "NEETStartDate")
    lapse, course_end = _date(cohort, "DueToLapseDate"), _date(cohort, "PredictedEndDate")
    if activity in NEET and neet_start is None:
        broken.add("224")
    if neet_start and start and neet_start > start:
        broken.add("225")
    if activity not in NEET and neet_start is not None:
        broken.add("226")
    lapsed = cohort.findtext("CurrencyLapsed")
    if lapse and lapsed == "Y" and lapse > period_end:
        broken.add("231")
    if lapse and lapsed == "N" and lapse < period_end:
        broken.add("232")
    for code, rule in zip(NEEDS_CHARACTERISTIC, ("233", "234", "235"), strict=True):
        if activity == code and NEEDS_CHARACTERISTIC[code] not in characteristics:
            broken.add(rule)
    if verified and ascertained and ascertained > verified:
        broken.add("237")
    if lapse and course_end and lapse > course_end:
        broken.add("238")
    if start and ascertained and ascertained < start:
        broken.add("242")
    if "180" in characteristics and person.findtext("Gender") == "M":
        broken.add("260")
    if activity in REVIEWED and not cohort.findtext("ReviewDate"):
        broken.add("262")
    if verified and verified > period_end:
        broken.add("305")
    if need.findtext("SENDFlag") == "Y" and need.findtext("SENSupportFlag") == "Y":
        broken.add("306")
    return broken


def _number(element: ET._Element, path: str) -> float:
    value = element.findtext(path)
    return float(value) if value else 0.0


def ey_census_rule_failures(root: ET._Element) -> Counter:
    """Early years census rule -> settings (8100Q, 8105, 8155) or children (8215, 8220) breaking it."""
    failures: Counter = Counter()
    for setting in root.iterfind("Establishment"):
        hours_open = setting.findtext("EstablishmentCharacteristics/HoursOpen")
        if hours_open and not 1 <= float(hours_open) <= 70:
            failures["8100Q"] += 1
        weeks_open = setting.findtext("EstablishmentCharacteristics/WeeksOpen")
        if weeks_open and not 1 <= int(weeks_open) <= 52:
            failures["8105"] += 1
        if sum(int(e.text) for e in setting.find("PupilChildStatistics")) == 0:
            failures["8155"] += 1
        for child in setting.iterfind("PupilChildren/PupilChild"):
            at_setting = _number(child, "HoursAtSetting")
            if not 0 <= at_setting <= 70 or (at_setting * 2) % 1:
                failures["8215"] += 1
            if sum(_number(child, h) for h in ("FundedHours", "ExtendedHours", "ExpandedHours")) > at_setting + 1e-9:
                failures["8220"] += 1
    return failures


def checked_return(path: Path, document: bytes, layout: str) -> dict[str, int]:
    """Refuse, in one line, a return its receiver would reject (schema failures first, then broken rules);
    returns the queries it raises (rule -> count), which the receiver asks about but accepts."""
    try:
        root = parsed(document)
    except LayoutError as error:
        raise ReturnRejected(f"{path.name}: {error}") from None
    problems = schema_problems(root, layout)
    if problems:
        raise ReturnRejected(f"{path.name}: does not match {format_schema(layout).name}: {'; '.join(problems)}")
    if layout == "nccis_xml":
        failures, rules, name = nccis_rule_failures(root), {r: ("error", m) for r, m in NCCIS_RULES.items()}, "NCCIS"
    else:
        failures, rules, name = ey_census_rule_failures(root), EY_CENSUS_RULES, "early years census"
    errors = {r: n for r, n in failures.items() if rules[r][0] == "error"}
    if errors:
        listed = "; ".join(f"rule {rule} ({rules[rule][1]}): {n} record(s)" for rule, n in sorted(errors.items()))
        raise ReturnRejected(f"{path.name}: breaks the {name} validation rules: {listed}")
    return {r: n for r, n in sorted(failures.items()) if rules[r][0] == "query"}
