"""Reference data shipped with lareturns: versioned code sets and the DfE's geography lists.

Code sets live in schemas/codesets/ as one CSV per code list, each row valid from one academic year to
another (blank: still valid), because CBDS codes change every year. The DfE lookups in
schemas/reference/dfe-lookups/ are the EES screener's own lists, loaded as data, never copied into code.
"""

from __future__ import annotations

from functools import cache

import polars as pl

from schemas import catalog


@cache
def _codeset_file(name: str) -> pl.DataFrame:
    path = catalog.codeset_file(name)
    if not path.exists():
        known = ", ".join(catalog.codeset_names())
        raise KeyError(f"no code set named {name!r}; known code sets: {known}")
    frame = pl.read_csv(path, infer_schema=False)
    return frame.with_columns(
        pl.col("from_year").cast(pl.Int32), pl.col("to_year").cast(pl.Int32, strict=False)
    )


def codeset(name: str, academic_year: int) -> pl.DataFrame:
    """The codes of one list that are valid in the given academic year."""
    frame = _codeset_file(name)
    in_force = (pl.col("from_year") <= academic_year) & (
        pl.col("to_year").is_null() | (pl.col("to_year") >= academic_year)
    )
    return frame.filter(in_force)


def codeset_names() -> list[str]:
    return catalog.codeset_names()


@cache
def dfe_lookup(name: str) -> pl.DataFrame:
    """One of the DfE's lookup files, every column as text (codes keep their leading zeros)."""
    return pl.read_csv(catalog.dfe_lookup_file(name), infer_schema=False)


def live_english_las() -> pl.DataFrame:
    """Live English LAs with their region: old_la_code, new_la_code, la_name, region_code, region_name.

    las.csv also lists joint rows for authorities that publish together (old code "940 / 941"); those are
    publication groupings, not authorities, so they are left out.
    """
    las = dfe_lookup("las").filter(
        (pl.col("status") == "live")
        & pl.col("new_la_code").str.starts_with("E")
        & pl.col("old_la_code").str.contains(r"^\d{3}$")
    )
    regions = dfe_lookup("regions")
    return (
        las.select("old_la_code", "new_la_code", "la_name", pl.col("parent_geography_code").alias("region_code"))
        .join(regions, on="region_code", how="left", maintain_order="left")
        .sort("old_la_code")
    )


def wards(year: int | None = None) -> pl.DataFrame:
    """Wards of English LAs in one year's boundaries (default: the latest year in the list)."""
    hierarchy = dfe_lookup("ward_lad_la_pcon_hierarchy").filter(pl.col("new_la_code").str.starts_with("E"))
    latest = hierarchy["most_recent_year_included"].cast(pl.Int32).max() if year is None else year
    in_year = (pl.col("first_available_year_included").cast(pl.Int32) <= latest) & (
        pl.col("most_recent_year_included").cast(pl.Int32) >= latest
    )
    return (
        hierarchy.filter(in_year)
        .select("ward_code", "ward_name", "lad_code", "lad_name", "new_la_code")
        .unique()
        .sort("ward_code")
    )
