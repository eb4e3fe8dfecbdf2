"""Extract specs (schemas/extracts/*.toml): the rows and columns one recipient asked for, and what a recipient may
have at record level (its entitlement, from recipients.toml). A spec asking for more than the entitlement is
refused here, at load, so no extract is ever built with a field its recipient may not have."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.calendar import TERMS
from schemas.keys import check_keys, check_nested_keys
from schemas.specs.layout import LAYOUTS


class ExtractError(ValueError):
    """An extract spec that cannot be used, or asks for more than its recipient may have; names the key."""


@dataclass(frozen=True)
class Entitlement:
    """What one recipient may receive at record level (from recipients.toml)."""

    fields: frozenset[str]  # in the clear
    pseudonymise: frozenset[str] = frozenset()  # only as HMAC-SHA-256 pseudonyms under the recipient's key
    generalise: tuple[tuple[str, str], ...] = ()  # field -> generalisation (deidentify.GENERALISATIONS)
    key_id: str | None = None

    def treatment(self, field: str) -> str | None:
        return "pseudonym" if field in self.pseudonymise else dict(self.generalise).get(field)

    def allows(self, field: str) -> bool:
        return field in self.fields or self.treatment(field) is not None


@dataclass(frozen=True)
class Summary:
    col_name: str
    count_unique: str | None = None
    sum: str | None = None


@dataclass(frozen=True)
class Extract:
    name: str
    title: str
    return_name: str
    recipient: str
    dataset: str
    unit: tuple[str, ...]
    where: tuple[tuple[str, tuple[str, ...]], ...]
    columns: tuple[tuple[str, str], ...] = ()  # (header, source field), in the recipient's order
    by: tuple[str, ...] = ()
    summaries: tuple[Summary, ...] = ()
    terms: tuple[str, ...] = ("autumn", "spring", "summer")  # the census terms it is made in
    opt_out: str | None = None  # a flag column: where it is set, only the `opt_out_keeps` fields are sent
    opt_out_keeps: tuple[str, ...] = ()
    layout: str = "csv"  # csv (one header row, then a row per unit) or a DfE XML layout (schemas/specs/layout.py)

    @property
    def suffix(self) -> str:
        return ".csv" if self.layout == "csv" else LAYOUTS[self.layout].suffix

    @property
    def columns_used(self) -> list[tuple[str, str]]:
        """(key, column) for every staged column the spec reads, for the check at load."""
        return [*(("unit", c) for c in self.unit), *((f"where.{c}", c) for c, _ in self.where),
                *((f"columns.{h}", s) for h, s in self.columns), *(("by", c) for c in self.by),
                *((f"summaries.{s.col_name}", s.count_unique or s.sum) for s in self.summaries),
                *([("opt_out.flag", self.opt_out)] if self.opt_out else [])]

    @property
    def sources(self) -> set[str]:
        return ({s for _, s in self.columns} | set(self.by) | {s.count_unique or s.sum for s in self.summaries}
                | {c for c, _ in self.where} | ({self.opt_out} if self.opt_out else set()))


EXTRACT_KEYS = ("title", "return", "recipient", "dataset", "unit", "where", "columns", "by", "summaries", "terms",
                "opt_out", "layout")


EXTRACT_NESTED = {  # a nested table's allowed and required keys: a misspelt opt-out flag would send everything
    "columns": (("name", "source"), ("name", "source")),
    "summaries": (("col_name", "count_unique", "sum"), ("col_name",)),
    "opt_out": (("flag", "keep"), ("flag", "keep")),
}


def parse_extract(raw: dict, name: str) -> Extract:
    check_keys(raw, "spec", EXTRACT_KEYS, ("title", "return", "recipient", "dataset", "unit"), ExtractError)
    check_nested_keys(raw, EXTRACT_NESTED, ExtractError)
    bad_terms = [t for t in raw.get("terms", ()) if t not in TERMS]
    if bad_terms:
        raise ExtractError(f"terms: {bad_terms[0]!r} is not one of {', '.join(TERMS)}")
    try:
        summaries = tuple(Summary(s["col_name"], s.get("count_unique"), s.get("sum")) for s in raw.get("summaries", []))
        opt_out = raw.get("opt_out", {})
        extract = Extract(
            name, raw["title"], raw["return"], raw["recipient"], raw["dataset"], tuple(raw["unit"]),
            tuple((column, tuple(map(str, values))) for column, values in raw.get("where", {}).items()),
            tuple((c["name"], c["source"]) for c in raw.get("columns", [])), tuple(raw.get("by", ())), summaries,
            tuple(raw.get("terms", Extract.terms)), opt_out.get("flag"), tuple(opt_out.get("keep", ())),
            raw.get("layout", "csv"))
    except KeyError as error:
        raise ExtractError(f"missing key {error.args[0]!r}") from None
    if bool(extract.columns) == bool(extract.by):
        raise ExtractError("give either columns (record level) or by and summaries (a summary)")
    bad = [s.col_name for s in summaries if (s.count_unique is None) == (s.sum is None)]
    if bad:
        raise ExtractError(f"summaries.{bad[0]}: give exactly one of count_unique and sum")
    unknown = sorted(set(extract.opt_out_keeps) - {s for _, s in extract.columns})
    if unknown:
        raise ExtractError(f"opt_out.keep: {unknown[0]!r} is not one of the extract's columns")
    if extract.layout != "csv":
        check_layout(extract)
    return extract


def check_layout(extract: Extract) -> None:
    """A DfE layout's spec names only the layout's items, each once, and every item the layout requires."""
    layout = LAYOUTS.get(extract.layout)
    if layout is None:
        raise ExtractError(f"layout: {extract.layout!r} is not one of csv, {', '.join(LAYOUTS)}")
    if extract.by:
        raise ExtractError(f"layout: {extract.layout} is record level; give columns, not by and summaries")
    names = [name for name, _ in extract.columns]
    mapped = {i.path for i in layout.mapped}
    stray = [n for n in names if n not in mapped]
    if stray:
        raise ExtractError(f"columns.{stray[0]}: not an item of the {layout.name} layout")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ExtractError(f"columns.{twice[0]}: given twice")
    missing = [i.path for i in layout.mapped if i.required and i.path not in names]
    if missing:
        raise ExtractError(f"columns: the {layout.name} layout requires {missing[0]}")


def check_sources_of_required_items(extract: Extract, required_columns: set[str]) -> None:
    """Every item a DfE layout requires comes from a column its dataset's contract requires, so that no staged row
    can make a return the DfE rejects for a missing element: a null is quarantined at validation instead."""
    layout = LAYOUTS[extract.layout]
    sources = dict(extract.columns)
    optional = [(i.path, sources[i.path]) for i in layout.needs_a_value if sources[i.path] not in required_columns]
    if optional:
        raise ExtractError(f"columns.{optional[0][0]}: the {layout.name} layout requires it, and {optional[0][1]!r} is "
                           f"not required in the {extract.dataset} contract (set required = true there)")


def check_entitled(extract: Extract, entitlement: Entitlement) -> None:
    """Refuse a spec that asks for a field its recipient may not have (in any form)."""
    asked = [s for _, s in extract.columns] + list(extract.by)
    refused = [s for s in asked if not entitlement.allows(s)]
    if refused:
        raise ExtractError(f"columns: {refused[0]!r} is not among recipient {extract.recipient!r}'s fields")
    if extract.by and any(entitlement.treatment(s) for s in extract.by):
        raise ExtractError("by: a summary groups by fields the recipient may have in the clear only")
