"""The publication workbook's column widths: worked out once per distinct cell, they must be the widths gptables
itself would give every cell."""

from __future__ import annotations

import re
import zipfile

import pandas as pd

from outputs.workbook import column_widths


def columns_xml(path) -> str:
    with zipfile.ZipFile(path) as archive:
        sheets = sorted(n for n in archive.namelist() if n.startswith("xl/worksheets/sheet"))
        return re.search(r"<cols>.*?</cols>", archive.read(sheets[-1]).decode()).group(0)


def test_column_widths_are_gptables_own(tmp_path):
    import gptables as gpt

    table = pd.DataFrame({
        "time_period": ["202526", "202526", "202526"], "geographic_level": ["Local authority", "Local authority district", "School"],
        "la_name": ["ABC UPPER CASE NAME", None, "Mixed Name Of A Place Longer Than Its Heading"],
        "pupil_count": [12, "c", 1234567], "pupil_percent": [12.5, "c", 0.1], "x": [1, 1.0, None]}, dtype=object)
    for name, auto in (("theirs", True), ("ours", False)):
        sheets = {"t": gpt.GPTable(table=table, table_name="t", title="A table", instructions="One table.", source="x")}
        workbook = gpt.produce_workbook(str(tmp_path / f"{name}.xlsx"), sheets, auto_width=auto)
        if not auto:
            for column, width in enumerate(column_widths(table)):
                workbook.get_worksheet_by_name("t").set_column_pixels(column, column, width)
        workbook.close()
    assert columns_xml(tmp_path / "ours.xlsx") == columns_xml(tmp_path / "theirs.xlsx")
