"""Published statistics: unit records counted by area against characteristics, as linked tables.

Pure: staged frames and a publication spec (schemas/publications/*.toml) in, a TableSet and its frames out.
Every table of one publication counts the same units over the same area hierarchy, so the tables share their
margins (the LA and district totals, and each area's total) and are protected together: a margin has one
status in every file, and no cell can be worked out by differencing one table against another.

Areas are schools within districts within the LA ("school"), districts by the school's district
("school_district", for rates whose school-level cells would be mostly suppressed), or districts by the home
postcode ("residence", as NCMP and destination statistics are reported). A unit whose area is unknown (a postcode
outside the LA's lookup) cannot be placed in the hierarchy; it is left out and counted, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from disclosure_control.hierarchy import ROOT, Hierarchy
from disclosure_control.policy import Policy
from disclosure_control.rounding import percentages
from disclosure_control.table import CELL_ID, INNER_ID, TableSet
from schemas.config import check_keys
from pipelines.transforms.characteristics import DERIVED, DERIVED_TOGETHER
from schemas.lookups import codeset

AREA = "area"  # the geography dimension of every published table: Total (the LA), a district code or a URN
GEOGRAPHIES = ("school", "school_district", "residence")


class PublicationError(ValueError):
    """A publication spec that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Filter:
    """A characteristic as published: an EES filter column whose values are labels, never codes."""

    name: str  # EES filter column (harmonised name)
    source: str  # staged or derived column
    label: str
    codeset: str | None = None
    label_column: str = "publication_label"
    labels: tuple[tuple[str, str], ...] = ()  # value -> label, after the code set's label_column if any
    missing: str = "Unclassified"
    part_of: tuple[str, str] | None = None  # (filter, label): the categories other than missing count exactly
    # the units in that category of that filter


@dataclass(frozen=True)
class PublishedTable:
    name: str  # EES file stem
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Measure:
    """An additive quantity published beside the count (funded hours): shown only where the count is."""

    col_name: str
    source: str
    label: str
    unit: str = ""
    dp: int = 0


@dataclass(frozen=True)
class Publication:
    name: str
    title: str
    return_name: str  # the return (flow) that produces it
    recipient: str  # who receives it (schemas/policies/recipients.toml), under whose disclosure policy
    dataset: str
    geography: str  # "school" or "residence"
    area_source: str  # the column that places a unit: a school URN or a home postcode
    unit: tuple[str, ...]  # columns naming one unit: each is counted once (first row kept)
    where: tuple[tuple[str, tuple[str, ...]], ...]  # column -> allowed values ("{period}" is the run's term)
    indicator: str
    indicator_label: str
    tables: tuple[PublishedTable, ...]
    share: str | None = None  # a filter whose rows also get their percentage of that filter's Total
    share_label: str = ""
    measures: tuple[Measure, ...] = ()

    @property
    def filters(self) -> tuple[Filter, ...]:
        return tuple({f.name: f for t in self.tables for f in t.filters}.values())

    @property
    def dimensions(self) -> tuple[str, ...]:
        return (AREA, *(f.name for f in self.filters))


def _filter(name: str, raw: dict) -> Filter:
    check_keys(raw, f"filters.{name}", FILTER_KEYS, ("label",), PublicationError)
    part_of = raw.get("part_of")
    if part_of is not None and (not isinstance(part_of, dict) or set(part_of) != {"filter", "label"}):
        raise PublicationError(f"filters.{name}.part_of: a table with exactly the keys filter and label")
    return Filter(name, raw.get("source", name), raw["label"], raw.get("codeset"),
                  raw.get("label_column", "publication_label"), tuple((str(k), str(v)) for k, v in raw.get("labels", {}).items()),
                  raw.get("missing", "Unclassified"), (part_of["filter"], str(part_of["label"])) if part_of else None)


def parse_filters(raw: dict) -> dict[str, Filter]:
    filters = {key: _filter(key, spec) for key, spec in raw.items()}
    for name, spec in filters.items():
        if spec.part_of and spec.part_of[0] not in filters:
            raise PublicationError(f"filters.{name}.part_of.filter: {spec.part_of[0]!r} is not a filter")
    return filters


FILTER_KEYS = ("source", "label", "codeset", "label_column", "labels", "missing", "part_of")
PUBLICATION_KEYS = ("title", "return", "recipient", "dataset", "geography", "unit", "where", "indicator", "tables",
                    "share", "measures")


def parse_publication(raw: dict, filters: dict[str, Filter], name: str) -> Publication:
    check_keys(raw, "spec", PUBLICATION_KEYS, ("title", "return", "recipient", "dataset", "geography", "unit",
                                                "indicator", "tables"), PublicationError)
    try:
        tables = []
        for table in raw["tables"]:
            unknown = [f for f in table["filters"] if f not in filters]
            if unknown:
                raise PublicationError(f"tables.{table['name']}.filters: {unknown[0]!r} is not in filters.toml")
            tables.append(PublishedTable(table["name"], tuple(filters[f] for f in table["filters"])))
        geography = raw["geography"]
        if geography.get("kind") not in GEOGRAPHIES:
            raise PublicationError(f"geography.kind: {geography.get('kind')!r} is not one of {', '.join(GEOGRAPHIES)}")
        share = raw.get("share")
        if share is not None and share["filter"] not in filters:
            raise PublicationError(f"share.filter: {share['filter']!r} is not in filters.toml")
        measures = tuple(Measure(m["col_name"], m["source"], m["label"], m.get("unit", ""), int(m.get("dp", 0)))
                         for m in raw.get("measures", []))
        return Publication(
            name, raw["title"], raw["return"], raw["recipient"], raw["dataset"], geography["kind"], geography["source"], tuple(raw["unit"]),
            tuple((column, tuple(map(str, values))) for column, values in raw.get("where", {}).items()),
            raw["indicator"]["col_name"], raw["indicator"]["label"], tuple(tables),
            share["filter"] if share else None, share["label"] if share else "", measures)
    except KeyError as error:
        raise PublicationError(f"missing key {error.args[0]!r}") from None


def filter_labels(spec: Filter, academic_year: int) -> dict[str, str] | None:
    """value -> published label: through the code set's label column, then the spec's own labels; None when
    the values are published as they are."""
    labels = dict(spec.labels)
    if spec.codeset is None:
        return labels or None
    codes = codeset(spec.codeset, academic_year).select("code", pl.col(spec.label_column).alias("label"))
    return {code: labels.get(value, value) for code, value in codes.iter_rows() if value}


def filter_column(spec: Filter, academic_year: int) -> pl.Expr:
    values, labels = pl.col(spec.source).cast(pl.String), filter_labels(spec, academic_year)
    published = values if labels is None else values.replace_strict(labels, default=None)
    return published.fill_null(spec.missing).alias(spec.name)


def with_derived(frame: pl.DataFrame, columns: set[str], academic_year: int) -> pl.DataFrame:
    """The frame with every derived characteristic that the publication asks for (characteristics.DERIVED)."""
    wanted = [c for c in sorted(columns) if c not in frame.columns]
    unknown = [c for c in wanted if c not in DERIVED and c not in DERIVED_TOGETHER]
    if unknown:
        raise PublicationError(f"{unknown[0]!r} is neither a staged column nor a derived characteristic "
                               f"(known: {', '.join(sorted([*DERIVED, *DERIVED_TOGETHER]))})")
    together = [made(frame, academic_year) for made in {DERIVED_TOGETHER[c] for c in wanted if c in DERIVED_TOGETHER}]
    return frame.with_columns(*(DERIVED[c](frame, academic_year).alias(c) for c in wanted if c in DERIVED),
                              *(made[c] for made in together for c in wanted if c in made.columns))


def selected_units(frame: pl.DataFrame, publication: Publication, period: str) -> pl.DataFrame:
    """The rows the publication covers (its `where`), one per unit."""
    for column, values in publication.where:
        allowed = [period if v == "{period}" else v for v in values]
        frame = frame.filter(pl.col(column).cast(pl.String).is_in(allowed))
    return frame.unique(list(publication.unit), keep="first", maintain_order=True)


def _squashed(codes: pl.Expr) -> pl.Expr:
    return codes.cast(pl.String).str.to_uppercase().str.replace_all(" ", "")


def unit_areas(units: pl.DataFrame, publication: Publication, schools: pl.DataFrame, postcodes: pl.DataFrame) -> pl.Series:
    """Each unit's finest area: its school URN, its school's district, or its home postcode's district (null
    when the postcode or school is not the LA's)."""
    codes = units.select(_squashed(pl.col(publication.area_source))).to_series()
    if publication.geography == "school":  # a school missing from the LA's list is left out and counted
        known = schools.select(_squashed(pl.col("urn"))).to_series().implode()
        return codes.to_frame(AREA).select(pl.when(pl.col(AREA).is_in(known)).then(pl.col(AREA))).to_series()
    if publication.geography == "school_district":
        lookup = dict(schools.select(_squashed(pl.col("urn")), "lad_code").iter_rows())
    else:
        lookup = dict(postcodes.select(_squashed(pl.col("postcode")), "lad_code").iter_rows())
    return codes.replace_strict(lookup, default=None, return_dtype=pl.String).alias(AREA)


def published_rows(frame: pl.DataFrame, publication: Publication, academic_year: int, period: str,
                   schools: pl.DataFrame, postcodes: pl.DataFrame, keep: tuple[str, ...] = ()) -> tuple[pl.DataFrame, int]:
    """One row per unit counted (the columns kept, area, each filter's label, each measure), and how many units had
    no known area. The publication may be a release's population (release.py): it has the same attributes."""
    needed = {f.source for f in publication.filters} | {m.source for m in publication.measures} | {c for c, _ in publication.where}
    units = selected_units(with_derived(frame, needed, academic_year), publication, period)
    rows = units.select(
        *keep,
        unit_areas(units, publication, schools, postcodes),
        *[filter_column(f, academic_year) for f in publication.filters],
        *[pl.col(m.source).cast(pl.Float64).fill_null(0).alias(m.col_name) for m in publication.measures],
    )
    placed = rows.filter(pl.col(AREA).is_not_null())
    return placed, rows.height - placed.height


def area_hierarchy(publication: Publication, schools: pl.DataFrame, postcodes: pl.DataFrame) -> Hierarchy:
    """Total (the LA) > districts (lad_code) > schools (URN), or Total > districts."""
    places = postcodes if publication.geography == "residence" else schools
    if publication.geography != "school":
        return Hierarchy.from_children(AREA, {"Total": sorted(places["lad_code"].unique().to_list())})
    by_district = (schools.select(pl.col("urn").cast(pl.String), "lad_code").group_by("lad_code").agg(pl.col("urn").sort())
                   .sort("lad_code"))
    children = {"Total": sorted(by_district["lad_code"].to_list())} | dict(by_district.iter_rows())
    return Hierarchy.from_children(AREA, children)


def measure_totals(rows: pl.DataFrame, table_set: TableSet, publication: Publication) -> pl.DataFrame:
    """cell_id and each measure's total in that cell: the same additive structure as the counts."""
    names = [m.col_name for m in publication.measures]
    if not names:
        return table_set.cells.select(CELL_ID)
    dims = list(table_set.dimensions)
    inner = table_set.inner.select(INNER_ID, *dims).join(rows.group_by(dims).agg(pl.col(n).sum() for n in names),
                                                         on=dims, how="left").sort(INNER_ID)
    return table_set.cells.select(CELL_ID).with_columns(
        pl.Series(n, table_set.membership.T @ inner[n].fill_null(0).to_numpy()) for n in names)


def share_percents(cells: pl.DataFrame, publication: Publication, policy: Policy) -> pl.DataFrame:
    """cell_id, percent: each cell as a percentage of its cohort, the cell with the share filter at Total.
    Made from the protected counts only, so a percentage is hidden wherever either count is."""
    others = [d for d in publication.dimensions if d != publication.share]
    cohorts = cells.filter(pl.col(publication.share) == ROOT).drop(publication.share)
    return percentages(cells, cohorts, others, policy)
