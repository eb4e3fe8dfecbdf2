"""A publication as an accessible workbook for analysts, in the style of the ONS and GSS guidance on releasing
statistics in spreadsheets, made with gptables (on xlsxwriter): a cover sheet, a contents sheet, a notes sheet,
one table per sheet with its title and source above it, the symbols explained on the cover and above every
table, no merged cells, no colour carrying meaning. The cells are the EES file's, symbols and all, so the
workbook can say nothing the protected open-data files do not."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import polars as pl

from outputs.files import write_atomically

# gptables 2.0 still uses pandas calls that pandas 3 deprecates: warnings about its own code, not ours, which would
# otherwise reach an analyst's console on every run
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"gptables\.")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"gptables\.")
# gptables asks for the reason a cell is blank to be given in the table's instructions: it is (BLANK_CELLS)
warnings.filterwarnings("ignore", message=r"\s*Empty or null cell found", module=r"gptables\.")
EMPTY = "no units counted this period"
BLANK_CELLS = ("A blank area code or name means the row is for a wider area (the local authority, or England), "
               "not one of the areas below it.")

# The symbols a published cell may hold and what they mean (disclosure policy [symbols] keys)
MEANINGS = {"suppressed": "suppressed to protect confidentiality", "not_applicable": "not applicable",
            "unavailable": "not available", "low": "a positive number that rounds to zero"}
# xlsxwriter stamps a workbook with the time it was written; a fixed one keeps the file the same for the same inputs
CREATED = dt.datetime(2000, 1, 1)


def symbol_key(symbols: dict[str, str]) -> list[str]:
    return [f"{symbol}: {MEANINGS[key]}" for key, symbol in symbols.items()]


def sheet_name(table: str, taken: set[str]) -> str:
    """Excel's limit is 31 characters; a clipped name that is taken gets a number."""
    name, n = table[:31], 1
    while name in taken:
        n += 1
        name = f"{table[:28]}_{n}"
    return name


def shown_cells(data: pl.DataFrame, meta: pl.DataFrame):
    """The EES frame for a sheet: indicator cells as numbers where they hold one (a spreadsheet user sums and
    sorts them), the symbols as text; codes and labels stay text (their leading zeros are part of them)."""
    import pandas as pd

    indicators = set(meta.filter(pl.col("col_type") == "Indicator")["col_name"].to_list())
    if not data.height:  # a publication with no units this term: its sheet says so (gptables refuses an empty table)
        return pd.DataFrame({c: [EMPTY if i == 0 else None] for i, c in enumerate(data.columns)}, dtype=object)

    def cell(value: str | None):
        try:
            return float(value) if "." in value else int(value)
        except (TypeError, ValueError):
            return value
    return pd.DataFrame({c: [cell(v) for v in data[c].to_list()] if c in indicators else data[c].to_list()
                         for c in data.columns}, dtype=object)  # gptables writes its header into the frame


def column_widths(table) -> list[int]:
    """gptables' automatic widths for a table's columns (its heading bold, every cell in the theme's 12-point font:
    xlsxwriter's autofit width of the longest line, scaled for size, bold and capitals; a blank cell measured as
    gptables reads it, "nan"), measured once per distinct cell rather than for every cell as gptables does."""
    from math import ceil

    from xlsxwriter.utility import cell_autofit_width

    def width(value, bold: bool) -> int:
        text = value if isinstance(value, str) else "nan" if value is None else str(value) if isinstance(
            value, int | float) or value else ""
        line = max(text.split("\n"), key=len)
        capitals = sum(c.isupper() for c in line) / len(line) if line else 0
        return ceil(cell_autofit_width(line) * (12 / 11) * (1.1 if bold else 1.0) * (1.0 + 0.15 * capitals))
    return [max(width(column, True), *(width(v, False) for _, v in {(type(v), v) for v in table[column].tolist()}))
            for column in table.columns]


def write_workbook(path: Path, title: str, period: str, tables: list[tuple[str, pl.DataFrame, pl.DataFrame]],
                   symbols: dict[str, str], source: str) -> None:
    """tables: each table's name and its EES data and meta frames (the published cells, symbols as text)."""
    import gptables as gpt
    import pandas as pd

    key = symbol_key(symbols)
    sheets, taken = {}, set()
    for name, data, meta in tables:
        sheet = sheet_name(name, taken)
        taken.add(sheet)
        sheets[sheet] = gpt.GPTable(
            table=shown_cells(data, meta), table_name=f"table_{len(sheets) + 1}", title=f"{title}: {name.replace('_', ' ')}",
            subtitles=[f"Period: {period}", "Symbols used in this table: " + "; ".join(key) + " $$note1$$"],
            instructions=f"This worksheet contains one table. Some cells hold a symbol instead of a number. {BLANK_CELLS}",
            source=source)
    cover = gpt.Cover(title=title, intro=[f"Period: {period}.", "Each worksheet holds one table of the publication, "
                                          "the same cells as its open-data CSV files."],
                      about=["Symbols", *key, "Figures are protected by statistical disclosure control: a cell is "
                             "suppressed where a child could otherwise be identified, and enough other cells are "
                             "suppressed that no hidden cell can be worked out from the rest."],
                      contact=["The statistics team of the local authority that published these tables."])
    notes = pd.DataFrame({"Note number": ["note1"], "Note text": [
        "A count below the disclosure policy's threshold, and any other cell from which one could be worked out, "
        "is shown as a symbol, not a number."]})

    def written(partial: Path) -> None:
        workbook = gpt.produce_workbook(str(partial), sheets, cover=cover, notes_table=notes,
                                        contentsheet_options={"additional_elements": ["subtitles"]},
                                        auto_width=dict.fromkeys(sheets, False))
        for sheet, table in sheets.items():
            for column, width in enumerate(column_widths(table.table)):
                workbook.get_worksheet_by_name(sheet).set_column_pixels(column, column, width)
        workbook.set_properties({"title": title, "created": CREATED})
        workbook.close()
    write_atomically(path, written)
