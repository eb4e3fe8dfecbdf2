"""The leak scan and the recipients file it takes entitlements from."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.assurance.leakscan import identifier_values, scan
from schemas.config import load_recipients
from schemas.specs.recipient import RecipientError, parse_recipient


def test_a_planted_identifier_is_found_by_column_and_kind_and_entitled_columns_are_skipped(small_clean, tmp_path):
    pupils = pl.read_csv(small_clean / "pupils.csv", infer_schema=False)
    identifiers = identifier_values([pupils])
    upn, name = pupils["upn"][3], f"{pupils['forename'][5]} {pupils['surname'][5]}"
    outbound = tmp_path / "extract.csv"
    pl.DataFrame({"pupil": [upn.lower(), "x"], "label": ["White", name], "n": ["12", "c"]}).write_csv(outbound)
    leaks = scan([outbound], identifiers, set())
    found = {(leak.column, leak.kind, leak.cells) for leak in leaks}
    assert {("pupil", "upn", 1), ("label", "full_name", 1)} <= found  # the name may also be some parent's name
    assert {column for column, _, _ in found} == {"pupil", "label"}  # "White" and the counts are not identifiers
    assert upn not in " ".join(map(str, leaks)) and name not in " ".join(map(str, leaks))  # findings never echo a value
    assert {leak.column for leak in scan([outbound], identifiers, {"pupil"})} == {"label"}


def test_parquet_files_are_scanned_too(small_clean, tmp_path):
    pupils = pl.read_csv(small_clean / "pupils.csv", infer_schema=False)
    outbound = tmp_path / "table.parquet"
    pl.DataFrame({"postcode_sector": [pupils["postcode"][0]], "n": [12]}).write_parquet(outbound)
    assert [(leak.column, leak.kind) for leak in scan([outbound], identifier_values([pupils]), set())] == [("postcode_sector", "postcode")]


def test_workbooks_are_scanned_on_every_sheet(small_clean, tmp_path):
    """A workbook goes out beside the EES files: an identifier in a table cell, or a name as its title, is found."""
    from outputs.workbook import write_workbook

    pupils = pl.read_csv(small_clean / "pupils.csv", infer_schema=False)
    name = f"{pupils['forename'][2]} {pupils['surname'][2]}"
    data = pl.DataFrame({"time_period": ["202526"], "label": [pupils["upn"][1]], "pupil_count": ["c"]})
    meta = pl.DataFrame({"col_name": ["label", "pupil_count"], "col_type": ["Filter", "Indicator"]})
    outbound = tmp_path / "publication.xlsx"
    write_workbook(outbound, name, "2026 spring", [("by_label", data, meta)], {"suppressed": "c"}, "x")
    found = {(leak.column, leak.kind) for leak in scan([outbound], identifier_values([pupils]), set())}
    assert {("by_label:column_1", "upn"), ("Cover:column_0", "full_name")} <= found


RECIPIENT = {"name": "DfE", "legal_basis": "x", "level": "record", "fields": [], "policy": "disclosure.toml", "formats": ["csv"]}


def test_the_shipped_recipients_file_loads_and_errors_name_the_key(tmp_path):
    recipients = load_recipients()
    assert recipients["publication"].fields == frozenset()
    assert recipients["health"].entitlement.treatment("upn") == "pseudonym"
    assert recipients["health"].entitlement.treatment("postcode") == "postcode_district"
    with pytest.raises(RecipientError, match=r"dfe\.level: 'rows'"):
        parse_recipient("dfe", RECIPIENT | {"level": "rows"})
    with pytest.raises(RecipientError, match=r"publication\.fields"):
        parse_recipient("publication", RECIPIENT | {"level": "aggregate", "fields": ["upn"]})
    with pytest.raises(RecipientError, match=r"dfe\.generalise\.postcode: 'postcode_area'"):
        parse_recipient("dfe", RECIPIENT | {"generalise": {"postcode": "postcode_area"}})
    with pytest.raises(RecipientError, match=r"dfe\.key_id: needed to pseudonymise upn"):
        parse_recipient("dfe", RECIPIENT | {"pseudonymise": ["upn"]})
    with pytest.raises(RecipientError, match=r"dfe\.policy: no policy file 'strict.toml'"):
        parse_recipient("dfe", RECIPIENT | {"policy": "strict.toml"})
    bad = tmp_path / "recipients.toml"
    bad.write_text('[health]\nname = "ICB"\n')
    with pytest.raises(RecipientError, match=r"recipients.toml: health.legal_basis: missing"):
        load_recipients(bad)


def test_a_reformatted_identifier_is_still_found(small_clean, tmp_path):
    """A date of birth written DD/MM/YYYY, a postcode without its space, a child's id, a file named .CSV."""
    children = pl.read_csv(small_clean / "early_years.csv", infer_schema=False)
    born, postcode, child = children["date_of_birth"][0], children["postcode"][0], children["child_id"][0]
    year, month, day = born.split("-")
    outbound = tmp_path / "EXTRACT.CSV"
    pl.DataFrame({"dob": [f"{day}/{month}/{year}"], "pc": [postcode.replace(" ", "").lower()], "ref": [child]}).write_csv(outbound)
    found = {(leak.column, leak.kind) for leak in scan([outbound], identifier_values([children]), set())}
    assert {("dob", "date_of_birth"), ("pc", "postcode"), ("ref", "child_id")} <= found
