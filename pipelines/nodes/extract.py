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

import polars as pl

from pipelines.nodes.deidentify import GENERALISATIONS, pseudonyms
from pipelines.nodes.publication import selected_units, with_derived
from schemas.calendar import Term
from schemas.specs.extract import Entitlement, Extract, ExtractError, check_entitled
from schemas.specs.publication import PublicationError


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


def extract_rows(frame: pl.DataFrame, extract: Extract, entitlement: Entitlement, term: Term,
                 key: bytes | None = None) -> pl.DataFrame:
    """The extract's rows: one per unit (record level, treated per the entitlement) or one per group."""
    check_entitled(extract, entitlement)
    try:
        units = selected_units(with_derived(frame, extract.sources, term), extract, term)
    except PublicationError as error:
        raise ExtractError(str(error)) from None
    if extract.columns:
        return units.select(withheld_if_opted_out(treated(column, field, entitlement, key), column, field, extract)
                            for column, field in extract.columns)
    return units.group_by(list(extract.by)).agg(
        pl.col(s.count_unique).n_unique().alias(s.col_name) if s.count_unique else pl.col(s.sum).sum().alias(s.col_name)
        for s in extract.summaries).sort(list(extract.by))


def extract_made(extract: Extract, rows: int, queries: dict[str, int] | None = None) -> dict:
    """An extract as the auditor report lists it: what, for whom, how many rows, and the receiver's validation
    queries it raises (rule -> count; a DfE XML return)."""
    return {"name": extract.name, "title": extract.title, "recipient": extract.recipient, "rows": rows,
            **({"queries": queries} if queries else {})}
