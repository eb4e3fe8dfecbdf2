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

import polars as pl

from disclosure_control.hierarchy import ROOT, Hierarchy
from disclosure_control.policy import Policy
from disclosure_control.rounding import percentages
from pipelines.nodes.characteristics import DERIVED, DERIVED_TOGETHER
from schemas.calendar import Term, academic_year_label
from schemas.lookups import codeset
from schemas.specs.publication import AREA, Filter, Measure, Publication, PublicationError


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


def with_derived(frame: pl.DataFrame, columns: set[str], term: Term) -> pl.DataFrame:
    """The frame with every derived characteristic that the publication asks for (characteristics.DERIVED)."""
    wanted = [c for c in sorted(columns) if c not in frame.columns]
    unknown = [c for c in wanted if c not in DERIVED and c not in DERIVED_TOGETHER]
    if unknown:
        raise PublicationError(f"{unknown[0]!r} is neither a staged column nor a derived characteristic "
                               f"(known: {', '.join(sorted([*DERIVED, *DERIVED_TOGETHER]))})")
    together = [made(frame, term) for made in {DERIVED_TOGETHER[c] for c in wanted if c in DERIVED_TOGETHER}]
    return frame.with_columns(*(DERIVED[c](frame, term).alias(c) for c in wanted if c in DERIVED),
                              *(made[c] for made in together for c in wanted if c in made.columns))


def selected_units(frame: pl.DataFrame, publication: Publication, term: Term) -> pl.DataFrame:
    """The rows the publication covers (its `where`, "{period}" being the term's label), one per unit."""
    for column, values in publication.where:
        allowed = [term.label if v == "{period}" else v for v in values]
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


def published_rows(frame: pl.DataFrame, publication: Publication, term: Term, schools: pl.DataFrame, postcodes: pl.DataFrame, keep: tuple[str, ...] = ()) -> tuple[pl.DataFrame, int]:
    """One row per unit counted (the columns kept, area, each filter's label, each measure and its contributor),
    and how many units had no known area. The publication may be a release's population (release.py): it has the
    same attributes."""
    contributors = tuple(dict.fromkeys(m.contributor for m in publication.measures))
    needed = ({f.source for f in publication.filters} | {m.source for m in publication.measures} | set(contributors)
              | {c for c, _ in publication.where})
    units = selected_units(with_derived(frame, needed, term), publication, term)
    rows = units.select(
        *keep,
        unit_areas(units, publication, schools, postcodes),
        *[filter_column(f, term.academic_year) for f in publication.filters],
        *[pl.col(m.source).cast(pl.Float64).fill_null(0).alias(m.col_name) for m in publication.measures],
        *[pl.col(c).cast(pl.String) for c in contributors if c not in keep],
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


def rate_bounds(measure: Measure, spec: Filter, academic_year: int) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """What an intruder knows of a tied measure's multiple (funding per funded hour): each published category of
    its rate filter -> the lowest and highest public rate of its codes (one code: its rate), and the range over
    every code (for a missing category, or a cell at Total)."""
    _, name, column = measure.rate
    rates = {code: float(rate) for code, rate in codeset(name, academic_year).select("code", column).iter_rows()}
    if not rates:
        raise PublicationError(f"{name}: no {column} for {academic_year_label(academic_year)}")
    by_label: dict[str, list[float]] = {}
    for code, label in (filter_labels(spec, academic_year) or {c: c for c in rates}).items():
        if code in rates:
            by_label.setdefault(label, []).append(rates[code])
    return {label: (min(r), max(r)) for label, r in by_label.items()}, (min(rates.values()), max(rates.values()))


def share_percents(cells: pl.DataFrame, publication: Publication, policy: Policy) -> pl.DataFrame:
    """cell_id, percent: each cell as a percentage of its cohort, the cell with the share filter at Total.
    Made from the protected counts only, so a percentage is hidden wherever either count is."""
    others = [d for d in publication.dimensions if d != publication.share]
    cohorts = cells.filter(pl.col(publication.share) == ROOT).drop(publication.share)
    return percentages(cells, cohorts, others, policy)
