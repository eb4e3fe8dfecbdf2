"""Identifier formats and check characters, as polars expressions.

One implementation serves both the synthetic generator (which computes check characters to build valid
identifiers) and validation (which recomputes them to reject bad ones), so the two can never disagree.
Sources and worked examples: ../shared/docs/data-standards.md section 1; the tests replay those examples.
"""

from __future__ import annotations

import polars as pl

UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
"""The 23 letters a UPN may use (no I, O or S); position in this string is the letter's value."""

UPN_PATTERN = rf"^[{UPN_LETTERS}]\d{{12}}$|^[{UPN_LETTERS}]\d{{11}}[{UPN_LETTERS}]$"
ULN_PATTERN = r"^[1-9]\d{9}$"
NINO_PATTERN = r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$"
NINO_UNALLOCATED_PREFIXES = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")
NASS_PATTERN = r"^\d{2}(0[1-9]|1[0-2])\d{5,7}$"
POSTCODE_PATTERN = (
    r"^(GIR 0AA|(?:[A-PR-UWYZ]\d[\dA-HJKSTUW]?|[A-PR-UWYZ][A-HK-Y]\d[\dABEHMNPRVWXY]?) \d[ABD-HJLNP-UW-Z]{2})$"
)
POSTCODE_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"

_UPN_LETTER_VALUE = {letter: value for value, letter in enumerate(UPN_LETTERS)}
_UPN_VALUE_LETTER = {value: letter for value, letter in enumerate(UPN_LETTERS)}


def weighted_digit_sum(digits: pl.Expr, weights: range) -> pl.Expr:
    """Sum of each digit times its weight, for a run of len(weights) digits.

    The run is cast to one integer and its digits taken arithmetically: a single parse per value instead of
    one per character, which matters at nine million rows. Callers check the shape (UPN_PATTERN,
    ULN_PATTERN) first: a run with a sign or of another length gives a meaningless sum.
    """
    n = len(weights)
    number = digits.cast(pl.Int64, strict=False)
    return pl.sum_horizontal(
        [(number // 10 ** (n - 1 - i)) % 10 * w for i, w in enumerate(weights)], ignore_nulls=False
    )


def upn_check_letter(body: pl.Expr) -> pl.Expr:
    """The check letter for the 12 characters that follow it (LA, establishment, year, serial).

    A temporary UPN ends in a letter, which counts as its position in UPN_LETTERS. Null when the body is
    not 11 digits followed by a digit or a UPN letter.
    """
    last = body.str.slice(11, 1)
    last_value = pl.coalesce(
        last.cast(pl.Int64, strict=False),
        last.replace_strict(_UPN_LETTER_VALUE, default=None, return_dtype=pl.Int64),
    )
    total = weighted_digit_sum(body.str.slice(0, 11), weights=range(2, 13)) + last_value * 13
    well_formed = body.str.len_chars() == 12
    return (
        pl.when(well_formed)
        .then((total % 23).replace_strict(_UPN_VALUE_LETTER, default=None, return_dtype=pl.String))
        .otherwise(None)
    )


def is_valid_upn(upn: pl.Expr) -> pl.Expr:
    """Shape and check letter; the LA code in characters 2-4 is a separate rule (DfE 1530)."""
    return upn.str.contains(UPN_PATTERN).fill_null(False) & (
        upn.str.slice(0, 1) == upn_check_letter(upn.str.slice(1, 12))
    ).fill_null(False)


def upn_la_code(upn: pl.Expr) -> pl.Expr:
    """The 3-digit LA code of the school that allocated the UPN."""
    return upn.str.slice(1, 3)


def uln_check_digit(stem: pl.Expr) -> pl.Expr:
    """Check digit for a 9-digit ULN stem; null where the stem has none (weighted sum divisible by 11)."""
    remainder = weighted_digit_sum(stem, weights=range(10, 1, -1)) % 11
    return pl.when((remainder != 0) & (stem.str.len_chars() == 9)).then(10 - remainder).otherwise(None)


def is_valid_uln(uln: pl.Expr) -> pl.Expr:
    return uln.str.contains(ULN_PATTERN).fill_null(False) & (
        uln.str.slice(9, 1).cast(pl.Int64, strict=False) == uln_check_digit(uln.str.slice(0, 9))
    ).fill_null(False)


def is_valid_nino(nino: pl.Expr) -> pl.Expr:
    return (
        nino.str.contains(NINO_PATTERN).fill_null(False)
        & ~nino.str.slice(0, 2).is_in(NINO_UNALLOCATED_PREFIXES).fill_null(False)
    )


def is_valid_nass(nass: pl.Expr) -> pl.Expr:
    return nass.str.contains(NASS_PATTERN).fill_null(False)


def is_valid_postcode(postcode: pl.Expr) -> pl.Expr:
    """Format only: existence needs the ONS Postcode Directory."""
    return postcode.str.contains(POSTCODE_PATTERN).fill_null(False)


def check_values(check, values: list[str | None]) -> list[bool]:
    """Apply one of the is_valid_* checks to plain strings, for tests and one-off use."""
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return frame.select(check(pl.col("v"))).to_series().to_list()
