"""EES open-data files: one tidy CSV and its .meta.csv per published table (data-standards.md section 6).

Pure frame builders plus one writer. Rows are the LA, each district and each school; geography columns are
filled for the row's level and every level above it, never below (the screener's "over-completed" check).
Indicator values are the decision records' display values: counts, or the policy's symbols (c, z, low).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from disclosure_control.hierarchy import ROOT
from pipelines.io import write_csv_atomic
from schemas.lookups import dfe_lookup, live_english_las

LEVELS = ("Local authority", "Local authority district", "School")
LA_COLUMNS = ("region_code", "region_name", "old_la_code", "new_la_code", "la_name")
LAD_COLUMNS = ("lad_code", "lad_name")
SCHOOL_COLUMNS = ("school_urn", "school_name", "school_laestab")
META_COLUMNS = ("col_name", "col_type", "label", "indicator_grouping", "indicator_unit", "indicator_dp",
                "filter_hint", "filter_grouping_column")


def time_columns(academic_year: int, term: str) -> list[pl.Expr]:
    """A single term is published against its academic year (YYYYZZ) with a term identifier."""
    return [pl.lit(f"{academic_year}{(academic_year + 1) % 100:02d}").alias("time_period"),
            pl.lit(f"{term.capitalize()} term").alias("time_identifier")]


def school_geography(schools: pl.DataFrame) -> pl.DataFrame:
    """Staged schools (urn, laestab, school_name, lad_code, old_la_code) with names and codes from the DfE's
    own lists, so that every code/name pair is one the screener accepts."""
    lads = dfe_lookup("lads").filter(pl.col("status") == "live").select("lad_code", "lad_name").unique("lad_code")
    return (
        schools.select(pl.col("urn").cast(pl.String).alias("school_urn"), "school_name",
                       pl.col("laestab").cast(pl.String).alias("school_laestab"), "lad_code", "old_la_code")
        .join(lads, on="lad_code", how="left", validate="m:1")
        .join(live_english_las(), on="old_la_code", how="left", validate="m:1")
    )


def geography_rows(schools: pl.DataFrame) -> pl.DataFrame:
    """node (the school dimension's code: Total, a district or a URN) -> level and geography columns, from
    school_geography()."""
    la = schools.select(*LA_COLUMNS).unique()
    if la.height != 1:
        raise ValueError(f"the schools span {la.height} local authorities; a return covers one")
    blank = lambda names: [pl.lit(None, pl.String).alias(n) for n in names]  # noqa: E731
    return pl.concat([
        la.select(pl.lit(ROOT).alias("node"), pl.lit(LEVELS[0]).alias("geographic_level"), *LA_COLUMNS,
                  *blank(LAD_COLUMNS), *blank(SCHOOL_COLUMNS)),
        schools.select(pl.col("lad_code").alias("node"), pl.lit(LEVELS[1]).alias("geographic_level"), *LA_COLUMNS,
                       *LAD_COLUMNS, *blank(SCHOOL_COLUMNS)).unique(),
        schools.select(pl.col("school_urn").alias("node"), pl.lit(LEVELS[2]).alias("geographic_level"), *LA_COLUMNS,
                       *LAD_COLUMNS, *SCHOOL_COLUMNS),
    ])


def ees_data(cells: pl.DataFrame, table: str, school_dim: str, filter_column: str, indicator: str,
             geography: pl.DataFrame, academic_year: int, term: str) -> pl.DataFrame:
    """The table's cells (its rows in the linked decision records) in EES column order, LA first."""
    mine = cells.filter(pl.col("tables").list.contains(table))
    return (
        mine.rename({school_dim: "node"}).join(geography, on="node", how="left", validate="m:1")
        .with_columns(pl.col("geographic_level").replace_strict({lvl: i for i, lvl in enumerate(LEVELS)}).alias("__level"))
        .sort("__level", "lad_code", "school_urn", filter_column, nulls_last=False)
        .select(*time_columns(academic_year, term), "geographic_level",
                pl.lit("E92000001").alias("country_code"), pl.lit("England").alias("country_name"),
                *LA_COLUMNS, *LAD_COLUMNS, *SCHOOL_COLUMNS, filter_column, pl.col("display").alias(indicator))
    )


def ees_meta(filter_column: str, filter_label: str, indicator: str, indicator_label: str) -> pl.DataFrame:
    return pl.DataFrame([
        {"col_name": filter_column, "col_type": "Filter", "label": filter_label, "indicator_grouping": "",
         "indicator_unit": "", "indicator_dp": "", "filter_hint": "", "filter_grouping_column": ""},
        {"col_name": indicator, "col_type": "Indicator", "label": indicator_label, "indicator_grouping": "",
         "indicator_unit": "", "indicator_dp": "0", "filter_hint": "", "filter_grouping_column": ""},
    ]).select(META_COLUMNS)


def write_ees(folder: Path, name: str, data: pl.DataFrame, meta: pl.DataFrame) -> list[Path]:
    paths = [folder / f"{name}.csv", folder / f"{name}.meta.csv"]
    write_csv_atomic(data, paths[0])
    write_csv_atomic(meta, paths[1])
    return paths
