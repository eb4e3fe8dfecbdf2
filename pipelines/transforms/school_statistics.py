"""School statistics: pupils counted by school, district and LA against each characteristic, as linked tables.

Pure: frames and a publication spec in, a TableSet out. The school dimension's hierarchy is the LA (Total) over
its districts over their schools, so every district and the LA total are margins the tables share.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from disclosure_control.hierarchy import Hierarchy
from disclosure_control.table import TableSet, TableSpec, from_microdata
from schemas.lookups import codeset

SCHOOL = "school_urn"


class PublicationError(ValueError):
    """A publication spec that cannot be used; the message names the key."""


@dataclass(frozen=True)
class PublishedTable:
    name: str  # EES file stem
    source: str  # staged column
    filter: str  # EES filter column (harmonised name)
    label: str
    codeset: str | None = None
    label_column: str = "publication_label"
    labels: tuple[tuple[str, str], ...] = ()  # code -> label, for flags


@dataclass(frozen=True)
class Publication:
    title: str
    dataset: str
    enrolment_status: tuple[str, ...]
    indicator: str
    indicator_label: str
    tables: tuple[PublishedTable, ...]


def parse_publication(raw: dict) -> Publication:
    try:
        tables = tuple(
            PublishedTable(t["name"], t["source"], t["filter"], t["label"], t.get("codeset"),
                           t.get("label_column", "publication_label"), tuple(t.get("labels", {}).items()))
            for t in raw["tables"])
        publication = Publication(raw["title"], raw["dataset"], tuple(raw["enrolment_status"]),
                                  raw["indicator"]["col_name"], raw["indicator"]["label"], tables)
    except KeyError as error:
        raise PublicationError(f"missing key {error.args[0]!r}") from None
    for table in tables:
        if (table.codeset is None) == (not table.labels):
            raise PublicationError(f"tables.{table.name}: give either codeset or labels")
    return publication


def characteristic_labels(table: PublishedTable, academic_year: int) -> dict[str, str]:
    if table.labels:
        return dict(table.labels)
    codes = codeset(table.codeset, academic_year)
    return dict(codes.select("code", table.label_column).iter_rows())


def counted_pupils(pupils: pl.DataFrame, publication: Publication, academic_year: int) -> pl.DataFrame:
    """One row per pupil counted, with the school and each table's filter value (its published label)."""
    counted = pupils.filter(pl.col("enrolment_status").is_in(list(publication.enrolment_status)))
    return counted.select(
        pl.col(SCHOOL).cast(pl.String),
        *[pl.col(t.source).cast(pl.String).replace_strict(characteristic_labels(t, academic_year)).alias(t.filter)
          for t in publication.tables],
    )


def school_hierarchy(schools: pl.DataFrame) -> Hierarchy:
    """Total (the LA) > district (lad_code) > school (URN)."""
    by_district = schools.select(pl.col("urn").cast(pl.String), "lad_code").group_by("lad_code").agg(pl.col("urn").sort())
    children = {"Total": sorted(by_district["lad_code"].to_list())} | dict(by_district.iter_rows())
    return Hierarchy.from_children(SCHOOL, children)


def linked_tables(counted: pl.DataFrame, publication: Publication, hierarchy: Hierarchy) -> TableSet:
    specs = [TableSpec(t.name, (SCHOOL, t.filter)) for t in publication.tables]
    return from_microdata(counted, specs, {SCHOOL: hierarchy})
