"""EES open-data tables (data-standards.md section 6), built as frames: one tidy data frame and its meta frame per
published table, written by outputs/ees.py.

Rows are the LA, each district and (for school tables) each school; geography columns are filled for the row's
level and every level above it, never below (the screener's "over-completed" check), and a table has only the
geography columns of the levels it publishes. Indicator values are the decision records' display values: counts,
or the policy's symbols (c, z, low); a share and a measure are shown only where the count is.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from disclosure_control.hierarchy import ROOT
from disclosure_control.status import SHOWN
from schemas.calendar import Term
from schemas.lookups import dfe_lookup, live_english_las
from schemas.specs.publication import AREA, Filter, Publication, PublishedTable

LEVELS = ("Local authority", "Local authority district", "School")
LA_COLUMNS = ("region_code", "region_name", "old_la_code", "new_la_code", "la_name")
LAD_COLUMNS = ("lad_code", "lad_name")
SCHOOL_COLUMNS = ("school_urn", "school_name", "school_laestab")
META_COLUMNS = ("col_name", "col_type", "label", "indicator_grouping", "indicator_unit", "indicator_dp",
                "filter_hint", "filter_grouping_column")
PERCENT = "percent"  # the share column of rounding.percentages, named by the publication in its files


def time_columns(term: Term, time: str) -> list[pl.Expr]:
    """The academic year (YYYYZZ), with the term's identifier (a census count) or "Academic year" (a measure the
    DfE publishes by year)."""
    year = term.academic_year
    identifier = "Academic year" if time == "academic_year" else f"{term.name.capitalize()} term"
    return [pl.lit(f"{year}{(year + 1) % 100:02d}").alias("time_period"), pl.lit(identifier).alias("time_identifier")]


def district_geography(places: pl.DataFrame) -> pl.DataFrame:
    """Districts (lad_code, old_la_code) with names and codes from the DfE's own lists, so that every code/name
    pair is one the screener accepts."""
    lads = dfe_lookup("lads").filter(pl.col("status") == "live").select("lad_code", "lad_name").unique("lad_code")
    return (places.select("lad_code", "old_la_code").unique()
            .join(lads, on="lad_code", how="left", validate="1:1")
            .join(live_english_las(), on="old_la_code", how="left", validate="m:1"))


def geography_rows(districts: pl.DataFrame, schools: pl.DataFrame | None = None) -> pl.DataFrame:
    """node (the area dimension's code: Total, a district or a URN) -> level and geography columns."""
    la = districts.select(*LA_COLUMNS).unique()
    if la.height != 1:
        raise ValueError(f"the areas span {la.height} local authorities; a return covers one")
    blank = lambda names: [pl.lit(None, pl.String).alias(n) for n in names]  # noqa: E731
    rows = [
        la.select(pl.lit(ROOT).alias("node"), pl.lit(LEVELS[0]).alias("geographic_level"), *LA_COLUMNS,
                  *blank(LAD_COLUMNS), *blank(SCHOOL_COLUMNS)),
        districts.select(pl.col("lad_code").alias("node"), pl.lit(LEVELS[1]).alias("geographic_level"), *LA_COLUMNS,
                         *LAD_COLUMNS, *blank(SCHOOL_COLUMNS)),
    ]
    if schools is not None:
        rows.append(
            schools.select(pl.col("urn").cast(pl.String).alias("node"), "lad_code", "school_name",
                           pl.col("urn").cast(pl.String).alias("school_urn"), pl.col("laestab").cast(pl.String).alias("school_laestab"))
            .join(districts, on="lad_code", how="left", validate="m:1")
            .select("node", pl.lit(LEVELS[2]).alias("geographic_level"), *LA_COLUMNS, *LAD_COLUMNS, *SCHOOL_COLUMNS))
    return pl.concat(rows)


def area_names(places: dict[str, pl.DataFrame]) -> dict[str, str]:
    """The area dimension's codes (Total, a district code, a URN) as a reader names them: the LA, the district,
    the school. For the auditor report's cell labels; every name is a public one."""
    districts = pl.concat([district_geography(places["postcodes"]), district_geography(places["schools"])]).unique("lad_code")
    rows = geography_rows(districts, places["schools"]).iter_rows(named=True)
    return {row["node"]: row["school_name"] or row["lad_name"] or row["la_name"] or row["node"] for row in rows}


def area_nodes(frame: pl.DataFrame) -> pl.Series:
    """Each row's area as the area dimension names it (Total, a district code, a URN): geography_rows read back,
    for EES files published earlier or by others; null at a level the tables do not have (England, a region)."""
    level = pl.col("geographic_level")
    column = lambda name: pl.col(name) if name in frame.columns else pl.lit(None, pl.String)  # noqa: E731
    return frame.select(pl.when(level == LEVELS[2]).then(column("school_urn")).when(level == LEVELS[1])
                        .then(column("lad_code")).when(level == LEVELS[0]).then(pl.lit(ROOT)).alias("area")).to_series()


def current_names(frame: pl.DataFrame, filters: tuple[Filter, ...]) -> pl.DataFrame:
    """A frame of an earlier release (a file, or the counts its run kept) under today's filter names and labels:
    a filter renamed since (its `was`) takes its name back, and its earlier labels today's."""
    frame = frame.rename({f.was: f.name for f in filters if f.was in frame.columns and f.name not in frame.columns})
    return frame.with_columns(pl.col(f.name).replace(dict(f.was_labels)) for f in filters
                              if f.was_labels and f.name in frame.columns)


def ees_data(cells: pl.DataFrame, table: PublishedTable, publication: Publication, geography: pl.DataFrame,
             term: Term, percents: pl.DataFrame | None = None) -> pl.DataFrame:
    """The table's cells (its rows in the linked decision records) in EES column order, LA first; a filter's
    unpublished categories left out and its Total under its own label.

    percents: cell_id, percent (from rounding.percentages), when the publication has a share filter."""
    mine = cells.filter(pl.col("tables").list.contains(table.name),
                        *(~pl.col(f.name).is_in(list(f.unpublished)) for f in table.filters if f.unpublished))
    mine = mine.with_columns(pl.col(f.name).replace(ROOT, f.total) for f in table.filters if f.total != ROOT)
    if percents is not None:
        mine = mine.join(percents.select("cell_id", pl.col(PERCENT).alias(publication.share_column)), on="cell_id",
                         how="left")
    shown = pl.col("status").is_in(list(SHOWN))
    levels = geography.filter(pl.col("node").is_in(mine[AREA].implode()))["geographic_level"].unique().to_list()
    columns = [*LA_COLUMNS, *LAD_COLUMNS, *(SCHOOL_COLUMNS if LEVELS[2] in levels else ())]
    filters = [f.name for f in table.filters]
    return (
        mine.rename({AREA: "node"}).join(geography, on="node", how="left", validate="m:1")
        .with_columns(pl.col("geographic_level").replace_strict({lvl: i for i, lvl in enumerate(LEVELS)}).alias("__level"))
        .sort("__level", "lad_code", *(["school_urn"] if LEVELS[2] in levels else []), *filters, nulls_last=False)
        .select(*time_columns(term, publication.time), "geographic_level",
                pl.lit("E92000001").alias("country_code"), pl.lit("England").alias("country_name"),
                *columns, *filters, pl.col("display").alias(publication.indicator),
                *([pl.col(publication.share_column)] if percents is not None else []),
                *[pl.when(shown).then(pl.col(m.col_name).round(m.dp, mode="half_away_from_zero").cast(pl.String))
                  .otherwise(pl.col("display")).alias(m.col_name)
                  for m in publication.measures])
    )


def _meta_row(col_name: str, col_type: str, label: str, unit: str = "", dp: str = "", default: str = "") -> dict:
    return {"col_name": col_name, "col_type": col_type, "label": label, "indicator_grouping": "",
            "indicator_unit": unit, "indicator_dp": dp, "filter_hint": "", "filter_grouping_column": "",
            "filter_default": default}


def ees_meta(table: PublishedTable, publication: Publication) -> pl.DataFrame:
    """The meta file; its optional filter_default column only where a filter's total is not labelled Total."""
    rows = [_meta_row(f.name, "Filter", f.label, default=f.total if f.total != ROOT else "") for f in table.filters]
    rows.append(_meta_row(publication.indicator, "Indicator", publication.indicator_label, dp="0"))
    if publication.share:
        rows.append(_meta_row(publication.share_column, "Indicator", publication.share_label, unit="%", dp="1"))
    rows += [_meta_row(m.col_name, "Indicator", m.label, unit=m.unit, dp=str(m.dp)) for m in publication.measures]
    defaults = any(f.total != ROOT for f in table.filters)
    return pl.DataFrame(rows).select(*META_COLUMNS, *(["filter_default"] if defaults else []))


@dataclass(frozen=True)
class EesTable:
    name: str
    data: pl.DataFrame
    meta: pl.DataFrame


def ees_tables(publication: Publication, cells: pl.DataFrame, places: dict[str, pl.DataFrame], term: Term,
               percents: pl.DataFrame | None) -> list[EesTable]:
    """A publication's tables as EES frames. places: the staged schools and postcodes, which name the areas."""
    districts = district_geography(places["postcodes"] if publication.geography == "residence" else places["schools"])
    geography = geography_rows(districts, places["schools"] if publication.geography == "school" else None)
    return [EesTable(table.name, ees_data(cells, table, publication, geography, term, percents),
                     ees_meta(table, publication)) for table in publication.tables]
