"""Validation throughput: python -m bench.validation SCALE WORK_DIR.

Three timings in one process over the same generated exports (2% faults):
- read: lareturns' ingest of every file (the cost of just reading);
- validate: lareturns' row-level validation (polars, compiled from the contracts);
- baseline: the same rules written as plain DuckDB SQL over the same files (read_csv, then one query).
The SQL is generated here per check kind, only for this comparison; the run checks that both quarantine
exactly the same rows, so the figures compare like with like.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb

from bench.harness import Measurement, emit, peak_rss_mb, timed
from pipelines.nodes.validation import validate_frame
from pipelines.store.exports import read_export
from pipelines.synthetic.generate import generate
from schemas.calendar import Term
from schemas.config import load_mapping
from schemas.contract import Column, Contract, RuleSpec, load_contract
from schemas.identifiers import NASS_PATTERN, NINO_PATTERN, POSTCODE_PATTERN, ULN_PATTERN, UPN_LETTERS, UPN_PATTERN
from schemas.lookups import codeset
from schemas.rules import DATE_FORMATS, FLAG_VALUES, Period, allowed_codes, known_la_codes

DATASETS = ("pupils", "early_years", "destinations", "ncmp")
PERIOD = Period(Term(2025, "spring"))
SQL_FORMATS = {"urn": r"^\d{6,7}$", "laestab": r"^\d{7}$", "eligibility_code": r"^\d{11}$", "nino": NINO_PATTERN,
               "nass": NASS_PATTERN, "postcode": POSTCODE_PATTERN, "upn": UPN_PATTERN, "uln": ULN_PATTERN}


def q(name: str) -> str:
    return f'"{name}"'


def literal_list(values) -> str:
    return "(" + ", ".join("'" + str(v).replace("'", "''") + "'" for v in values) + ")"


def normalised_sql(c: Column) -> str:
    text = f"nullif(trim({q(c.name)}), '')"
    if c.type in ("code", "code_list", "flag") or c.format:
        text = f"lower({text})" if c.case == "lower" else f"upper({text})"
    if c.format == "postcode":
        spaced = f"regexp_replace({text}, '\\s+', ' ', 'g')"
        text = f"CASE WHEN regexp_matches({spaced}, '^[A-Z0-9]{{5,7}}$') THEN left({spaced}, length({spaced}) - 3) || ' ' || right({spaced}, 3) ELSE {spaced} END"
    if c.type == "flag":
        text = "CASE " + " ".join(f"WHEN {text} = '{k}' THEN '{v}'" for k, v in FLAG_VALUES.items()) + f" ELSE {text} END"
    return f"{text} AS {q(c.name)}"


def typed_sql(c: Column) -> str | None:
    name = q(c.name)
    if c.type == "date":
        return "coalesce(" + ", ".join(f"try_strptime({name}, '{f}')::DATE" for f in DATE_FORMATS) + f") AS {q('t_' + c.name)}"
    if c.type == "int":
        return f"try_cast({name} AS BIGINT) AS {q('t_' + c.name)}"
    if c.type == "decimal":
        return f"try_cast({name} AS DOUBLE) AS {q('t_' + c.name)}"
    return None


def upn_valid_sql(name: str) -> str:
    digits = " + ".join(f"try_cast(substr({name}, {k}, 1) AS INTEGER) * {k}" for k in range(2, 13))
    last = f"coalesce(try_cast(substr({name}, 13, 1) AS INTEGER), strpos('{UPN_LETTERS}', substr({name}, 13, 1)) - 1)"
    letter = f"substr('{UPN_LETTERS}', (({digits} + {last} * 13) % 23)::INTEGER + 1, 1)"
    return f"(regexp_matches({name}, '{UPN_PATTERN}') AND substr({name}, 1, 1) = {letter})"


def uln_valid_sql(name: str) -> str:
    total = " + ".join(f"try_cast(substr({name}, {i + 1}, 1) AS INTEGER) * {10 - i}" for i in range(9))
    return f"(regexp_matches({name}, '{ULN_PATTERN}') AND ({total}) % 11 <> 0 AND try_cast(substr({name}, 10, 1) AS INTEGER) = 10 - ({total}) % 11)"


def column_checks(contract: Contract, c: Column) -> list[tuple[str, str]]:
    rid, v = f"{contract.prefix}-{c.tag}", q(c.name)
    out = []
    if c.required:
        out.append((f"{rid}-REQUIRED", f"{v} IS NULL"))
    if c.format in ("upn", "uln"):
        valid = upn_valid_sql(v) if c.format == "upn" else uln_valid_sql(v)
        out.append((f"{rid}-CHECK", f"{v} IS NOT NULL AND NOT coalesce({valid}, false)"))
        if c.format == "upn":
            out.append((f"{rid}-LA", f"coalesce({valid}, false) AND substr({v}, 2, 3) NOT IN {literal_list(known_la_codes())}"))
    elif c.format:
        out.append((f"{rid}-FORMAT", f"{v} IS NOT NULL AND NOT regexp_matches({v}, '{SQL_FORMATS[c.format]}')"))
    if c.type == "code":
        out.append((f"{rid}-CODE", f"{v} IS NOT NULL AND {v} NOT IN {literal_list(allowed_codes(c, PERIOD))}"))
    if c.type == "code_list":
        codes = literal_list(allowed_codes(c, PERIOD))
        out.append((f"{rid}-CODE", f"{v} IS NOT NULL AND NOT list_bool_and(list_transform(string_split({v}, '{c.separator}'), lambda x: x IN {codes}))"))
    if c.type == "flag":
        out.append((f"{rid}-FORMAT", f"{v} IS NOT NULL AND {v} NOT IN ('Y', 'N')"))
    if c.type in ("date", "int", "decimal"):
        t = q("t_" + c.name)
        out.append((f"{rid}-FORMAT", f"{v} IS NOT NULL AND {t} IS NULL"))
        low, high = ((PERIOD.date(c.not_before) if c.not_before else None, PERIOD.date(c.not_after) if c.not_after else None)
                     if c.type == "date" else (c.min, c.max))
        as_sql = (lambda d: f"DATE '{d}'") if c.type == "date" else str
        parts = ([f"{t} < {as_sql(low)}"] if low is not None else []) + ([f"{t} > {as_sql(high)}"] if high is not None else [])
        if parts:
            out.append((f"{rid}-RANGE", " OR ".join(parts)))
    return out


def age_sql(dob: str) -> str:
    return f"({PERIOD.academic_year} - year({dob}) - CASE WHEN month({dob}) >= 9 THEN 1 ELSE 0 END)"


def cross_check(spec: RuleSpec) -> str:
    p = spec.params
    if spec.check == "unique":
        keys = ", ".join(q(k) for k in p["columns"])
        later = f"row_number() OVER (PARTITION BY {keys} ORDER BY source_row) > 1 AND " + " AND ".join(f"{q(k)} IS NOT NULL" for k in p["columns"])
        if "pair_column" in p:
            low, high = sorted(p["pair_values"])
            s = q(p["pair_column"])
            pair = (f"count(*) OVER (PARTITION BY {keys}) = 2 AND min({s}) OVER (PARTITION BY {keys}) = '{low}' "
                    f"AND max({s}) OVER (PARTITION BY {keys}) = '{high}'")
            return f"({later}) AND NOT ({pair})"
        return later
    if spec.check == "nc_year_age":
        ages = codeset("nc_year", PERIOD.academic_year).drop_nulls("age_31_august")
        expected = "CASE nc_year " + " ".join(f"WHEN '{c}' THEN {a}" for c, a in ages.select("code", "age_31_august").iter_rows()) + " END"
        gap = f"abs({age_sql(q('t_date_of_birth'))} - ({expected}))"
        return f"{gap} >= {p['min_gap']} AND {gap} <= {p.get('max_gap', 999)}"
    if spec.check == "required_when":
        return f"{q(p['column'])} IS NULL AND {q(p['when_column'])} IN {literal_list(p['when_in'])}"
    if spec.check == "not_both":
        return " AND ".join(f"{q(c)} IS NOT NULL" for c in p["columns"])
    if spec.check == "flag_matches_code":
        return f"({q(p['flag'])} = 'Y') <> ({q(p['column'])} IN {literal_list(p['codes'])})"
    if spec.check == "not_greater":
        return f"{q('t_' + p['column'])} > {q('t_' + p['than'])}"
    if spec.check == "within_code_limit":
        limits = codeset(p["codeset"], PERIOD.academic_year).select("code", p["attribute"])
        limit = "CASE " + q(p["code_column"]) + " " + " ".join(f"WHEN '{c}' THEN {v}" for c, v in limits.iter_rows()) + " END"
        return f"{q('t_' + p['column'])} > {limit}"
    if spec.check in ("entitlement_age", "below_school_age"):
        term = q(p["term_column"])
        start = (f"make_date(try_cast(left({term}, 4) AS INTEGER), CASE substr({term}, 6) WHEN 'autumn' THEN 9 "
                 "WHEN 'spring' THEN 1 WHEN 'summer' THEN 4 END, 1)")
        if spec.check == "below_school_age":
            return f"({q('t_' + p['dob_column'])} + to_years(5)) < {start}"
        months = codeset("ey_entitlement", PERIOD.academic_year).select("code", "min_age_months")
        m = "CASE " + q(p["code_column"]) + " " + " ".join(f"WHEN '{c}' THEN {v}" for c, v in months.iter_rows()) + " END"
        return f"({q('t_' + p['dob_column'])} + to_months({m})) >= {start}"
    if spec.check == "age_between":
        age = age_sql(q("t_" + p["dob_column"]))
        outside = f"({age} < {p['min_age']} OR {age} > {p['max_age']})"
        return f"{outside} AND {q(p['unless_flag'])} <> 'Y'" if "unless_flag" in p else outside
    raise ValueError(spec.check)


def baseline_sql(contract: Contract, path: Path) -> str:
    checks = [ch for c in contract.columns for ch in column_checks(contract, c)]
    checks += [(r.id, cross_check(r)) for r in contract.rules]
    errors = {r.id for r in contract.rules if r.severity == "error"} | {rid for rid, _ in checks if rid not in {r.id for r in contract.rules}}
    typed = [t for t in (typed_sql(c) for c in contract.columns) if t]
    flags = ", ".join(f"coalesce({sql}, false) AS {q(rid)}" for rid, sql in checks)
    failed = " OR ".join(q(rid) for rid, _ in checks if rid in errors)
    return f"""
    WITH raw AS (SELECT row_number() OVER () AS source_row, * FROM read_csv('{path}', all_varchar = true, header = true, delim = ',', quote = '"', escape = '"')),
    norm AS (SELECT source_row, {', '.join(normalised_sql(c) for c in contract.columns)} FROM raw),
    typed AS (SELECT *, {', '.join(typed)} FROM norm),
    flags AS (SELECT source_row, {flags} FROM typed)
    SELECT source_row FROM flags WHERE {failed} ORDER BY source_row
    """


def main(scale: str, work: Path) -> None:
    data = work / "input"
    if not (data / "pupils.csv").exists():
        generate(data, seed=1, scale=scale, fault_rate=0.02)
    specs = load_mapping(None)
    ours, read_seconds, validate_seconds, rows = {}, 0.0, 0.0, 0
    for name in DATASETS:  # one dataset at a time, so memory is bounded by the largest file
        start = time.perf_counter()
        frame = read_export(data, specs[name]).frame
        middle = time.perf_counter()
        ours[name] = sorted(validate_frame(frame, load_contract(name), PERIOD).quarantine["source_row"].to_list())
        read_seconds += middle - start
        validate_seconds += time.perf_counter() - middle
        rows += frame.height
        del frame
    peak = peak_rss_mb()
    theirs = {}

    def sql_all() -> int:
        with duckdb.connect() as db:
            for name in DATASETS:
                theirs[name] = [r[0] for r in db.execute(baseline_sql(load_contract(name), data / f"{name}.csv")).fetchall()]
        return rows

    _, sql_seconds, _ = timed(sql_all)
    emit(Measurement(f"read + validate --scale {scale}", rows, read_seconds + validate_seconds, peak,
                     "DuckDB SQL: read_csv + the same rules", sql_seconds,
                     {"read_s": round(read_seconds, 2), "validate_s": round(validate_seconds, 2),
                      "validate_over_read": round(validate_seconds / read_seconds, 2),
                      "same_quarantine_as_sql": all(ours[n] == theirs[n] for n in DATASETS),
                      "quarantined": sum(len(v) for v in ours.values()), "peak_mb_after_sql": round(peak_rss_mb())}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
