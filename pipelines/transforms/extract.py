"""Record-level extracts: the rows and columns one recipient asked for, treated as its entitlement says.

Pure: staged frames, an extract spec (schemas/extracts/*.toml) and the recipient's entitlement in, a frame out.
The spec says what the recipient needs (columns in its order); the recipient's entry in recipients.toml says
what it may have: fields in the clear, fields only as keyed pseudonyms, fields only generalised. A spec that
asks for more than the entitlement is refused when it is loaded, so an extract never holds a field its
recipient is not entitled to.

A summary extract (`by` and `summaries`) counts and sums per group instead, for recipients who are paid or
pay by it (the termly provider headcount).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from schemas.config import check_keys
from pipelines.transforms.deidentify import GENERALISATIONS, pseudonyms
from pipelines.transforms.publication import PublicationError, selected_units, with_derived


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

    @property
    def sources(self) -> set[str]:
        return ({s for _, s in self.columns} | set(self.by) | {s.count_unique or s.sum for s in self.summaries}
                | {c for c, _ in self.where} | ({self.opt_out} if self.opt_out else set()))


EXTRACT_KEYS = ("title", "return", "recipient", "dataset", "unit", "where", "columns", "by", "summaries", "terms",
                "opt_out")


def parse_extract(raw: dict, name: str) -> Extract:
    check_keys(raw, "spec", EXTRACT_KEYS, ("title", "return", "recipient", "dataset", "unit"), ExtractError)
    try:
        summaries = tuple(Summary(s["col_name"], s.get("count_unique"), s.get("sum")) for s in raw.get("summaries", []))
        opt_out = raw.get("opt_out", {})
        extract = Extract(
            name, raw["title"], raw["return"], raw["recipient"], raw["dataset"], tuple(raw["unit"]),
            tuple((column, tuple(map(str, values))) for column, values in raw.get("where", {}).items()),
            tuple((c["name"], c["source"]) for c in raw.get("columns", [])), tuple(raw.get("by", ())), summaries,
            tuple(raw.get("terms", Extract.terms)), opt_out.get("flag"), tuple(opt_out.get("keep", ())))
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
    return extract


def check_entitled(extract: Extract, entitlement: Entitlement) -> None:
    """Refuse a spec that asks for a field its recipient may not have (in any form)."""
    asked = [s for _, s in extract.columns] + list(extract.by)
    refused = [s for s in asked if not entitlement.allows(s)]
    if refused:
        raise ExtractError(f"columns: {refused[0]!r} is not among recipient {extract.recipient!r}'s fields")
    if extract.by and any(entitlement.treatment(s) for s in extract.by):
        raise ExtractError("by: a summary groups by fields the recipient may have in the clear only")


def treated(column: str, field: str, entitlement: Entitlement, key: bytes | None) -> pl.Expr | pl.Series:
    treatment = entitlement.treatment(field)
    if treatment is None:
        return pl.col(field).alias(column)
    if treatment == "pseudonym":
        if key is None:
            raise ExtractError(f"{field} must be pseudonymised but no key was given")
        return pl.col(field).map_batches(lambda s: pseudonyms(s, key), return_dtype=pl.String).alias(column)
    return GENERALISATIONS[treatment](pl.col(field)).alias(column)


def withheld_if_opted_out(value: pl.Expr, column: str, field: str, extract: Extract) -> pl.Expr:
    """Null where the person (or their parent) has limited what may be passed on, unless the field is one the
    opt-out still allows (youth support services: name, address and date of birth only)."""
    if extract.opt_out is None or field in extract.opt_out_keeps:
        return value
    return pl.when(pl.col(extract.opt_out).fill_null(False)).then(None).otherwise(value).alias(column)


def extract_rows(frame: pl.DataFrame, extract: Extract, entitlement: Entitlement, academic_year: int, period: str,
                 key: bytes | None = None) -> pl.DataFrame:
    """The extract's rows: one per unit (record level, treated per the entitlement) or one per group."""
    check_entitled(extract, entitlement)
    try:
        units = selected_units(with_derived(frame, extract.sources, academic_year), extract, period)
    except PublicationError as error:
        raise ExtractError(str(error)) from None
    if extract.columns:
        return units.select(withheld_if_opted_out(treated(column, field, entitlement, key), column, field, extract)
                            for column, field in extract.columns)
    return units.group_by(list(extract.by)).agg(
        pl.col(s.count_unique).n_unique().alias(s.col_name) if s.count_unique else pl.col(s.sum).sum().alias(s.col_name)
        for s in extract.summaries).sort(list(extract.by))
