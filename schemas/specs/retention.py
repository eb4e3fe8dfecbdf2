"""The retention policy (schemas/policies/retention.toml): one rule per dataset, checked against the contracts'
date columns when it is loaded. What the rules expire is decided in pipelines/governance/retention.py."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from schemas.keys import check_keys

MAX_YEARS = 120  # longer than any retention schedule in use (care records: 75 years from birth); more is a typo
RULE_KEYS = ("date_column", "years", "basis")
NO_RULE_KEYS = ("rule", "basis")


class RetentionError(ValueError):
    """A retention policy that cannot be used, or a purge that must not run; the message names the key."""


@dataclass(frozen=True)
class Rule:
    """Keep a dataset's records for `years` calendar years from `date_column`; years None: no rule, keep all."""

    dataset: str
    date_column: str | None
    years: int | None
    basis: str

    @property
    def applies(self) -> bool:
        return self.years is not None

    def describe(self) -> str:
        return f"{self.years} years from {self.date_column}" if self.applies else "no rule"


@dataclass(frozen=True)
class RetentionPolicy:
    version: str
    rules: tuple[Rule, ...]

    def rule(self, dataset: str) -> Rule:
        return next(r for r in self.rules if r.dataset == dataset)


def parse_retention(raw: dict, date_columns: Mapping[str, Collection[str]], personal: Collection[str]) -> RetentionPolicy:
    """The policy, checked. date_columns: each known dataset's date columns (from its contract); personal: the
    datasets holding direct identifiers, each of which must have a rule or say it has none, so that a new export
    is never kept or deleted without someone deciding which."""
    check_keys(raw, "", ("version", "datasets"), (), RetentionError)
    version = raw.get("version")
    if not isinstance(version, str) or not version.strip():
        raise RetentionError("version: missing (a label such as \"2026.1\", recorded with every purge)")
    datasets = raw.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise RetentionError("datasets: missing (one [datasets.<dataset>] table per dataset)")
    rules = tuple(parse_rule(name, spec, date_columns) for name, spec in datasets.items())
    undecided = sorted(set(personal) - set(datasets))
    if undecided:
        raise RetentionError(f"datasets.{undecided[0]}: missing (it holds personal data: give it a rule, "
                             "or rule = \"none\" to keep every record)")
    return RetentionPolicy(version, rules)


def parse_rule(dataset: str, raw: object, date_columns: Mapping[str, Collection[str]]) -> Rule:
    key = f"datasets.{dataset}"
    if dataset not in date_columns:
        raise RetentionError(f"{key}: no such dataset (known: {', '.join(sorted(date_columns))})")
    if not isinstance(raw, dict):
        raise RetentionError(f"{key}: expected a table")
    allowed = NO_RULE_KEYS if "rule" in raw else RULE_KEYS
    check_keys(raw, key, allowed, allowed, RetentionError)
    if not isinstance(raw["basis"], str) or not raw["basis"].strip():
        raise RetentionError(f"{key}.basis: say where the rule comes from (or why there is none yet)")
    if "rule" in raw:
        if raw["rule"] != "none":
            raise RetentionError(f"{key}.rule: {raw['rule']!r}; the only value is \"none\" (a rule is date_column "
                                 "and years)")
        return Rule(dataset, None, None, raw["basis"])
    if raw["date_column"] not in date_columns[dataset]:
        raise RetentionError(f"{key}.date_column: {raw['date_column']!r} is not a date column of {dataset} "
                             f"({', '.join(sorted(date_columns[dataset])) or 'it has none'})")
    years = raw["years"]
    if not isinstance(years, int) or isinstance(years, bool) or not 1 <= years <= MAX_YEARS:
        raise RetentionError(f"{key}.years: {years!r} is not a whole number of years from 1 to {MAX_YEARS}")
    return Rule(dataset, raw["date_column"], years, raw["basis"])
