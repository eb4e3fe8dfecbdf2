"""Row-level validation: every rule fires on a designed bad row and not on good rows; every injected fault is
caught with the right rule; normalising repairs what it should; nothing is lost."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.nodes.validation import validate_frame
from pipelines.store.exports import read_export
from schemas.calendar import Term
from schemas.config import load_mapping
from schemas.contract import load_contract
from schemas.identifiers import upn_check_letter
from schemas.rules import FORMAT_CHECKS, MAX_FIELD_CHARS, SOURCE_FIELDS, Period, compile_rules

PERIOD = Period(Term(2025, "spring"))
DATASETS = ["pupils", "early_years", "destinations", "ncmp"]
LA_000_UPN = pl.select(upn_check_letter(pl.lit("000200124001")) + "000200124001").item()  # checksum-valid, LA 000
BAD_TEXT = {"date": "not a date", "int": "lots", "decimal": "n/a", "flag": "MAYBE"}
BAD_FORMAT = {"postcode": "LE3 8RC", "nino": "QQ123456A", "nass": "1313123456", "urn": "12345",
              "laestab": "855201", "eligibility_code": "1234567890", "phone": '=HYPERLINK("http://example.org","call")'}
FORMULA = '=HYPERLINK("http://example.org","click")'  # a spreadsheet opened by the recipient would run it


def raw_rows(folder, dataset: str) -> pl.DataFrame:
    return read_export(folder, load_mapping(None)[dataset]).frame


def wrong_check_character(value: str) -> str:
    last = value[0] if value[0].isalpha() else value[-1]
    swapped = "B" if last == "A" else "A"
    return swapped + value[1:] if value[0].isalpha() else value[:-1] + str((int(value[-1]) + 1) % 10)


def column_mutation(contract, rule_id: str):
    """(column to set, value) that makes a column rule fire, from the rule id's column tag and check; the row
    rules change the row as a record: its field count, a NUL byte, a huge field."""
    text = next(c.name for c in contract.columns if c.type == "text")
    row_rules = {"FIELDS": (SOURCE_FIELDS, lambda v: len(contract.columns) + 1),
                 "NUL": (text, lambda v: "Smith\x00"), "LENGTH": (text, lambda v: "x" * (MAX_FIELD_CHARS + 1))}
    if rule_id.startswith(f"{contract.prefix}-ROW-"):
        return row_rules[rule_id.removeprefix(f"{contract.prefix}-ROW-")]
    for column in contract.columns:
        stem = f"{contract.prefix}-{column.tag}-"
        if not rule_id.startswith(stem) or rule_id[len(stem):] not in {"REQUIRED", "CHECK", "LA", "CODE", "FORMAT", "RANGE",
                                                                        "FORMULA"}:
            continue
        check = rule_id[len(stem):]
        if check == "FORMULA":
            return column.name, lambda v: FORMULA
        if check == "REQUIRED":
            return column.name, lambda v: None
        if check == "CHECK":
            return column.name, wrong_check_character
        if check == "LA":
            return column.name, lambda v: LA_000_UPN
        if check == "CODE":
            return column.name, lambda v: "ZZZZ"
        if check == "FORMAT":
            return column.name, lambda v, c=column: BAD_TEXT.get(c.type) or BAD_FORMAT[c.format]
        if check == "RANGE":
            if column.type == "date":
                return column.name, lambda v, c=column: "1900-01-01" if c.not_before else "2099-01-01"
            return column.name, lambda v, c=column: str(c.min - 1) if c.min is not None else str(c.max + 1)
    return None


CROSS_RULE_ROWS = {
    # rule id: (condition a base row must meet, changes that make the rule fire)
    "PUP-UPN-DUPLICATE": (pl.col("enrolment_status") == "C", "copy_previous_upn"),
    "PUP-NCYEAR-AGE": (pl.col("nc_year") == "3", {"nc_year": "8"}),
    "PUP-NCYEAR-COHORT": (pl.col("nc_year") == "3", {"nc_year": "4"}),
    "PUP-SEN-NEED-REQUIRED": (pl.col("sen_provision") == "K", {"sen_primary_need": None}),
    "PUP-ABSENCE-EXCEEDS": (pl.col("sessions_possible").is_not_null(), {"sessions_missed": "400", "sessions_possible": "300"}),
    "EY-KEY-DUPLICATE": (pl.lit(True), "copy_previous_key"),
    "EY-PARENT-ID-BOTH": (pl.col("parent_ni_number").is_not_null(), {"parent_nass_number": "1203123456"}),
    "EY-ELIGIBILITY-CODE-REQUIRED": (pl.col("entitlement") == "E34", {"eligibility_code": None}),
    "EY-2YO-BASIS-REQUIRED": (pl.col("entitlement") == "2YO", {"two_year_basis": None}),
    "EY-HOURS-CAP": (pl.col("entitlement") == "U34", {"funded_hours_per_week": "16"}),
    "EY-ENTITLEMENT-AGE": (pl.col("entitlement") == "U34", {"date_of_birth": "2024-06-01"}),
    "EY-SCHOOL-AGE": (pl.col("term") == "2026-spring", {"date_of_birth": "2020-12-31"}),
    "DST-PERSON-DUPLICATE": (pl.lit(True), "copy_previous_person"),
    "DST-EHCP-SEN": (pl.col("sen_provision") == "N", {"ehcp": "Y"}),
    "DST-AGE-COHORT": (pl.col("ehcp") == "N", {"date_of_birth": "2003-05-01"}),
    "DST-TRANSFER-LA": (pl.col("transferred_to_la").is_null(), {"cohort_status": "T"}),
    "DST-REVIEW-DATE": (pl.col("activity_code") == "230", {"activity_code": "350"}),
    "DST-NEET-START": (pl.col("activity_code") == "230", {"activity_code": "619"}),
    "DST-ASCERTAINED-BEFORE-START": (pl.col("date_verified").is_not_null(), {"activity_start_date": "2026-08-30"}),
    "DST-VERIFIED-BEFORE-ASCERTAINED": (pl.col("date_verified").is_not_null(), {"date_ascertained": "2026-08-30"}),
    "DST-LAPSE-AFTER-COURSE-END": (pl.col("predicted_end_date").is_not_null(), {"due_to_lapse_date": "2030-01-01"}),
    "DST-NEET-START-ONLY-NEET": (pl.col("activity_code") == "230", {"neet_start_date": "2025-10-01"}),
    "DST-NEET-START-AFTER-ACTIVITY": (pl.col("neet_start_date").is_not_null() & (pl.col("activity_start_date") < "2026-01-20"),
                                      {"neet_start_date": "2026-01-20"}),
    "DST-TRANSFER-ONLY-T": (pl.col("cohort_status") != "T", {"transferred_to_la": "856"}),
    "DST-Y11-LA-GUARANTEE": (pl.col("sg_year11_la").is_not_null() & (pl.col("la_at_year_11") != "856"), {"sg_year11_la": "856"}),
    "DST-ADDRESS": (pl.lit(True), {"address_line1": None, "address_line2": None, "town": None}),
    "DST-YOUNG-CARER": (pl.col("activity_code") == "230", {"activity_code": "620", "characteristics": None}),
    "DST-TEENAGE-PARENT": (pl.col("activity_code") == "230", {"activity_code": "630", "characteristics": None}),
    "DST-PREGNANCY": (pl.col("activity_code") == "230", {"activity_code": "650", "characteristics": None}),
    "DST-PREGNANCY-SEX": (pl.col("sex") == "M", {"characteristics": "180"}),
    "EY-FUNDED-OVER-ATTENDED": (pl.col("entitlement") == "U34", {"hours_at_setting": "1"}),
    "EY-HOURS-AT-SETTING-HALF": (pl.col("hours_at_setting").is_not_null(), {"hours_at_setting": "40.3"}),
    "NCMP-UPN-DUPLICATE": (pl.lit(True), "copy_previous_upn"),
    "NCMP-NCYEAR-AGE": (pl.col("nc_year") == "R", {"nc_year": "6"}),
}
COPIED_KEYS = {"copy_previous_upn": ["upn"], "copy_previous_key": ["child_id", "provider_urn", "term"],
               "copy_previous_person": ["person_id"]}


def designed_rows(good: pl.DataFrame, contract, rule_id: str) -> pl.DataFrame:
    """Two good rows then one that breaks rule_id (which may copy the first row's key)."""
    if rule_id in CROSS_RULE_ROWS:
        condition, change = CROSS_RULE_ROWS[rule_id]
        base = good.filter(condition).head(3)
        if isinstance(change, str):
            changes = {k: base[k][0] for k in COPIED_KEYS[change]}
        else:
            changes = change
    else:
        column, mutate = column_mutation(contract, rule_id)
        base = good.filter(pl.col(column).is_not_null() | (column == SOURCE_FIELDS)).head(3)
        changes = {column: mutate(base[column][2])}
    assert base.height == 3, f"no good rows to design {rule_id} from"
    bad = base[2].with_columns(pl.lit(v, dtype=base.schema[k]).alias(k) for k, v in changes.items())
    return pl.concat([base.head(2), bad])


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_rule_fires_on_a_designed_bad_row_and_not_on_good_rows(small_clean, dataset):
    contract = load_contract(dataset)
    good = raw_rows(small_clean, dataset)
    good = good.filter(pl.col("source_row").is_in(validate_frame(good, contract, PERIOD).staged["source_row"].implode()))
    good = good.filter(pl.col("source_row").is_in(
        validate_frame(good, contract, PERIOD).warnings["source_row"].implode()).not_())
    for rule in compile_rules(contract, PERIOD):
        rows = designed_rows(good, contract, rule.id)
        result = validate_frame(rows, contract, PERIOD)
        last = rows["source_row"][2]
        hits = set(result.quarantine.filter(pl.col("source_row") == last)["rule_ids"].str.split(";").explode())
        hits |= set(result.warnings.filter(pl.col("source_row") == last)["rule_id"])
        assert rule.id in hits, f"{rule.id} did not fire on {rows[2].to_dicts()}"
        others = result.quarantine.filter(pl.col("source_row") != last).height + result.warnings.filter(pl.col("source_row") != last).height
        assert others == 0, f"good rows failed while testing {rule.id}"


@pytest.mark.parametrize("dataset", DATASETS)
def test_fault_free_county_raises_no_errors(county, dataset):
    result = validate_frame(raw_rows(county, dataset), load_contract(dataset), PERIOD)
    assert result.quarantine.height == 0, result.rule_counts.head(5).to_dicts()
    assert set(result.warnings["rule_id"]) <= {"PUP-NCYEAR-COHORT"}


def expected_rule(contract, fault: str, field: str) -> str:
    special = {"nc_year_age": "NCYEAR-AGE", "duplicate_upn": "UPN-DUPLICATE", "ni_and_nass_both": "PARENT-ID-BOTH",
               "hours_above_cap": "HOURS-CAP"}
    if fault in special:
        return f"{contract.prefix}-{special[fault]}"
    check = {"upn_check_letter": "CHECK", "uln_check_digit": "CHECK", "dob_missing": "REQUIRED", "dob_future": "RANGE",
             "postcode_malformed": "FORMAT", "unknown_code": "CODE", "excel_date": "FORMAT",
             "lost_leading_zero": "FORMAT", "implausible_measurement": "RANGE"}[fault]
    return f"{contract.prefix}-{contract.column(field).tag}-{check}"


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_injected_fault_is_quarantined_with_the_right_rule(small_faulty, dataset):
    contract = load_contract(dataset)
    raw = raw_rows(small_faulty, dataset)
    result = validate_frame(raw, contract, PERIOD)
    faults = pl.read_csv(small_faulty / "faults.csv", infer_schema=False).filter(pl.col("file") == f"{dataset}.csv")
    to_quarantine = faults.filter(pl.col("expected") == "quarantine")
    assert sorted(result.quarantine["source_row"].to_list()) == sorted(to_quarantine["source_row"].cast(int).to_list())
    found = dict(zip(result.quarantine["source_row"].to_list(), result.quarantine["rule_ids"].to_list(), strict=True))
    for fault in to_quarantine.iter_rows(named=True):
        rule = expected_rule(contract, fault["fault"], fault["field"])
        assert rule in found[int(fault["source_row"])].split(";"), (fault, found[int(fault["source_row"])])
    assert result.staged.height + result.quarantine.height == raw.height


def test_normalising_repairs_spaces_case_and_postcode_spacing(small_clean):
    contract = load_contract("pupils")
    good = raw_rows(small_clean, "pupils").head(1)
    messy = good.with_columns(
        upn=pl.lit("  ") + pl.col("upn").str.to_lowercase() + " ",
        ethnicity=pl.col("ethnicity").str.to_lowercase(),
        postcode=pl.col("postcode").str.replace(" ", "").str.to_lowercase(),
        fsm_eligible=pl.lit("yes"),
    )
    result = validate_frame(messy, contract, PERIOD)
    assert result.quarantine.height == 0
    staged = result.staged.row(0, named=True)
    assert staged["upn"] == good["upn"][0] and staged["ethnicity"] == good["ethnicity"][0]
    assert staged["postcode"] == good["postcode"][0] and staged["fsm_eligible"] is True


def test_quarantine_keeps_the_raw_values_as_read(small_faulty):
    raw = raw_rows(small_faulty, "pupils")
    result = validate_frame(raw, load_contract("pupils"), PERIOD)
    first = result.quarantine.row(0, named=True)
    original = raw.drop(SOURCE_FIELDS).filter(pl.col("source_row") == first["source_row"]).row(0, named=True)
    assert {k: first[k] for k in original} == original


def test_validating_in_chunks_gives_the_same_result(small_faulty):
    """Chunks bound memory on national files; the duplicate-key rules still see the whole file."""
    raw = raw_rows(small_faulty, "pupils")
    whole = validate_frame(raw, load_contract("pupils"), PERIOD)
    chunked = validate_frame(raw, load_contract("pupils"), PERIOD, chunk_rows=997)
    assert whole.quarantine.equals(chunked.quarantine) and whole.staged.equals(chunked.staged)
    assert whole.warnings.equals(chunked.warnings) and whole.rule_counts.equals(chunked.rule_counts)
    assert "PUP-UPN-DUPLICATE" in set(chunked.rule_counts["rule_id"])


@pytest.mark.parametrize("column, value", [("forename", FORMULA), ("address_line1", "+SUM(1,1)"), ("email", "@cmd"),
                                           ("parent_name", "-2+3"), ("phone", "=1+1")])
def test_text_a_spreadsheet_would_run_as_a_formula_is_quarantined(small_clean, column, value):
    contract = load_contract("pupils")
    rows = raw_rows(small_clean, "pupils").head(3).with_columns(
        pl.when(pl.col("source_row") == pl.col("source_row").max()).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))
    result = validate_frame(rows, contract, PERIOD)
    assert result.staged.height == 2 and result.quarantine.height == 1
    tag = next(c.tag for c in contract.columns if c.name == column)
    assert result.quarantine["rule_ids"][0].split(";") == [f"PUP-{tag}-{'FORMAT' if column == 'phone' else 'FORMULA'}"]
    assert value not in result.quarantine["messages"][0]


def test_dates_are_checked_against_the_census_day_of_the_term_being_validated(small_clean):
    """A pupil admitted in November is on roll for the January census but was not yet there on the October one:
    an autumn run quarantines the row, a spring run of the same academic year stages it."""
    rows = raw_rows(small_clean, "pupils").head(1).with_columns(admission_date=pl.lit("2025-11-03"))
    autumn = validate_frame(rows, load_contract("pupils"), Period(Term(2025, "autumn")))
    spring = validate_frame(rows, load_contract("pupils"), Period(Term(2025, "spring")))
    assert autumn.quarantine["rule_ids"].to_list() == ["PUP-ADMISSION-DATE-RANGE"]
    assert spring.quarantine.height == 0 and spring.staged.height == 1


def test_an_ofsted_urn_is_ey_and_six_digits_or_six_or_seven_digits():
    """Ofsted's early years registrations since 2008 are EY and six digits; the provider reference data must
    accept them as well as the older all-digit URNs."""
    values = pl.DataFrame({"urn": ["EY123456", "212345", "2123456", "EY12345", "AB123456", "12345"]})
    accepted = values.select(FORMAT_CHECKS["ofsted_urn"][1](pl.col("urn")))["urn"].to_list()
    assert accepted == [True, True, True, False, False, False]
