"""An EES open-data screener for the tests, after eesyscreener's checks (data-standards.md 6.5).

Written from the standard, independently of pipelines/nodes/ees.py and outputs/ees.py: it reads the files as an uploader would and
returns the failures, each naming the check. Geography and harmonised values are checked against the DfE's
own lookups.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl


def text_csv(path: Path) -> pl.DataFrame:
    """Every cell as the text in the file, an empty cell as ''."""
    return pl.read_csv(path, infer_schema=False).with_columns(pl.all().fill_null(""))


from schemas.lookups import dfe_lookup

OPTIONAL_META = ("filter_default", "parent_filter")
REQUIRED_DATA = ["time_period", "time_identifier", "geographic_level", "country_code", "country_name"]
REQUIRED_META = ["col_name", "col_type", "label", "indicator_grouping", "indicator_unit", "indicator_dp",
                 "filter_hint", "filter_grouping_column"]
TERM_IDENTIFIERS = {"Autumn term", "Spring term", "Summer term"}
ACADEMIC_YEAR = {"Academic year"}  # another group: a file holds one or the other (precheck_time_id_mix)
LEVEL_COLUMNS = {
    "National": [],
    "Regional": ["region_code", "region_name"],
    "Local authority": ["old_la_code", "new_la_code", "la_name"],
    "Local authority district": ["lad_code", "lad_name"],
    "School": ["school_urn", "school_name", "school_laestab"],
}
LOWER_LEVEL_COLUMNS = {"Local authority": ["lad_code", "lad_name", "school_urn", "school_name", "school_laestab"],
                       "Local authority district": ["school_urn", "school_name", "school_laestab"]}
NULL_LIKE = {"NULL", "Null", "null", "NA", "na"}
LEGACY = {"N/A", "n/a", ".", "..", "-", "~", ":"}
SYMBOLS = {"z", "x", "c", "low", "u", "k"}
SMUSHED = re.compile(r"male|female|asian|white|british|arab|black|mixed")


def screen(data_path: Path) -> list[str]:
    failures = []
    meta_path = data_path.with_name(data_path.name.removesuffix(".csv") + ".meta.csv")
    if not re.fullmatch(r"[a-z0-9_-]+\.csv", data_path.name) or not meta_path.exists():
        return [f"filename: {data_path.name} needs a lower-case name and a .meta.csv pair"]
    data, meta = text_csv(data_path), text_csv(meta_path)
    if [c for c in meta.columns if c not in OPTIONAL_META] != REQUIRED_META:
        failures.append(f"meta columns: {meta.columns}")
    missing = [c for c in REQUIRED_DATA if c not in data.columns]
    if missing:
        return failures + [f"data columns missing: {missing}"]
    failures += [f"column name {c!r}" for c in data.columns if not re.fullmatch(r"[a-z][a-z0-9_]*", c)]
    failures += _meta(data, meta) + _time(data) + _geography(data) + _filters(data, meta) + _values(data, meta)
    return failures


def outside_dictionary(data_path: Path) -> list[str]:
    """The file's filter and indicator names, and its filter values, that the DfE data dictionary does not hold
    (data-dictionary.csv: the harmonised names the EES API expects): each an entry naming the column."""
    dictionary = dfe_lookup("data-dictionary")
    meta = text_csv(data_path.with_name(data_path.name.removesuffix(".csv") + ".meta.csv"))
    data = text_csv(data_path)
    out = []
    for name, kind in meta.select("col_name", "col_type").iter_rows():
        known = dictionary.filter((pl.col("col_name") == name) & (pl.col("col_type") == kind))
        if known.is_empty():
            out.append(f"{kind.lower()} {name}")
        elif kind == "Filter":
            items = set(known["filter_item"].to_list()) | {"Total"}
            out += [f"filter {name} value {value!r}" for value in sorted(set(data[name]) - items)]
    return out


def _meta(data: pl.DataFrame, meta: pl.DataFrame) -> list[str]:
    out = []
    if meta["label"].is_duplicated().any() or (meta["label"] == "").any():
        out.append("meta: labels must be present and unique")
    for row in meta.iter_rows(named=True):
        if row["col_name"] not in data.columns:
            out.append(f"meta: {row['col_name']} is not in the data")
        if row["col_type"] not in ("Filter", "Indicator"):
            out.append(f"meta: col_type {row['col_type']!r}")
        if row["col_type"] == "Filter" and (row["indicator_grouping"] or row["indicator_unit"] or row["indicator_dp"]):
            out.append(f"meta: indicator fields set on filter {row['col_name']}")
        if row["col_type"] == "Indicator":
            if row["filter_hint"] or row["filter_grouping_column"] or row.get("filter_default"):
                out.append(f"meta: filter fields set on indicator {row['col_name']}")
            if row["indicator_unit"] not in ("", "%", "pp", "£", "£m", "numberstring"):
                out.append(f"meta: indicator_unit {row['indicator_unit']!r}")
            if row["indicator_dp"] and not row["indicator_dp"].isdigit():
                out.append(f"meta: indicator_dp {row['indicator_dp']!r}")
            if SMUSHED.search(row["col_name"]):
                out.append(f"indicator {row['col_name']} is smushed with a characteristic")
        if re.search(r"(^|_)(la|region|urn|ukprn|laestab|lad)(_|$)", row["col_name"]) and row["col_type"] == "Filter":
            out.append(f"meta: geography column {row['col_name']} declared as a filter")
    return out


def _time(data: pl.DataFrame) -> list[str]:
    out = []
    identifiers = set(data["time_identifier"])
    if not (identifiers <= TERM_IDENTIFIERS or identifiers <= ACADEMIC_YEAR):
        out.append(f"time_identifier values {sorted(identifiers)} are not of one group")
    for period in set(data["time_period"]):
        if not re.fullmatch(r"\d{6}", period) or int(period[4:]) != (int(period[2:4]) + 1) % 100:
            out.append(f"time_period {period!r} is not a 6-digit academic year")
    return out


def _geography(data: pl.DataFrame) -> list[str]:
    out = []
    for level in set(data["geographic_level"]):
        if level not in LEVEL_COLUMNS:
            out.append(f"geographic_level {level!r}")
            continue
        rows = data.filter(pl.col("geographic_level") == level)
        for column in LEVEL_COLUMNS[level]:
            if column not in data.columns or (rows[column] == "").any():
                out.append(f"{level} rows need {column}")
        for column in LOWER_LEVEL_COLUMNS.get(level, []):
            if column in data.columns and (rows[column] != "").any():
                out.append(f"{level} rows over-completed: {column}")
    countries = set(dfe_lookup("country").select(pl.concat_str("country_code", "country_name", separator="|")).to_series())
    if not set(data.select(pl.concat_str("country_code", "country_name", separator="|")).to_series()) <= countries:
        out.append("country code/name pair not in country.csv")
    las = dfe_lookup("las").select(pl.concat_str("old_la_code", "new_la_code", "la_name", separator="|")).to_series()
    used = data.filter(pl.col("old_la_code") != "").select(pl.concat_str("old_la_code", "new_la_code", "la_name", separator="|"))
    if not set(used.to_series()) <= set(las):
        out.append("LA codes/name not in las.csv")
    lads = set(dfe_lookup("lads").select(pl.concat_str("lad_code", "lad_name", separator="|")).to_series())
    used = data.filter(pl.col("lad_code") != "").select(pl.concat_str("lad_code", "lad_name", separator="|"))
    if not set(used.to_series()) <= lads:
        out.append("LAD code/name not in lads.csv")
    regions = set(dfe_lookup("regions").select(pl.concat_str("region_code", "region_name", separator="|")).to_series())
    if not set(data.select(pl.concat_str("region_code", "region_name", separator="|")).to_series()) <= regions:
        out.append("region code/name not in regions.csv")
    return out


def _filters(data: pl.DataFrame, meta: pl.DataFrame) -> list[str]:
    out = []
    harmonised = dfe_lookup("data-dictionary")
    listed = meta.filter(pl.col("col_type") == "Filter")
    defaults = dict(listed.select("col_name", "filter_default").iter_rows()) if "filter_default" in meta.columns else {}
    for name in listed["col_name"]:
        values, default = set(data[name]), defaults.get(name) or "Total"
        if len(values) < 2 or default not in values:
            out.append(f"filter {name}: needs two or more levels including its default ({default})")
        if any(v != v.strip() or v == "" for v in values):
            out.append(f"filter {name}: blank or padded values")
        allowed = set(harmonised.filter(pl.col("col_name") == name)["filter_item"])
        if allowed and not values <= allowed:
            out.append(f"filter {name}: values {sorted(values - allowed)} are not harmonised")
    units = [c for c in data.columns if c not in set(meta["col_name"])]
    if data.select(units + list(meta.filter(pl.col("col_type") == "Filter")["col_name"])).is_duplicated().any():
        out.append("duplicate rows over observational units and filters")
    return out


def _values(data: pl.DataFrame, meta: pl.DataFrame) -> list[str]:
    out = []
    for column in data.columns:
        if set(data[column]) & NULL_LIKE:
            out.append(f"{column}: null-like strings")
    for name in meta.filter(pl.col("col_type") == "Indicator")["col_name"]:
        bad = {v for v in data[name] if v in LEGACY or v == "" or (v not in SYMBOLS and not re.fullmatch(r"-?\d+(\.\d+)?", v))}
        if bad:
            out.append(f"indicator {name}: values {sorted(bad)[:5]}")
    return out
