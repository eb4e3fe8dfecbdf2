"""Reading MIS exports: CSV (UTF-8, UTF-8 with BOM, Windows-1252), Parquet and XLSX, every value as text.

A file-level problem (missing file or column, empty file, wrong delimiter, duplicate headers, unreadable
encoding, a file that is another dataset's) raises FileProblem with one line naming the file and the problem,
before anything is written downstream. Values are kept exactly as read; normalising is validation's job.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipelines.io import file_sha256, read_toml

from schemas.contract import Contract, contract_names, load_contract

SOURCE_ROW = "source_row"
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "cp1252")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
MAPPING_KEYS = {"file", "encoding", "delimiter", "sheet", "columns"}


class FileProblem(Exception):
    """A file that cannot be validated at all; str() is the one line an analyst sees."""


@dataclass(frozen=True)
class SourceSpec:
    """Where one dataset's export is and how to read it (defaults: the contract's file name, auto encoding)."""

    dataset: str
    file: str
    encoding: str = "auto"
    delimiter: str = ","
    sheet: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # export column name -> contract column name


@dataclass(frozen=True)
class RawExport:
    dataset: str
    path: Path
    sha256: str
    frame: pl.DataFrame  # source_row, then every contract column as text
    ignored_columns: tuple[str, ...]


def load_mapping(path: Path | None) -> dict[str, SourceSpec]:
    """The column-mapping config (TOML, one table per dataset), checked once with errors naming the key."""
    specs = {name: SourceSpec(name, load_contract(name).file) for name in contract_names()}
    if path is None:
        return specs
    try:
        raw = read_toml(path)
    except ValueError as error:
        raise FileProblem(f"mapping config {error}") from None
    for dataset, table in raw.items():
        if dataset not in specs:
            raise FileProblem(f"{path}: [{dataset}] is not a dataset (known: {', '.join(specs)})")
        unknown = set(table) - MAPPING_KEYS
        if unknown:
            raise FileProblem(f"{path}: [{dataset}] unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(MAPPING_KEYS))})")
        if table.get("encoding", "auto") not in ENCODINGS:
            raise FileProblem(f"{path}: [{dataset}].encoding must be one of {', '.join(ENCODINGS)}")
        if table.get("delimiter", ",") not in DELIMITERS:
            raise FileProblem(f"{path}: [{dataset}].delimiter must be one of {', '.join(map(repr, DELIMITERS))}")
        targets = load_contract(dataset).column_names
        for source, target in table.get("columns", {}).items():
            if target not in targets:
                raise FileProblem(f"{path}: [{dataset}.columns] {source!r} maps to {target!r}, which is not a {dataset} column")
        specs[dataset] = SourceSpec(dataset, table.get("file", specs[dataset].file), table.get("encoding", "auto"),
                                    table.get("delimiter", ","), table.get("sheet"), dict(table.get("columns", {})))
    return specs


BOM = b"\xef\xbb\xbf"


def _unreadable(path: Path, encoding: str, data: bytes, offset: int) -> FileProblem:
    return FileProblem(f"{path.name}: not readable as {encoding} (byte 0x{data[offset]:02x} at offset {offset}); "
                       "declare its encoding in the mapping config")


def _parsed(path: Path, body: bytes, delimiter: str) -> pl.DataFrame:
    header_line = body.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    header = next(csv.reader([header_line], delimiter=delimiter))
    if len(header) == 1:
        used = max(DELIMITERS, key=header_line.count)
        if header_line.count(used) > 0 and used != delimiter:
            raise FileProblem(f"{path.name}: columns are separated by {DELIMITERS[used]}s, not {DELIMITERS[delimiter]}s; "
                              "declare the delimiter in the mapping config")
    _check_header(path, header)
    return pl.read_csv(body, infer_schema=False, separator=delimiter)


def _csv_frame(path: Path, spec: SourceSpec) -> pl.DataFrame:
    """Polars checks UTF-8 as it parses, so a large file is never decoded twice; only a file it refuses
    (and whose encoding was not declared as UTF-8) is re-read as Windows-1252."""
    data = path.read_bytes()
    if not data.strip():
        raise FileProblem(f"{path.name}: the file is empty")
    body = data[len(BOM):] if data.startswith(BOM) else data
    try:
        frame = _parsed(path, _cp1252_as_utf8(path, data) if spec.encoding == "cp1252" else body, spec.delimiter)
    except pl.exceptions.ComputeError as error:
        if "utf-8" not in str(error).lower():
            raise FileProblem(f"{path.name}: not a well-formed CSV ({str(error).splitlines()[0]})") from None
        if spec.encoding != "auto":
            offset = _first_bad_utf8(body)
            raise _unreadable(path, spec.encoding, body, offset) from None
        frame = _parsed(path, _cp1252_as_utf8(path, data), spec.delimiter)
    except pl.exceptions.PolarsError as error:
        raise FileProblem(f"{path.name}: not a well-formed CSV ({str(error).splitlines()[0]})") from None
    return frame


def _first_bad_utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return 0


def _cp1252_as_utf8(path: Path, data: bytes) -> bytes:
    try:
        return data.decode("cp1252").encode("utf-8")
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
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise FileProblem(f"{path.name}: not a readable Parquet file ({str(error).splitlines()[0]})") from None
    dates = [c for c, t in frame.schema.items() if t == pl.Date]
    return frame.with_columns(
        *[pl.col(c).dt.to_string("%Y-%m-%d") for c in dates],
        *[pl.col(c).cast(pl.String) for c in frame.columns if c not in dates],
    )


def _excel_frame(path: Path, spec: SourceSpec) -> pl.DataFrame:
    try:
        frame = pl.read_excel(path, sheet_name=spec.sheet, engine="calamine", infer_schema_length=0)
    except Exception as error:  # the Excel engines raise their own error types
        raise FileProblem(f"{path.name}: not a readable XLSX workbook ({str(error).splitlines()[0]})") from None
    _check_header(path, frame.columns)
    return frame


def read_source(path: Path, spec: SourceSpec) -> pl.DataFrame:
    if not path.exists():
        raise FileProblem(f"{path.name}: file not found in {path.parent}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = _parquet_frame(path)
    elif suffix in (".xlsx", ".xlsm"):
        frame = _excel_frame(path, spec)
    else:
        frame = _csv_frame(path, spec)
    if frame.height == 0:
        raise FileProblem(f"{path.name}: has a header but no rows")
    return frame


def _closest_dataset(columns: set[str], expected: str) -> str | None:
    """The other dataset whose required columns this file has, if it has all of them."""
    for name in contract_names():
        if name != expected and set(load_contract(name).required_columns) <= columns:
            return name
    return None


def conformed(frame: pl.DataFrame, path: Path, contract: Contract, spec: SourceSpec) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Mapped to contract names, missing optional columns added empty, others set aside (never staged)."""
    mapping = {k.strip().lower(): v for k, v in spec.columns.items()}
    rename = {c: mapping.get(c.strip().lower(), c.strip().lower()) for c in frame.columns}
    frame = frame.rename(rename)
    present = set(frame.columns)
    missing = [c for c in contract.required_columns if c not in present]
    if missing:
        other = _closest_dataset(present, contract.dataset)
        if other:
            raise FileProblem(f"{path.name}: looks like the {other} export, not {contract.dataset} "
                              f"(it lacks {', '.join(missing[:3])})")
        raise FileProblem(f"{path.name}: missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    ignored = tuple(c for c in frame.columns if c not in contract.column_names)
    frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in contract.column_names if c not in present)
    numbered = frame.select(contract.column_names).with_row_index(SOURCE_ROW, offset=1)
    return numbered.with_columns(pl.col(SOURCE_ROW).cast(pl.Int64)), ignored


def read_export(folder: Path, spec: SourceSpec) -> RawExport:
    contract = load_contract(spec.dataset)
    path = folder / spec.file
    frame, ignored = conformed(read_source(path, spec), path, contract, spec)
    return RawExport(spec.dataset, path, file_sha256(path), frame, ignored)

