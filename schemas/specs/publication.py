"""Publication specs (schemas/publications/*.toml and filters.toml): what a publication counts, where and by which
characteristics, parsed once with every key checked. Pure: no frame is touched here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from disclosure_control.hierarchy import ROOT
from schemas.keys import check_keys, check_nested_keys

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
    total: str = "Total"  # the label of its row over every category (the EES filter_default when not Total)
    unpublished: tuple[str, ...] = ()  # at most one category counted and protected but never written: the data
    # dictionary has no item for it, and it is its Total less the published categories
    was: str | None = None  # its name in earlier releases, when it has been renamed since
    was_labels: tuple[tuple[str, str], ...] = ()  # (earlier label, label) for categories relabelled since


@dataclass(frozen=True)
class PublishedTable:
    name: str  # EES file stem
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Measure:
    """An amount published beside the count (funded hours, funding): shown only where the count is, and protected
    as a magnitude in the same cells, with the policy's dominance and p% rules over its contributors (providers)."""

    col_name: str
    source: str
    label: str
    contributor: str  # the column naming who contributes each unit's amount
    unit: str = ""
    dp: int = 0
    tied_to: str | None = None  # a measure of the publication this one lies between known multiples of, child by
    # child (funding: the hours at the entitlement's public hourly rate), so an intruder attacks the two together
    rate: tuple[str, str, str] | None = None  # (filter, code set, column): the public multiple per code of the
    # filter, for each year; a category of several codes lies between their lowest and highest


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
    time: str = "term"  # what its files' time columns name: the run's term, or its academic year

    @property
    def filters(self) -> tuple[Filter, ...]:
        return tuple({f.name: f for t in self.tables for f in t.filters}.values())

    @property
    def share_column(self) -> str:
        """The share's indicator name: the count's, with _percent for _count (pupil_count, pupil_percent), as the
        DfE data dictionary pairs them; else the dictionary's plain percentage."""
        stem = self.indicator.removesuffix("_count")
        return f"{stem}_percent" if stem != self.indicator else "percentage"

    @property
    def dimensions(self) -> tuple[str, ...]:
        return (AREA, *(f.name for f in self.filters))


def _filter(name: str, raw: dict) -> Filter:
    check_keys(raw, f"filters.{name}", FILTER_KEYS, ("label",), PublicationError)
    part_of = raw.get("part_of")
    if part_of is not None and (not isinstance(part_of, dict) or set(part_of) != {"filter", "label"}):
        raise PublicationError(f"filters.{name}.part_of: a table with exactly the keys filter and label")
    labels = tuple((str(k), str(v)) for k, v in raw.get("labels", {}).items())
    missing, unpublished = raw.get("missing", "Unclassified"), raw.get("unpublished", [])
    categories = {v for _, v in labels} | {missing}
    if not isinstance(unpublished, list) or len(unpublished) > 1 or not all(isinstance(u, str) for u in unpublished):
        raise PublicationError(f"filters.{name}.unpublished: a list of one label (the intruder's remainder is one category)")
    total = raw.get("total", ROOT)
    if not isinstance(total, str) or not total.strip() or total in categories:
        raise PublicationError(f"filters.{name}.total: {total!r} must be a label of its own, not blank or a category's")
    if unpublished and (raw.get("codeset") or part_of):
        raise PublicationError(f"filters.{name}.unpublished: only for a filter with its own labels and no part_of")
    for label in unpublished:
        if label not in categories:
            raise PublicationError(f"filters.{name}.unpublished: {label!r} is not one of its labels")
    was, was_labels = _was(name, raw, categories)
    return Filter(name, raw.get("source", name), raw["label"], raw.get("codeset"),
                  raw.get("label_column", "publication_label"), labels, missing,
                  (part_of["filter"], str(part_of["label"])) if part_of else None, total,
                  tuple(unpublished), was, was_labels)


def _was(name: str, raw: dict, categories: set[str]) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """A filter's earlier name and labels, so that earlier releases (their files and the counts their runs kept)
    are read under today's: without them a renamed filter would make the earlier release unreadable."""
    was = raw.get("was")
    if was is None:
        return None, ()
    if not isinstance(was, dict) or not was or not set(was) <= {"name", "labels"}:
        raise PublicationError(f"filters.{name}.was: a table with the keys name (its earlier name) and/or labels "
                               "(earlier label = label)")
    earlier = was.get("name")
    if earlier is not None and (not isinstance(earlier, str) or not earlier.strip() or earlier == name):
        raise PublicationError(f"filters.{name}.was.name: {earlier!r} must be the name it had, not blank or its own")
    relabelled = was.get("labels", {})
    if not isinstance(relabelled, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in relabelled.items()):
        raise PublicationError(f"filters.{name}.was.labels: a table of earlier label = label")
    if relabelled and raw.get("codeset"):
        raise PublicationError(f"filters.{name}.was.labels: only for a filter with its own labels (a code set's "
                               "labels change in the code set)")
    for old, label in relabelled.items():
        if label not in categories or old in categories or old in (ROOT, raw.get("total", ROOT)):
            raise PublicationError(f"filters.{name}.was.labels: {old!r} = {label!r} must map a label it no longer has "
                                   "(not its total) to one of its labels")
    if len(set(relabelled.values())) < len(relabelled):
        raise PublicationError(f"filters.{name}.was.labels: two earlier labels map to one label; their counts would "
                               "be two rows of one category")
    return earlier, tuple(sorted(relabelled.items()))


def parse_filters(raw: dict) -> dict[str, Filter]:
    filters = {key: _filter(key, spec) for key, spec in raw.items()}
    for name, spec in filters.items():
        if spec.part_of and spec.part_of[0] not in filters:
            raise PublicationError(f"filters.{name}.part_of.filter: {spec.part_of[0]!r} is not a filter")
        if spec.part_of and filters[spec.part_of[0]].unpublished:
            raise PublicationError(f"filters.{name}.part_of.filter: {spec.part_of[0]!r} has unpublished categories")
        if spec.was is not None and (spec.was in filters or spec.was in {f.was for f in filters.values() if f is not spec}):
            raise PublicationError(f"filters.{name}.was.name: {spec.was!r} names another filter too, so an earlier "
                                   "file's column could be either")
    return filters


FILTER_KEYS = ("source", "label", "codeset", "label_column", "labels", "missing", "part_of", "total", "unpublished",
               "was")
PUBLICATION_KEYS = ("title", "return", "recipient", "dataset", "geography", "unit", "where", "indicator", "tables",
                    "share", "measures", "time")
# A term's census count is published against its term; what is measured once a year (key stage 2 results, NCMP
# measurements, destinations) against its academic year, as the DfE publishes them.
TIMES = ("term", "academic_year")
PUBLICATION_NESTED = {  # a nested table's allowed and required keys: a misspelt one is an error, never ignored
    "geography": (("kind", "source"), ("kind", "source")),
    "indicator": (("col_name", "label"), ("col_name", "label")),
    "share": (("filter", "label"), ("filter", "label")),
    "tables": (("name", "filters"), ("name", "filters")),
    "measures": (("col_name", "source", "label", "contributor", "unit", "dp", "tied_to", "rate"),
                 ("col_name", "source", "label", "contributor")),
}


def _measure(raw: dict, filters: dict[str, Filter]) -> Measure:
    rate = raw.get("rate")
    if (raw.get("tied_to") is None) != (rate is None):
        raise PublicationError(f"measures.{raw['col_name']}: a measure tied to another needs its rate, and only it")
    if rate is not None:
        if not isinstance(rate, dict) or set(rate) != {"filter", "codeset", "column"}:
            raise PublicationError(f"measures.{raw['col_name']}.rate: a table with exactly the keys filter, codeset and column")
        if rate["filter"] not in filters or filters[rate["filter"]].codeset is None:
            raise PublicationError(f"measures.{raw['col_name']}.rate.filter: {rate['filter']!r} is not a filter with a code set")
    return Measure(raw["col_name"], raw["source"], raw["label"], raw["contributor"], raw.get("unit", ""),
                   int(raw.get("dp", 0)), raw.get("tied_to"),
                   (rate["filter"], rate["codeset"], rate["column"]) if rate else None)


def parse_publication(raw: dict, filters: dict[str, Filter], name: str) -> Publication:
    check_keys(raw, "spec", PUBLICATION_KEYS, ("title", "return", "recipient", "dataset", "geography", "unit",
                                                "indicator", "tables"), PublicationError)
    check_nested_keys(raw, PUBLICATION_NESTED, PublicationError)
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
        if raw.get("time", "term") not in TIMES:
            raise PublicationError(f"time: {raw['time']!r} is not one of {', '.join(TIMES)}")
        measures = tuple(_measure(m, filters) for m in raw.get("measures", []))
        untied = {m.col_name for m in measures if m.tied_to is None}
        for measure in measures:
            if measure.tied_to is not None and measure.tied_to not in untied:
                raise PublicationError(f"measures.{measure.col_name}.tied_to: {measure.tied_to!r} is not a measure of "
                                       "this publication that is tied to none")
            if measure.tied_to is not None and not any(measure.rate[0] in {f.name for f in t.filters} for t in tables):
                raise PublicationError(f"measures.{measure.col_name}.rate.filter: {measure.rate[0]!r} is not a filter of "
                                       "this publication's tables")
        publication = Publication(
            name, raw["title"], raw["return"], raw["recipient"], raw["dataset"], geography["kind"], geography["source"], tuple(raw["unit"]),
            tuple((column, tuple(map(str, values))) for column, values in raw.get("where", {}).items()),
            raw["indicator"]["col_name"], raw["indicator"]["label"], tuple(tables),
            share["filter"] if share else None, share["label"] if share else "", measures,
            raw.get("time", "term"))
        indicators = {publication.indicator, *(m.col_name for m in measures), *([publication.share_column] if share else [])}
        for spec in publication.filters:
            if spec.was in indicators:
                raise PublicationError(f"filters.{spec.name}.was.name: {spec.was!r} is an indicator of this publication, "
                                       "so an earlier file's indicator would be read as the filter")
        return publication
    except KeyError as error:
        raise PublicationError(f"missing key {error.args[0]!r}") from None


# The characteristics a publication may count that no export holds: made by pipelines/nodes/characteristics.py
# (its DERIVED and DERIVED_TOGETHER, which a test holds equal to this list) from the staged columns.
DERIVED_COLUMNS = ("ks2_rwm_expected", "persistent_absence", "academic_age", "reported_activity_code", "two_year_basis_group", "funded_hours", "funding",
                   "universal_hours", "extended_hours", "expanded_hours", "eypp_receipt", "bmi",
                   "bmi_centile", "bmi_category")


def checked_columns(publication: Publication, dataset_columns: Iterable[str]) -> Publication:
    """Every column the spec counts by (its area, unit, conditions, filters and measures) must be a column of its
    dataset or a derived characteristic, so a misspelt column fails at load, not in the middle of a run."""
    known = set(dataset_columns) | set(DERIVED_COLUMNS)
    used = [("geography.source", publication.area_source), *(("unit", c) for c in publication.unit),
            *((f"where.{c}", c) for c, _ in publication.where),
            *((f"filters.{f.name}.source", f.source) for f in publication.filters),
            *((f"measures.{m.col_name}.source", m.source) for m in publication.measures),
            *((f"measures.{m.col_name}.contributor", m.contributor) for m in publication.measures)]
    for key, column in used:
        if column not in known:
            raise PublicationError(f"{key}: {column!r} is not a column of {publication.dataset} or a derived "
                                   "characteristic")
    return publication
