"""Reading MIS exports: CSV (UTF-8, UTF-8 with BOM, Windows-1252), Parquet and XLSX, every value as text.

A file-level problem (missing file or column, empty file, wrong delimiter, duplicate headers, unreadable
encoding, a file that is another dataset's) raises FileProblem with one line naming the file and the problem,
before anything is written downstream. Values are kept exactly as read; normalising is validation's job.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from outputs.files import file_sha256
from schemas.contract import Contract, contract_names, load_contract
from schemas.rules import SOURCE_FIELDS
from schemas.specs.mapping import DELIMITERS, SourceSpec

SOURCE_ROW = "source_row"  # the row's number in the file, 1 for the first after the header (blank lines counted)
csv.field_size_limit(2**31 - 1)  # a huge field is read, then quarantined by validation, never a crash


class FileProblem(Exception):
    """A file that cannot be validated at all; str() is the one line an analyst sees."""


@dataclass(frozen=True)
class RawExport:
    dataset: str
    path: Path
    sha256: str
    frame: pl.DataFrame  # source_row, every contract column as text, source_fields
    ignored_columns: tuple[str, ...]
    blank_lines: int = 0  # skipped: a blank line is no record


BOM = b"\xef\xbb\xbf"


def _unreadable(path: Path, encoding: str, data: bytes, offset: int) -> FileProblem:
    return FileProblem(f"{path.name}: not readable as {encoding} (byte 0x{data[offset]:02x} at offset {offset}); "
                       "declare its encoding in the mapping config")


def _records(path: Path, text: str, delimiter: str) -> tuple[list[str], list[list[str]]]:
    """The header and every record after it, by one parser, so that each row's number, fields and blankness come
    from the same reading. Strict: a quote opened and never closed would swallow the rest of the file, and a stray
    quote inside a quoted field moves every later boundary, so either is a problem of the whole file, named by the
    row where the broken record starts (never by its content)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[list[str]] = []
    try:
        records.extend(reader)
    except csv.Error as error:
        what = ("a quoted field is never closed, so the rest of the file cannot be read"
                if "unexpected end of data" in str(error) else
                "a quoted field holds a quote that is not doubled, or does not end at a delimiter")
        raise FileProblem(f"{path.name}: row {max(len(records), 1)}: {what}; correct the export") from None
    return (records[0], records[1:]) if records else ([], [])


def _parsed(path: Path, text: str, delimiter: str) -> tuple[pl.DataFrame, int]:
    """The records as text (an empty field as null), numbered as in the file; a row with a different number of
    fields from the header has its count in SOURCE_FIELDS (for validation to quarantine) and its fields cut or
    padded to the header's; blank lines are left out. Returns the frame and the number of blank lines."""
    header, rows = _records(path, text, delimiter)  # the csv module ends a line at LF, CRLF or a CR alone
    if len(header) == 1:
        header_line = text.split("\n", 1)[0]
        used = max(DELIMITERS, key=header_line.count)
        if header_line.count(used) > 0 and used != delimiter:
            raise FileProblem(f"{path.name}: columns are separated by {DELIMITERS[used]}s, not {DELIMITERS[delimiter]}s; "
                              "declare the delimiter in the mapping config")
    _check_header(path, header)
    width = len(header)
    numbers = [number for number, fields in enumerate(rows, start=1) if fields]
    kept = [fields for fields in rows if fields]
    counts = [len(fields) if len(fields) != width else None for fields in kept]
    if any(count is not None for count in counts):
        kept = [fields if len(fields) == width else (fields + [""] * width)[:width] for fields in kept]
    frame = pl.DataFrame(kept, schema={name: pl.String for name in header}, orient="row")  # built in polars, not
    # column by column in Python: the demo county's pupils file parses in 1.3 s rather than 3.6 s
    frame = frame.with_columns(pl.all().replace("", None)).with_columns(
        pl.Series(SOURCE_ROW, numbers, dtype=pl.Int64), pl.Series(SOURCE_FIELDS, counts, dtype=pl.Int64))
    return frame.select(SOURCE_ROW, *header, SOURCE_FIELDS), len(rows) - len(kept)


def _csv_frame(path: Path, spec: SourceSpec) -> tuple[pl.DataFrame, int]:
    data = _bytes(path)
    if not data.strip():
        raise FileProblem(f"{path.name}: the file is empty")
    return _parsed(path, _text(path, data, spec.encoding), spec.delimiter)


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise FileProblem(f"{path.name}: cannot be read ({error.strerror})") from None


def _text(path: Path, data: bytes, encoding: str) -> str:
    """UTF-8 (a BOM dropped), unless that fails and the encoding was not declared as UTF-8: then Windows-1252."""
    body = data[len(BOM):] if data.startswith(BOM) else data
    if encoding != "cp1252":
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as error:
            if encoding != "auto":
                raise _unreadable(path, encoding, body, error.start) from None
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as error:
        raise _unreadable(path, "UTF-8 or Windows-1252", data, error.start) from None


def _check_header(path: Path, header: list[str]) -> None:
    seen, duplicates = set(), []
    for name in header:
        key = name.strip().lower()
        if key in seen:
            duplicates.append(name.strip())
        seen.add(key)
    if duplicates:
        raise FileProblem(f"{path.name}: duplicate column header {duplicates[0]!r}")
    if any(not name.strip() for name in header):
        raise FileProblem(f"{path.name}: a column has no header")


def _parquet_frame(path: Path) -> pl.DataFrame:
    """Columns in their Parquet types: conformed() writes them as the contract's text."""
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise FileProblem(f"{path.name}: not a readable Parquet file ({type(error).__name__})") from None


def _excel_frame(path: Path, spec: SourceSpec) -> pl.DataFrame:
    """Every cell as text (so no column is guessed a type from its first rows); a date cell reads as
    YYYY-MM-DD 00:00:00 and a TRUE/FALSE cell as true/false, which conformed() writes as the contract's text."""
    try:
        frame = pl.read_excel(path, sheet_name=spec.sheet, engine="calamine", infer_schema_length=0)
    except Exception as error:  # noqa: BLE001 - the Excel engines raise their own error types
        raise FileProblem(f"{path.name}: not a readable XLSX workbook ({type(error).__name__})") from None
    _check_header(path, frame.columns)
    return frame


def read_source(path: Path, spec: SourceSpec) -> tuple[pl.DataFrame, int]:
    """The file's rows (numbered as in the file) and the number of blank lines left out."""
    if path.is_dir():
        raise FileProblem(f"{path.name}: is a folder, not an export file")
    if not path.exists():
        raise FileProblem(f"{path.name}: file not found in {path.parent}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame, blank = _parquet_frame(path), 0
    elif suffix in EXCEL:
        frame, blank = _excel_frame(path, spec), 0
    else:
        frame, blank = _csv_frame(path, spec)
    if frame.height == 0:
        raise FileProblem(f"{path.name}: has a header but no rows")
    if SOURCE_ROW not in frame.columns:
        frame = frame.with_row_index(SOURCE_ROW, offset=1)
    return frame.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64)), blank


EXCEL = (".xlsx", ".xlsm")
MIDNIGHT = r"^(\d{4}-\d{2}-\d{2})[ T]00:00:00(\.0+)?$"


def contract_text(frame: pl.DataFrame, path: Path, contract: Contract, excel: bool) -> pl.DataFrame:
    """Typed cells (Parquet, Excel) as the text the contract reads: a date as YYYY-MM-DD, a whole number without
    a decimal point, a flag as Y or N. Any other text, and every CSV value, is kept exactly as read; normalising it
    is validation's job."""
    exprs = []
    for column in contract.columns:
        value, dtype = pl.col(column.name), frame.schema[column.name]
        if dtype == pl.Date:
            value = value.dt.to_string("%Y-%m-%d")
        elif isinstance(dtype, pl.Datetime):
            value = (pl.when(value.dt.time() == dt.time(0)).then(value.dt.to_string("%Y-%m-%d"))
                     .otherwise(value.dt.to_string("%Y-%m-%dT%H:%M:%S")))
        elif dtype == pl.Boolean:
            value = pl.when(value).then(pl.lit("Y")).when(~value).then(pl.lit("N"))
        elif dtype.is_float() or isinstance(dtype, pl.Decimal):
            number = value.cast(pl.Float64)
            whole = number.is_finite() & (number == number.round()) & (number.abs() < 2**53)
            value = pl.when(whole).then(number.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(number.cast(pl.String))
        elif dtype.is_nested() or dtype == pl.Object:
            raise FileProblem(f"{path.name}: column {column.name} holds {dtype.base_type()} values, not text, numbers, "
                              "dates or booleans; export it as one of those")
        elif dtype != pl.String:
            value = value.cast(pl.String)
        elif excel and column.type == "date":
            value = value.str.replace(MIDNIGHT, "$1")
        elif excel and column.type == "flag":
            value = value.replace({"true": "Y", "false": "N", "TRUE": "Y", "FALSE": "N"})
        exprs.append(value.alias(column.name))
    return frame.with_columns(exprs)


def _closest_dataset(columns: set[str], expected: str) -> str | None:
    """The other dataset whose required columns this file has, if it has all of them."""
    for name in contract_names():
        if name != expected and set(load_contract(name).required_columns) <= columns:
            return name
    return None


def conformed(frame: pl.DataFrame, path: Path, contract: Contract, spec: SourceSpec) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Mapped to contract names, missing optional columns added empty, others set aside (never staged); typed
    cells written as the contract's text."""
    mapping = {k.strip().lower(): v for k, v in spec.columns.items()}
    own = (SOURCE_ROW, SOURCE_FIELDS)
    frame = frame.rename({c: mapping.get(c.strip().lower(), c.strip().lower()) for c in frame.columns if c not in own})
    present = set(frame.columns)
    missing = [c for c in contract.required_columns if c not in present]
    if missing:
        other = _closest_dataset(present, contract.dataset)
        if other:
            raise FileProblem(f"{path.name}: looks like the {other} export, not {contract.dataset} "
                              f"(it lacks {', '.join(missing[:3])})")
        raise FileProblem(f"{path.name}: missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    ignored = tuple(c for c in frame.columns if c not in contract.column_names and c not in own)
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in contract.column_names if c not in present)
    if SOURCE_FIELDS not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias(SOURCE_FIELDS))
    return contract_text(frame.select(SOURCE_ROW, *contract.column_names, SOURCE_FIELDS), path, contract,
                         excel=path.suffix.lower() in EXCEL), ignored


def export_path(folder: Path, name: str) -> Path:
    """The export in the folder named name, matched without regard to case (Pupils.CSV is pupils.csv); two files
    that differ only in case are refused, since either could be the export."""
    matches = sorted(p for p in folder.iterdir() if p.name.lower() == name.lower()) if folder.is_dir() else []
    if len(matches) > 1:
        raise FileProblem(f"{folder}: {', '.join(p.name for p in matches)} all match the export {name}; keep one")
    return matches[0] if matches else folder / name


def read_export(folder: Path, spec: SourceSpec) -> RawExport:
    contract = load_contract(spec.dataset)
    path = export_path(folder, spec.file)
    source, blank = read_source(path, spec)
    frame, ignored = conformed(source, path, contract, spec)
    return RawExport(spec.dataset, path, file_sha256(path), frame, ignored, blank)
