"""The leak scan: read every outbound file back and fail if a direct identifier from the inputs is in it where
its recipient is not entitled to it.

Values are compared cell by cell, per column, against the identifiers held in the inputs; a column the
recipient is entitled to (a UPN column in the DfE's record-level extract) is not scanned. Scanned kinds are the
direct identifiers with enough entropy to mean one person: reference numbers, postcodes, phone numbers, email
addresses, full names (forename and surname together), first address lines and full dates of birth. A finding
names the file, column, kind and count, never the value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.nodes.dfe_xml import LayoutError, xml_leaves
from pipelines.store.warehouse import staged_datasets, staged_frames
from schemas.contract import load_contract
from schemas.specs.extract import Extract
from schemas.specs.layout import LAYOUTS, Layout
from schemas.specs.recipient import Recipient

SCANNED = ("upn", "former_upn", "uln", "child_id", "person_id", "ni_number", "nass_number", "parent_ni_number",
           "parent_nass_number", "postcode", "phone", "email", "address_line1", "parent_name", "date_of_birth")


@dataclass(frozen=True)
class Leak:
    file: str
    column: str
    kind: str
    cells: int

    def __str__(self) -> str:
        return f"{self.file}: column {self.column!r} holds {self.cells} {self.kind} value(s) from the inputs"


def identifier_values(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """value, kind: every non-empty direct identifier in the staged inputs (full names built from two parts)."""
    parts = []
    for frame in frames:
        parts += [_texts(frame[kind], kind) for kind in SCANNED if kind in frame.columns]
        if {"forename", "surname"} <= set(frame.columns):
            parts.append(_texts(frame.select(pl.concat_str("forename", pl.lit(" "), "surname")).to_series(), "full_name"))
    return pl.concat(parts).unique() if parts else pl.DataFrame(schema={"value": pl.String, "kind": pl.String})


def _normal(values: pl.Expr) -> pl.Expr:
    """One spelling per value on both sides: upper case, no spaces (LE16XN is LE1 6XN), dates as YYYY-MM-DD
    (25/11/2015 is 2015-11-25), so a reformatted identifier is still found."""
    text = values.cast(pl.String).str.to_uppercase().str.replace_all(r"\s+", "")
    return text.str.replace(r"^(\d{2})/(\d{2})/(\d{4})$", "${3}-${2}-${1}")


def _texts(values: pl.Series, kind: str) -> pl.DataFrame:
    cleaned = values.to_frame("value").select(_normal(pl.col("value")))
    return cleaned.filter(pl.col("value").is_not_null() & (pl.col("value") != "")).with_columns(kind=pl.lit(kind))


SCANNED_FILES = (".csv", ".parquet", ".xml", ".xlsx")


def as_text(path: Path) -> pl.DataFrame:
    """The file's cells as text, as a reader of the file would see them."""
    if path.suffix.lower() == ".parquet":
        frame = pl.read_parquet(path)
        return frame.select(pl.col(c).cast(pl.String) for c in frame.columns)
    return pl.read_csv(path, infer_schema=False)


def file_cells(path: Path, layout: Layout | None) -> pl.DataFrame:
    """column, value: every cell of the file (an XML return's every leaf, dfe_xml.xml_leaves)."""
    if path.suffix.lower() == ".xml":
        if layout is None:
            raise ValueError(f"{path.name}: an XML file no extract spec's layout describes")
        leaves = xml_leaves(path.read_bytes(), layout)
        owed = pl.any_horizontal(pl.col("column").str.starts_with(p) for p in layout.outside_records) \
            if layout.outside_records else pl.lit(False)
        return leaves.filter(~owed)  # the header, and the settings' own modules: the receiver's by the layout
    if path.suffix.lower() == ".xlsx":
        return workbook_cells(path)
    return as_text(path).unpivot(variable_name="column")


def workbook_cells(path: Path) -> pl.DataFrame:
    """column, value: every cell of every sheet (cover and notes too), the column named <sheet>:<column>."""
    sheets = pl.read_excel(path, sheet_id=0, has_header=False, raise_if_empty=False, read_options={"dtypes": "string"})
    return pl.concat([frame.unpivot(variable_name="column").with_columns((pl.lit(f"{sheet}:") + pl.col("column")).alias("column"))
                      for sheet, frame in sheets.items()]).select("column", "value")


def file_values(path: Path, entitled: set[str], layout: Layout | None = None) -> pl.DataFrame:
    """column, value: each distinct normalised value of each scanned column of the file."""
    cells = file_cells(path, layout).filter(~pl.col("column").is_in(list(entitled)))
    return cells.select("column", _normal(pl.col("value")).alias("value")).drop_nulls().unique()


def scan_file(path: Path, identifiers: pl.DataFrame, entitled: set[str], layout: Layout | None = None) -> list[Leak]:
    """What the file holds that it must not; a file that cannot be read as what it claims to be (an XML return
    broken after it was written) is a finding itself: what cannot be read cannot be cleared."""
    try:
        values = file_values(path, entitled, layout)
    except LayoutError:
        return [Leak(path.name, "(the whole file)", "unreadable XML, so unscanned", 1)]
    hits = values.join(identifiers, on="value").group_by("column", "kind").len()
    return [Leak(path.name, column, kind, n) for column, kind, n in hits.sort("column", "kind").iter_rows()]


def scan(paths: list[Path], identifiers: pl.DataFrame, entitled: set[str],
         layouts: dict[str, Layout] | None = None) -> list[Leak]:
    """Every CSV, Parquet, XML and workbook file among paths; other files (the manifest) hold no values from the inputs.
    layouts: an XML file's stem -> the layout of the extract it is."""
    return [leak for path in paths if path.suffix.lower() in SCANNED_FILES
            for leak in scan_file(path, identifiers, entitled, (layouts or {}).get(path.stem))]


def staged_identifiers(warehouse: Path) -> pl.DataFrame:
    """Every direct identifier in the staged person datasets (those whose contract names direct identifiers)."""
    people = tuple(d for d in staged_datasets(warehouse) if load_contract(d).direct_identifiers)
    return identifier_values(list(staged_frames(warehouse, people).values()))


def entitled_columns(recipient: Recipient, extracts: Iterable[Extract]) -> set[str]:
    """Output columns that hold a field the recipient may have in the clear (an extract's UPN for the DfE): the
    scan skips them."""
    return {column for e in extracts if e.recipient == recipient.key for column, field in e.columns
            if field in recipient.entitlement.fields and recipient.entitlement.treatment(field) is None}


def leaks_by_recipient(deliveries: Path, warehouse: Path, recipients: dict[str, Recipient],
                       extracts: list[Extract]) -> dict[str, list[Leak]]:
    """recipient -> what the scan found in its delivery folder (empty: nothing), the identifiers read once; the
    entitlements are those of the configs the caller loaded (a run's own, or the audit's)."""
    identifiers, found = staged_identifiers(warehouse), {}
    for recipient in recipients.values():
        folder = deliveries / recipient.key
        if folder.exists():
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            layouts = {e.name: LAYOUTS[e.layout] for e in extracts if e.recipient == recipient.key and e.layout in LAYOUTS}
            found[recipient.key] = scan(files, identifiers, entitled_columns(recipient, extracts), layouts)
    return found
