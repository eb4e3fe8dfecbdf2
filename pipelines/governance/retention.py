"""Retention rules as data, and which records they expire: pure (no Prefect, DuckDB or file access).

The rules are schemas/policies/retention.toml, one per dataset: keep each record for N calendar years from a date
column, or (rule = "none") keep every record until the council sets a rule. pipelines/governance/purge.py reads the file and
applies the rules to the warehouse and the landing folder; this module only decides.

Expiry, precisely: a record dated D under an N-year rule is kept through D + N calendar years (its last day) and
expires on the day after. Last contact 2001-11-25 under 25 years: kept through 2026-11-25, deleted from 2026-11-26.
D + N years is the same day and month N years on, except that 29 February becomes 28 February when the later year
is not a leap year (2000-02-29 + 25 years is 2025-02-28), so such a record is never kept a day longer than N whole
years. A record with no date is not expired: its clock has not started (an early-years case still open). A record
whose date text cannot be read is not expired either: it is kept and counted as undated, for a person to look at,
because deleting on a guess cannot be undone.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass

import polars as pl

from schemas.rules import DATE_FORMATS
from schemas.specs.retention import RetentionError, Rule


def parse_day(text: str) -> dt.date:
    """A day given as YYYY-MM-DD (the only form accepted, so 03/04/2026 is never read the American way)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        raise RetentionError(f"--today: {text!r} is not a date as YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise RetentionError(f"--today: {text!r} is not a date as YYYY-MM-DD") from None


def read_dates(values: pl.Series) -> pl.Series:
    """Dates as validation reads them (trimmed; YYYY-MM-DD or DD/MM/YYYY), so the purge and the quarantine agree
    on which text is a date. A typed Date series is taken as it is."""
    if values.dtype == pl.Date:
        return values
    text = pl.col("date").cast(pl.String).str.strip_chars()
    parsed = pl.coalesce([text.str.to_date(fmt, strict=False) for fmt in DATE_FORMATS])
    return values.to_frame("date").select(parsed).to_series()


def last_kept_days(dates: pl.Series, years: int) -> pl.Series:
    """Each record's last day: its date plus whole calendar years (polars takes 29 February to 28 February)."""
    return dates.dt.offset_by(f"{years}y")


def expired(frame: pl.DataFrame, rule: Rule, today: dt.date) -> pl.Series:
    """True for each row past its last day on `today`; False without a rule, a date, or a readable date."""
    if not rule.applies or rule.date_column not in frame.columns:
        return pl.Series("expired", [False] * frame.height, dtype=pl.Boolean)
    last_day = last_kept_days(read_dates(frame[rule.date_column]), rule.years)
    return (last_day < today).fill_null(False).alias("expired")


def undated(frame: pl.DataFrame, rule: Rule) -> pl.Series:
    """True for each row whose date is given but cannot be read: kept, and counted so someone looks at it."""
    if not rule.applies or rule.date_column not in frame.columns or frame[rule.date_column].dtype == pl.Date:
        return pl.Series("undated", [False] * frame.height, dtype=pl.Boolean)
    text = frame[rule.date_column].cast(pl.String).str.strip_chars()
    return ((text.str.len_chars() > 0) & read_dates(text).is_null()).fill_null(False).alias("undated")


# Landing files are rewritten record by record from their own text, so the header and every kept record stay
# byte-for-byte as the MIS wrote them (encoding, quoting, line endings): only the expired records go.
LINES = re.compile(r"[^\n]*\n|[^\n]+\Z")


@dataclass(frozen=True)
class CsvRecords:
    header: str  # the header record's text, line ending included
    names: tuple[str, ...]
    texts: tuple[str, ...]  # each data record's text exactly as in the file (a quoted field may span lines)
    fields: tuple[tuple[str, ...], ...]

    def column(self, name: str) -> pl.Series | None:
        """A column's text by header name (trimmed, any case, as ingest matches headers); None when absent."""
        wanted = [i for i, n in enumerate(self.names) if n.strip().lower() == name]
        if not wanted:
            return None
        i = wanted[0]
        return pl.Series(name, [f[i] if i < len(f) else None for f in self.fields], dtype=pl.String)

    def without(self, drop: pl.Series) -> str:
        return self.header + "".join(t for t, gone in zip(self.texts, drop.to_list(), strict=True) if not gone)


def csv_records(text: str, delimiter: str = ",") -> CsvRecords:
    """A CSV's records with their exact text. One parser splits and reads them, so the record deleted is the
    record whose date was read."""
    lines = LINES.findall(text)
    consumed = 0

    def feed():
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    records, start = [], 0
    for fields in csv.reader(feed(), delimiter=delimiter):
        records.append(("".join(lines[start:consumed]), tuple(fields)))
        start = consumed
    if not records:
        return CsvRecords("", (), (), ())
    (header, names), rows = records[0], records[1:]
    return CsvRecords(header, names, tuple(t for t, _ in rows), tuple(f for _, f in rows))


@dataclass(frozen=True)
class DatasetPurge:
    """What a purge deleted (or, dry, would delete) for one dataset: counts only, never a value from a row."""

    dataset: str
    rule: str
    staging: int
    quarantine: int
    landing: int | None  # None: no landing file for the dataset
    undated_quarantine: int
    undated_landing: int
    rectifications: int = 0  # recorded corrections to the expired rows (they hold the old and new values)

    def ledger_entry(self) -> dict:
        return {"dataset": self.dataset, "rule": self.rule,
                "deleted": {"staging": self.staging, "quarantine": self.quarantine, "landing": self.landing,
                            "rectifications": self.rectifications},
                "undated_kept": {"quarantine": self.undated_quarantine, "landing": self.undated_landing}}


def purge_body(today: dt.date, policy_file: str, policy_sha256: str, policy_version: str,
               purges: list[DatasetPurge], landing_files: dict[str, str]) -> dict:
    """The ledger entry's body: the day, the policy by hash, counts per dataset, and the rewritten landing files'
    new hashes (so an auditor can tell a purged export from a tampered one)."""
    return {"today": today.isoformat(), "policy": {"file": policy_file, "sha256": policy_sha256,
                                                   "version": policy_version},
            "datasets": [p.ledger_entry() for p in purges], "landing_sha256": landing_files}
