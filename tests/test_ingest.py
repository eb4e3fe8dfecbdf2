"""Reading exports: encodings and formats, column mapping, and one clear error for each malformed file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.nodes.validation import validate_frame
from pipelines.store.exports import FileProblem, read_export
from schemas.calendar import Term
from schemas.config import load_mapping
from schemas.contract import load_contract
from schemas.rules import Period
from schemas.specs.mapping import MappingError

from .conftest import read_export as read_csv_export


def pupils_text(folder: Path) -> str:
    return (folder / "pupils.csv").read_text(encoding="utf-8")


def only_pupils(tmp_path: Path, text: str | bytes, name: str = "pupils.csv") -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    target = folder / name
    target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return folder


def problem(folder: Path, dataset: str = "pupils", mapping: Path | None = None) -> str:
    with pytest.raises(FileProblem) as caught:
        read_export(folder, load_mapping(mapping)[dataset])
    message = str(caught.value)
    assert "\n" not in message
    return message


def with_surname(text: str, surname: str) -> str:
    header, first, rest = text.split("\n", 2)
    fields = first.split(",")
    fields[header.split(",").index("surname")] = surname
    return "\n".join([header, ",".join(fields), rest])


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda t: b"", "pupils.csv: the file is empty"),
        (lambda t: t.split("\n", 1)[0] + "\n", "pupils.csv: has a header but no rows"),
        (lambda t: t.replace("upn,", "pupil_ref,", 1), "pupils.csv: missing required column upn"),
        (lambda t: t.replace(",", ";"), "pupils.csv: columns are separated by semicolons, not commas"),
        (lambda t: t.replace("surname,forename", "surname,surname", 1), "pupils.csv: duplicate column header 'surname'"),
    ],
)
def test_malformed_file_gives_one_clear_line(tmp_path, small_clean, make, expected):
    folder = only_pupils(tmp_path, make(pupils_text(small_clean)))
    assert problem(folder).startswith(expected)


def test_a_file_that_is_another_dataset_says_so(tmp_path, small_clean):
    folder = only_pupils(tmp_path, (small_clean / "ncmp.csv").read_bytes())
    assert problem(folder) .startswith("pupils.csv: looks like the ncmp export, not pupils")


def test_declared_utf8_that_is_not_utf8_is_refused(tmp_path, small_clean):
    folder = only_pupils(tmp_path, with_surname(pupils_text(small_clean), "Zoë").encode("cp1252"))
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[pupils]\nencoding = "utf-8"\n')
    assert problem(folder, mapping=mapping).startswith("pupils.csv: not readable as utf-8 (byte 0xeb")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_bom_and_windows_1252_are_detected(tmp_path, small_clean, encoding):
    text = with_surname(pupils_text(small_clean), "Zoë")
    folder = only_pupils(tmp_path, text.encode(encoding))
    frame = read_export(folder, load_mapping(None)["pupils"]).frame
    assert frame.columns[:2] == ["source_row", "upn"]
    assert frame["surname"][0] == "Zoë"
    assert frame.height == read_csv_export(small_clean, "pupils").height


def test_parquet_and_xlsx_read_like_the_csv(tmp_path, small_clean):
    csv_frame = read_export(small_clean, load_mapping(None)["ncmp"]).frame
    folder = tmp_path / "formats"
    folder.mkdir()
    typed = read_csv_export(small_clean, "ncmp").with_columns(pl.col("measurement_date").str.to_date())
    typed.write_parquet(folder / "ncmp.parquet")
    read_csv_export(small_clean, "ncmp").head(200).write_excel(folder / "ncmp.xlsx")
    for name, rows in (("ncmp.parquet", csv_frame.height), ("ncmp.xlsx", 200)):
        mapping = tmp_path / f"{name}.toml"
        mapping.write_text(f'[ncmp]\nfile = "{name}"\n')
        frame = read_export(folder, load_mapping(mapping)["ncmp"]).frame
        assert frame.equals(csv_frame.head(rows)), name


def test_vendor_column_names_map_to_the_contract(tmp_path, small_clean):
    text = pupils_text(small_clean).replace("upn,former_upn", "UPN,Former UPN", 1).replace(",surname,", ",Legal Surname,", 1)
    folder = only_pupils(tmp_path, text)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[pupils]\ncolumns = { "Legal Surname" = "surname", "Former UPN" = "former_upn" }\n')
    frame = read_export(folder, load_mapping(mapping)["pupils"]).frame
    assert frame.equals(read_export(small_clean, load_mapping(None)["pupils"]).frame)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('[pupil]\nfile = "x.csv"\n', "[pupil] is not a dataset"),
        ('[pupils]\nfiel = "x.csv"\n', "pupils.fiel: unknown key (expected file, encoding, delimiter, sheet, columns)"),
        ('[pupils]\ncolumns = { "Legal Surname" = "last_name" }\n', "'Legal Surname' maps to 'last_name', which is not a pupils column"),
        ('[pupils]\nencoding = "latin9"\n', "[pupils].encoding must be one of"),
    ],
)
def test_mapping_errors_name_the_key(tmp_path, config, expected):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(config)
    with pytest.raises(MappingError) as caught:
        load_mapping(mapping)
    assert str(caught.value).startswith(f"{mapping}: ") and expected in str(caught.value)


def test_cli_file_problem_exits_non_zero_and_writes_nothing(tmp_path, small_clean):
    folder = tmp_path / "in"
    shutil.copytree(small_clean, folder)
    (folder / "ncmp.csv").write_text((folder / "ncmp.csv").read_text().replace(",", ";"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["validate", "--input", str(folder), "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ncmp.csv: columns are separated by semicolons")
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.rglob("*"))


def export_lines(folder: Path) -> tuple[str, list[str]]:
    header, *rows = pupils_text(folder).rstrip("\n").split("\n")
    return header, rows


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda h, r: "\n".join([h, *r[:5], r[5].replace(",", ',"', 1), *r[6:]]),
         "pupils.csv: row 6: a quoted field holds a quote that is not doubled, or does not end at a delimiter; correct the export"),
        (lambda h, r: "\n".join([h, *r[:-1], r[-1].replace(",", ',"', 1)]),
         "pupils.csv: row {last}: a quoted field is never closed, so the rest of the file cannot be read; correct the export"),
    ],
)
def test_a_broken_quote_is_one_line_naming_the_row_and_never_its_content(tmp_path, small_clean, make, expected):
    header, rows = export_lines(small_clean)
    message = problem(only_pupils(tmp_path, make(header, rows)))
    assert message == expected.format(last=len(rows))
    values = {v for row in rows[5:] for v in row.split(",") if len(v) > 3}
    assert not [v for v in values if v in message]


def test_export_names_match_without_regard_to_case(tmp_path, small_clean):
    folder = only_pupils(tmp_path, pupils_text(small_clean), "Pupils.CSV")
    assert read_export(folder, load_mapping(None)["pupils"]).frame.equals(read_export(small_clean, load_mapping(None)["pupils"]).frame)
    (folder / "PUPILS.csv").write_text(pupils_text(small_clean))
    assert problem(folder) == f"{folder}: PUPILS.csv, Pupils.CSV all match the export pupils.csv; keep one"


def test_a_run_over_a_landing_folder_with_a_differently_cased_export_reads_it(tmp_path, small_clean):
    folder = tmp_path / "in"
    shutil.copytree(small_clean, folder)
    (folder / "pupils.csv").rename(folder / "Pupils.CSV")
    result = CliRunner().invoke(app, ["validate", "--input", str(folder), "--out", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "not found" not in result.output and f"{read_csv_export(small_clean, 'pupils').height:,}" in result.output


def test_a_folder_or_a_dangling_name_is_one_line(tmp_path, small_clean):
    folder = tmp_path / "in"
    (folder / "pupils.csv").mkdir(parents=True)
    assert problem(folder) == "pupils.csv: is a folder, not an export file"
    (folder / "pupils.csv").rmdir()
    (folder / "pupils.csv").symlink_to(folder / "pupils.csv")  # a link to itself: there and not readable
    assert problem(folder) == f"pupils.csv: file not found in {folder}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_export_is_one_line(tmp_path, small_clean):
    folder = only_pupils(tmp_path, pupils_text(small_clean))
    (folder / "pupils.csv").chmod(0)
    assert problem(folder) == "pupils.csv: cannot be read (Permission denied)"


def test_carriage_return_line_endings_read_like_line_feeds(tmp_path, small_clean):
    folder = only_pupils(tmp_path, pupils_text(small_clean).replace("\n", "\r"))
    assert read_export(folder, load_mapping(None)["pupils"]).frame.equals(read_export(small_clean, load_mapping(None)["pupils"]).frame)


def test_ragged_rows_nul_bytes_and_huge_fields_are_quarantined_and_blank_lines_skipped_and_counted(tmp_path, small_clean):
    header, rows = export_lines(small_clean)
    surname = header.split(",").index("surname")

    def with_field(row: str, value: str) -> str:
        fields = row.split(",")
        fields[surname] = value
        return ",".join(fields)

    broken = [rows[0] + ",extra", rows[1].rsplit(",", 1)[0], with_field(rows[2], "Sm\x00ith"), with_field(rows[3], "x" * 5000)]
    text = "\n".join([header, *broken, "", *rows[4:10], "", ""]) + "\n"
    export = read_export(only_pupils(tmp_path, text), load_mapping(None)["pupils"])
    assert export.blank_lines == 3 and export.frame.height == 10
    assert export.frame["source_row"].to_list() == [1, 2, 3, 4, *range(6, 12)]  # numbered as in the file
    result = validate_frame(export.frame, load_contract("pupils"), Period(Term(2025, "spring")))
    reasons = dict(result.quarantine.select("source_row", "rule_ids").iter_rows())
    assert {row: set(ids.split(";")) & {"PUP-ROW-FIELDS", "PUP-ROW-NUL", "PUP-ROW-LENGTH"} for row, ids in reasons.items()} == {
        1: {"PUP-ROW-FIELDS"}, 2: {"PUP-ROW-FIELDS"}, 3: {"PUP-ROW-NUL"}, 4: {"PUP-ROW-LENGTH"}}
    assert result.staged.height + result.quarantine.height == export.frame.height


def test_typed_parquet_and_excel_cells_are_read_as_the_contracts_text(tmp_path, small_clean):
    """Real date cells, timestamps, floats and booleans, as a vendor's Parquet or an analyst's workbook holds them."""
    text = read_export(small_clean, load_mapping(None)["pupils"]).frame.head(400)
    typed = read_csv_export(small_clean, "pupils").head(400).with_columns(
        pl.col("date_of_birth").str.to_date().cast(pl.Datetime("us")),
        pl.col("sessions_missed").cast(pl.Float64),
        (pl.col("fsm_eligible") == "Y").alias("fsm_eligible"),
    )
    folder = tmp_path / "typed"
    folder.mkdir()
    typed.write_parquet(folder / "pupils.parquet")
    typed.with_columns(pl.col("date_of_birth").cast(pl.Date)).write_excel(folder / "pupils.xlsx")
    for name in ("pupils.parquet", "pupils.xlsx"):
        mapping = tmp_path / f"{name}.toml"
        mapping.write_text(f'[pupils]\nfile = "{name}"\n')
        frame = read_export(folder, load_mapping(mapping)["pupils"]).frame
        assert frame.drop("source_fields").equals(text.drop("source_fields")), name
        result = validate_frame(frame, load_contract("pupils"), Period(Term(2025, "spring")))
        assert result.quarantine.height == validate_frame(text, load_contract("pupils"), Period(Term(2025, "spring"))).quarantine.height == 0
