"""EES open-data files: a CSV and its .meta.csv per published table (data-standards.md section 6), and the same
table as Parquet for analysts; the frames are built by pipelines/nodes/ees.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from outputs.files import write_csv_atomic, write_parquet_atomic
from schemas.catalog import ees_files, table_file

if TYPE_CHECKING:
    from pipelines.nodes.ees import EesTable


def write_publication(folder: Path, tables: list[EesTable], formats: tuple[str, ...]) -> list[Path]:
    """A publication's tables in the recipient's folder, in the formats the recipient takes."""
    files = []
    for table in tables:
        if "ees" in formats or "csv" in formats:
            paths = list(ees_files(folder, table.name))
            write_csv_atomic(table.data, paths[0])
            write_csv_atomic(table.meta, paths[1])
            files += paths
        if "parquet" in formats:
            files.append(table_file(folder, table.name, ".parquet"))
            write_parquet_atomic(table.data, files[-1])
    return files
