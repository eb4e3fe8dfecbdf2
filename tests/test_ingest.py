"""Reading exports: encodings and formats, column mapping, and one clear error for each malformed file."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.ingest import FileProblem, load_mapping, read_export

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
        ('[pupils]\nfiel = "x.csv"\n', "[pupils] unknown key 'fiel'"),
        ('[pupils]\ncolumns = { "Legal Surname" = "last_name" }\n', "'Legal Surname' maps to 'last_name', which is not a pupils column"),
        ('[pupils]\nencoding = "latin9"\n', "[pupils].encoding must be one of"),
    ],
)
def test_mapping_errors_name_the_key(tmp_path, config, expected):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(config)
    with pytest.raises(FileProblem, match=None) as caught:
        load_mapping(mapping)
    assert expected in str(caught.value)


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
