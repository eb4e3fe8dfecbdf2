"""Contracts compiled to polars expressions: normalising, parsing, and one `fails` expression per rule.

Every rule fires only on its own concern: a missing date is REQUIRED's business, so range and age rules treat
null as passing. That way each defect is reported once, under the rule an analyst would look for.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import polars as pl

from schemas.calendar import TERM_START_MONTHS, Term, academic_year_end, academic_year_label
from schemas.contract import Column, Contract, RuleSpec
from schemas.identifiers import is_valid_nass, is_valid_nino, is_valid_postcode, is_valid_uln, is_valid_upn, upn_la_code
from schemas.lookups import codeset, dfe_lookup

DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y")
FLAG_VALUES = {"Y": "Y", "YES": "Y", "TRUE": "Y", "1": "Y", "N": "N", "NO": "N", "FALSE": "N", "0": "N"}
PSEUDO_LA_CODES = ("001", "002", "003", "004", "005")
FORMAT_CHECKS = {
    "upn": ("CHECK", is_valid_upn, "is not a valid UPN (wrong shape or check letter)"),
    "uln": ("CHECK", is_valid_uln, "is not a valid ULN (wrong shape or check digit)"),
    "nino": ("FORMAT", is_valid_nino, "is not a valid NI number"),
    "nass": ("FORMAT", is_valid_nass, "is not a valid NASS number (YYMM then 5 to 7 digits)"),
    "postcode": ("FORMAT", is_valid_postcode, "is not a valid postcode"),
    "urn": ("FORMAT", lambda c: c.str.contains(r"^\d{6,7}$"), "is not a URN (6 or 7 digits)"),
    # Ofsted's early years registrations: EY and 6 digits since 2008, 6 or 7 digits before and for some since [I]
    "ofsted_urn": ("FORMAT", lambda c: c.str.contains(r"^(EY\d{6}|\d{6,7})$"),
                   "is not an Ofsted URN (EY and 6 digits, or 6 or 7 digits)"),
    "laestab": ("FORMAT", lambda c: c.str.contains(r"^\d{7}$"), "is not a LAESTAB (7 digits)"),
    "eligibility_code": ("FORMAT", lambda c: c.str.contains(r"^\d{11}$"), "is not an eligibility code (11 digits)"),
    "phone": ("FORMAT", lambda c: c.str.contains(r"^\+?[0-9][0-9 ()-]{8,18}[0-9]$"), "is not a phone number"),
    "la_code": ("LA", lambda c: c.is_in([*known_la_codes(), *NCCIS_AREA_CODES]),
                "is not an LA code (an English LA's 3 digits, or 000 abroad, 001 Wales, 002 Scotland, 003 elsewhere "
                "in the UK, 004 unknown)"),
}
NCCIS_AREA_CODES = ("000", "001", "002", "003", "004")  # NCCIS's LEAType codes for places outside English LAs
SOURCE_FIELDS = "source_fields"  # set by ingest: how many fields a CSV row had, where not as many as the header
MAX_FIELD_CHARS = 4_000  # far beyond any MIS field; a longer one is a broken export or an attack, never a value
FORMULA_START = r"^[=+\-@\t\r]"  # what a spreadsheet reads as the start of a formula (OWASP CSV injection)


@dataclass(frozen=True)
class Period:
    """What dates in a contract are measured against: the run's term, so an autumn run checks admissions against
    the October census day and a spring run against the January one, and the term's academic year."""

    term: Term

    @property
    def academic_year(self) -> int:
        return self.term.academic_year

    @property
    def anchors(self) -> dict[str, dt.date]:
        return {
            "census": self.term.census_date,
            "year_start": Term(self.academic_year, "autumn").start,
            "year_end": academic_year_end(self.academic_year),
            "census_month_end": self.term.census_month_end,  # NCCIS's period end for the term's census month
        }

    def date(self, spec: str) -> dt.date:
        """An anchor such as 'census' or 'year_start-6y'."""
        match = re.fullmatch(r"(\w+?)(?:-(\d+)y)?", spec)
        if not match or match.group(1) not in self.anchors:
            raise ValueError(f"date bound {spec!r} is not an anchor ({', '.join(self.anchors)}) with an optional -Ny")
        day = self.anchors[match.group(1)]
        years = int(match.group(2) or 0)
        return day.replace(year=day.year - years, day=min(day.day, 28) if day.month == 2 else day.day)


@dataclass(frozen=True)
class CompiledRule:
    id: str
    severity: str
    message: str
    fails: pl.Expr
    whole_file: tuple[str, ...] = ()  # columns a rule that compares rows (keys) needs; empty: row by row


def typed_name(column: str) -> str:
    return f"__typed_{column}"


def normalised(column: Column) -> pl.Expr:
    """Trim, blank to null, upper-case codes and identifiers, repair postcode spacing and flag spellings."""
    text = pl.col(column.name).str.strip_chars().replace("", None)
    if column.type in ("code", "code_list", "flag") or column.format:
        text = text.str.to_lowercase() if column.case == "lower" else text.str.to_uppercase()
    if column.format == "postcode":
        text = text.str.replace_all(r"\s+", " ")
        text = pl.when(text.str.contains(r"^[A-Z0-9]{5,7}$")).then(
            text.str.slice(0, text.str.len_chars() - 3) + " " + text.str.slice(-3)
        ).otherwise(text)
    if column.type == "code_list":
        text = text.str.replace_all(r"\s*" + re.escape(column.separator) + r"\s*", column.separator)
    if column.type == "flag":
        text = text.replace(FLAG_VALUES)
    return text.alias(column.name)


def typed(column: Column) -> pl.Expr | None:
    """The parsed value of a date or number column; null where the text does not parse."""
    source = pl.col(column.name)
    if column.type == "date":
        parsed = pl.coalesce([source.str.to_date(fmt, strict=False) for fmt in DATE_FORMATS])
    elif column.type == "int":
        parsed = source.cast(pl.Int64, strict=False)
    elif column.type == "decimal":
        parsed = source.cast(pl.Float64, strict=False)
    else:
        return None
    return parsed.alias(typed_name(column.name))


def allowed_codes(column: Column, period: Period) -> list[str]:
    if column.codeset:
        return codeset(column.codeset, period.academic_year)["code"].to_list()
    return [
        code.format(year_start_year=period.academic_year, year_end_year=period.academic_year + 1)
        for code in column.allowed
    ]


def known_la_codes() -> list[str]:
    codes = dfe_lookup("las")["old_la_code"].to_list()
    return sorted({c for c in codes if re.fullmatch(r"\d{3}", c)} | set(PSEUDO_LA_CODES))


def column_rules(contract: Contract, column: Column, period: Period) -> list[CompiledRule]:
    rid = f"{contract.prefix}-{column.tag}"
    value = pl.col(column.name)
    present = value.is_not_null()
    rules = []
    if column.required:
        rules.append(CompiledRule(f"{rid}-REQUIRED", "error", f"{column.label} is missing", value.is_null()))
    if column.format:
        suffix, check, text = FORMAT_CHECKS[column.format]
        rules.append(CompiledRule(f"{rid}-{suffix}", "error", f"{column.label} {text}", present & ~check(value)))
        if column.format == "upn":
            rules.append(CompiledRule(
                f"{rid}-LA", "error", f"{column.label} was allocated by an LA code that does not exist (DfE 1530)",
                present & check(value) & ~upn_la_code(value).is_in(known_la_codes()),
            ))
    if column.type == "text" and not column.format:
        rules.append(CompiledRule(
            f"{rid}-FORMULA", "error", f"{column.label} starts with =, +, -, @, a tab or a carriage return, which a "
            "spreadsheet would run as a formula", present & value.str.contains(FORMULA_START)))
    if column.type in ("code", "code_list"):
        codes = allowed_codes(column, period)
        unknown = (
            ~value.is_in(codes) if column.type == "code"
            else ~value.str.split(column.separator).list.eval(pl.element().is_in(codes)).list.all()
        )
        rules.append(CompiledRule(
            f"{rid}-CODE", "error",
            f"{column.label} is not a code in the {column.codeset or 'allowed'} list for "
            f"{academic_year_label(period.academic_year)}",
            present & unknown,
        ))
    if column.type == "flag":
        rules.append(CompiledRule(f"{rid}-FORMAT", "error", f"{column.label} is not Y or N", present & ~value.is_in(["Y", "N"])))
    parsed = pl.col(typed_name(column.name))
    if column.type in ("date", "int", "decimal"):
        what = "a date (YYYY-MM-DD or DD/MM/YYYY)" if column.type == "date" else "a number"
        rules.append(CompiledRule(f"{rid}-FORMAT", "error", f"{column.label} is not {what}", present & parsed.is_null()))
        low, high = _bounds(column, period)
        if low is not None or high is not None:
            outside = (parsed < low if low is not None else pl.lit(False)) | (parsed > high if high is not None else pl.lit(False))
            rules.append(CompiledRule(f"{rid}-RANGE", "error", f"{column.label} is outside {_describe(low, high)}", outside))
    return rules


def _bounds(column: Column, period: Period):
    if column.type == "date":
        return (period.date(column.not_before) if column.not_before else None,
                period.date(column.not_after) if column.not_after else None)
    return column.min, column.max


def _describe(low, high) -> str:
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f"the range (at least {low})" if low is not None else f"the range (at most {high})"


def age_on_31_august(dob: pl.Expr, period: Period) -> pl.Expr:
    return period.academic_year - dob.dt.year() - (dob.dt.month() >= 9).cast(pl.Int32)


def term_start(term: pl.Expr) -> pl.Expr:
    year = term.str.slice(0, 4).cast(pl.Int32, strict=False)
    month = term.str.slice(5).replace_strict(TERM_START_MONTHS, default=None, return_dtype=pl.Int8)
    return pl.date(year, month, 1)


def cross_rule(spec: RuleSpec, period: Period, contract: Contract) -> pl.Expr:
    p = spec.params
    if spec.check == "unique":
        keys = p["columns"]
        key = pl.struct(keys) if len(keys) > 1 else pl.col(keys[0])
        fails = ~key.is_first_distinct() & pl.all_horizontal([pl.col(k).is_not_null() for k in keys])
        if "pair_column" in p:
            low, high = sorted(p["pair_values"])
            pair = pl.col(p["pair_column"])
            pair_ok = (pl.len().over(keys) == 2) & (pair.min().over(keys) == low) & (pair.max().over(keys) == high)
            fails = fails & ~pair_ok
        return fails
    if spec.check == "nc_year_age":
        expected_age = dict(codeset("nc_year", period.academic_year).select("code", "age_31_august").drop_nulls().iter_rows())
        expected = pl.col(p.get("nc_column", "nc_year")).replace_strict(
            {k: int(v) for k, v in expected_age.items()}, default=None, return_dtype=pl.Int32)
        gap = (age_on_31_august(pl.col(typed_name(p.get("dob_column", "date_of_birth"))), period) - expected).abs()
        return (gap >= p["min_gap"]) & (gap <= p.get("max_gap", 999))
    if spec.check == "required_when":
        return pl.col(p["column"]).is_null() & pl.col(p["when_column"]).is_in(p["when_in"])
    if spec.check == "only_when":
        return pl.col(p["column"]).is_not_null() & ~pl.col(p["when_column"]).is_in(p["when_in"]).fill_null(False)
    if spec.check == "code_when":  # a code list that must (present) or must not hold a code in these rows
        separator = next(c.separator for c in contract.columns if c.name == p["column"])
        holds = pl.col(p["column"]).str.split(separator).list.eval(pl.element().str.strip_chars()).list.contains(p["code"])
        return pl.col(p["when_column"]).is_in(p["when_in"]) & (holds.fill_null(False) != p["present"])
    if spec.check == "equal":
        return pl.col(p["column"]) != pl.col(p["other"])
    if spec.check == "multiple_of":
        value = pl.col(typed_name(p["column"]))
        return ((value / p["step"]).round() * p["step"] - value).abs() > 1e-9
    if spec.check == "any_of":
        return pl.all_horizontal([pl.col(c).is_null() for c in p["columns"]])
    if spec.check == "not_both":
        return pl.all_horizontal([pl.col(c).is_not_null() for c in p["columns"]])
    if spec.check == "flag_matches_code":
        return (pl.col(p["flag"]) == "Y") != pl.col(p["column"]).is_in(p["codes"])
    if spec.check == "not_greater":
        return pl.col(typed_name(p["column"])) > pl.col(typed_name(p["than"]))
    if spec.check == "within_code_limit":
        limits = codeset(p["codeset"], period.academic_year).select("code", p["attribute"])
        limit = pl.col(p["code_column"]).replace_strict(
            dict(limits.iter_rows()), default=None, return_dtype=pl.String).cast(pl.Float64)
        return pl.col(typed_name(p["column"])) > limit
    if spec.check == "entitlement_age":
        months = dict(codeset("ey_entitlement", period.academic_year).select("code", "min_age_months").iter_rows())
        qualifying = pl.col(typed_name(p["dob_column"])).dt.offset_by(
            pl.col(p["code_column"]).replace_strict(months, default=None, return_dtype=pl.String) + "mo")
        return qualifying >= term_start(pl.col(p["term_column"]))
    if spec.check == "below_school_age":  # compulsory school age starts the term after the fifth birthday
        return pl.col(typed_name(p["dob_column"])).dt.offset_by("5y") < term_start(pl.col(p["term_column"]))
    if spec.check == "age_between":
        age = age_on_31_august(pl.col(typed_name(p["dob_column"])), period)
        outside = (age < p["min_age"]) | (age > p["max_age"])
        return outside & (pl.col(p["unless_flag"]) != "Y") if "unless_flag" in p else outside
    raise ValueError(f"no compiler for check {spec.check!r}")


def row_rules(contract: Contract) -> list[CompiledRule]:
    """Rules on the row as a record, before any column's: its shape in the file and bytes no field may hold."""
    fields = [pl.col(c.name) for c in contract.columns]
    return [
        CompiledRule(f"{contract.prefix}-ROW-FIELDS", "error", "the row has a different number of fields from the header",
                     pl.col(SOURCE_FIELDS).is_not_null()),
        CompiledRule(f"{contract.prefix}-ROW-NUL", "error", "a field holds a NUL byte",
                     pl.any_horizontal([f.str.contains("\x00", literal=True) for f in fields])),
        CompiledRule(f"{contract.prefix}-ROW-LENGTH", "error", f"a field is longer than {MAX_FIELD_CHARS:,} characters",
                     pl.any_horizontal([f.str.len_chars() > MAX_FIELD_CHARS for f in fields])),
    ]


def compile_rules(contract: Contract, period: Period) -> list[CompiledRule]:
    rules = row_rules(contract) + [rule for column in contract.columns for rule in column_rules(contract, column, period)]
    rules += [CompiledRule(s.id, s.severity, s.message, cross_rule(s, period, contract), whole_file_columns(s))
              for s in contract.rules]
    return [CompiledRule(r.id, r.severity, r.message, r.fails.fill_null(False), r.whole_file) for r in rules]


def whole_file_columns(spec: RuleSpec) -> tuple[str, ...]:
    """Key rules compare rows across the whole file; every other rule looks at one row."""
    if spec.check != "unique":
        return ()
    return (*spec.params["columns"], *([spec.params["pair_column"]] if "pair_column" in spec.params else []))

