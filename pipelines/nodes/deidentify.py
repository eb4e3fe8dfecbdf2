"""De-identification for record-level extracts: keyed pseudonyms and generalised dates and postcodes.

Pure: the key arrives as bytes from the caller (pipelines/store/keys.py reads it from the environment or a Prefect
Secret), never from code or config. A pseudonym is HMAC-SHA-256 over the normalised identifier under the
recipient's own key: the same child links across that recipient's extracts, a different recipient cannot link
them, and without the key a UPN cannot be brute-forced from its pseudonym (a plain hash of a 13-character UPN
could be: data-standards.md section 7).
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

KEY_BYTES_MIN = 32  # a 256-bit key for HMAC-SHA-256


class WeakKey(ValueError):
    """A pseudonymisation key that is too weak to use."""


def pseudonyms(values: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA-256 (hex) of each value, trimmed and upper-cased first so that ' n123…' and 'N123…' agree."""
    if len(key) < KEY_BYTES_MIN:
        raise WeakKey(f"a pseudonymisation key must be at least {KEY_BYTES_MIN} bytes, not {len(key)}")
    normal = values.cast(pl.String).str.strip_chars().str.to_uppercase()
    return normal.map_elements(lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest(), return_dtype=pl.String)


def month_of_birth(dates: pl.Expr) -> pl.Expr:
    """YYYY-MM: enough for age in months, not a full date of birth."""
    return dates.dt.strftime("%Y-%m")


def postcode_district(postcodes: pl.Expr) -> pl.Expr:
    """The outward code (LE1 of LE1 6XN): about 10,000 households."""
    return postcodes.str.strip_chars().str.to_uppercase().str.extract(r"^([A-Z]{1,2}[0-9][0-9A-Z]?)\s*[0-9][A-Z]{2}$")


def postcode_sector(postcodes: pl.Expr) -> pl.Expr:
    """The outward code and the inward digit (LE1 6 of LE1 6XN): about 3,000 households."""
    parts = postcodes.str.strip_chars().str.to_uppercase().str.extract_groups(r"^([A-Z]{1,2}[0-9][0-9A-Z]?)\s*([0-9])[A-Z]{2}$")
    return pl.concat_str(parts.struct.field("1"), pl.lit(" "), parts.struct.field("2"))


GENERALISATIONS = {f.__name__: f for f in (month_of_birth, postcode_district, postcode_sector)}
