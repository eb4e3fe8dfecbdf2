"""Data contracts: one commented TOML file per dataset in schemas/contracts/, loaded and checked once.

A contract declares each column (type, whether required, identifier format, code set, range, whether it is a
direct identifier) and the dataset's cross-field and key rules. Rules get stable ids: column rules are named
<prefix>-<column tag>-<check> (PUP-DOB-REQUIRED), the others carry their id in the file. Both the row-level
checks (schemas.rules) and the dataset-level Great Expectations suite come from the same contract.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache

from schemas import catalog
from schemas.keys import check_keys
from schemas.lookups import codeset_names

COLUMN_TYPES = {"text", "code", "code_list", "date", "int", "decimal", "flag"}
FORMATS = {"upn", "uln", "nino", "nass", "postcode", "urn", "ofsted_urn", "laestab", "eligibility_code", "phone", "la_code"}
SEVERITIES = {"error", "warning"}
RULE_CHECKS = {
    "unique": {"columns"},
    "nc_year_age": {"min_gap"},
    "required_when": {"column", "when_column", "when_in"},
    "not_both": {"columns"},
    "flag_matches_code": {"flag", "column", "codes"},
    "not_greater": {"column", "than"},
    "within_code_limit": {"column", "code_column", "codeset", "attribute"},
    "entitlement_age": {"dob_column", "term_column", "code_column"},
    "below_school_age": {"dob_column", "term_column"},
    "age_between": {"dob_column", "min_age", "max_age"},
    "only_when": {"column", "when_column", "when_in"},
    "code_when": {"column", "code", "when_column", "when_in", "present"},
    "equal": {"column", "other"},
    "any_of": {"columns"},
    "multiple_of": {"column", "step"},
}
RULE_OPTIONAL = {
    "unique": {"pair_column", "pair_values"},
    "nc_year_age": {"max_gap", "nc_column", "dob_column"},
    "age_between": {"unless_flag"},
}
COLUMN_KEYS = {"label", "tag", "type", "required", "format", "codeset", "allowed", "min", "max", "not_before",
               "not_after", "identifier", "separator", "null_rate_max", "case"}
IDENTIFIER_KINDS = {"direct", "indirect"}
DATASET_KEYS = {"dataset", "prefix", "file", "description", "columns", "rules", "expectations"}
EXPECTATION_KEYS = {"row_count_change_max", "shares"}


class ContractError(ValueError):
    """A contract file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    tag: str
    type: str = "text"
    required: bool = False
    format: str | None = None
    codeset: str | None = None
    allowed: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    not_before: str | None = None
    not_after: str | None = None
    identifier: str | None = None
    separator: str = ";"
    null_rate_max: float | None = None
    case: str = "upper"  # how code and identifier columns are normalised before checking


@dataclass(frozen=True)
class RuleSpec:
    id: str
    check: str
    message: str
    severity: str = "error"
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Contract:
    dataset: str
    prefix: str
    file: str
    description: str
    columns: tuple[Column, ...]
    rules: tuple[RuleSpec, ...]
    expectations: dict = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def direct_identifiers(self) -> list[str]:
        return [c.name for c in self.columns if c.identifier == "direct"]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _unknown(keys: dict, allowed: set[str], where: str) -> None:
    check_keys(keys, where, sorted(allowed), (), ContractError)


def _column(name: str, spec: dict, where: str) -> Column:
    where = f"{where} columns.{name}"
    _unknown(spec, COLUMN_KEYS, where)
    kind = spec.get("type", "text")
    if kind not in COLUMN_TYPES:
        raise ContractError(f"{where}.type: {kind!r} is not one of {', '.join(sorted(COLUMN_TYPES))}")
    if spec.get("format") not in (None, *FORMATS):
        raise ContractError(f"{where}.format: {spec['format']!r} is not one of {', '.join(sorted(FORMATS))}")
    if kind in ("code", "code_list") and not (spec.get("codeset") or spec.get("allowed")):
        raise ContractError(f"{where}: a {kind} column needs a codeset or an allowed list")
    if spec.get("codeset") and spec["codeset"] not in codeset_names():
        raise ContractError(f"{where}.codeset: no code set named {spec['codeset']!r}")
    if spec.get("case", "upper") not in ("upper", "lower"):
        raise ContractError(f"{where}.case: must be 'upper' or 'lower'")
    if spec.get("identifier") not in (None, *IDENTIFIER_KINDS):
        raise ContractError(f"{where}.identifier: must be 'direct' or 'indirect'")
    if "label" not in spec:
        raise ContractError(f"{where}: missing key 'label'")
    return Column(
        name=name,
        label=spec["label"],
        tag=spec.get("tag", name.upper().replace("_", "-")),
        type=kind,
        required=bool(spec.get("required", False)),
        format=spec.get("format"),
        codeset=spec.get("codeset"),
        allowed=tuple(spec.get("allowed", ())),
        min=spec.get("min"),
        max=spec.get("max"),
        not_before=spec.get("not_before"),
        not_after=spec.get("not_after"),
        identifier=spec.get("identifier"),
        separator=spec.get("separator", ";"),
        null_rate_max=spec.get("null_rate_max"),
        case=spec.get("case", "upper"),
    )


def _rule(index: int, spec: dict, columns: set[str], where: str) -> RuleSpec:
    where = f"{where} rules[{index}]"
    for key in ("id", "check", "message"):
        if key not in spec:
            raise ContractError(f"{where}: missing key {key!r}")
    check = spec["check"]
    if check not in RULE_CHECKS:
        raise ContractError(f"{where}.check: {check!r} is not one of {', '.join(sorted(RULE_CHECKS))}")
    params = {k: v for k, v in spec.items() if k not in ("id", "check", "message", "severity")}
    missing = RULE_CHECKS[check] - set(params)
    if missing:
        raise ContractError(f"{where} ({spec['id']}): missing key {sorted(missing)[0]!r} for check {check!r}")
    _unknown(params, RULE_CHECKS[check] | RULE_OPTIONAL.get(check, set()), f"{where} ({spec['id']})")
    severity = spec.get("severity", "error")
    if severity not in SEVERITIES:
        raise ContractError(f"{where}.severity: {severity!r} is not 'error' or 'warning'")
    named = [v for k, v in params.items() if k in ("column", "when_column", "flag", "than", "code_column",
                                                     "dob_column", "term_column", "pair_column", "nc_column", "other")]
    named += [c for k in ("columns",) for c in params.get(k, [])]
    for name in named:
        if name not in columns:
            raise ContractError(f"{where} ({spec['id']}): names column {name!r}, which the contract does not declare")
    return RuleSpec(id=spec["id"], check=check, message=spec["message"], severity=severity, params=params)


def parse_contract(text: str, where: str) -> Contract:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ContractError(f"{where}: not valid TOML ({error})") from None
    _unknown(raw, DATASET_KEYS, where)
    for key in ("dataset", "prefix", "file", "columns"):
        if key not in raw:
            raise ContractError(f"{where}: missing key {key!r}")
    columns = tuple(_column(name, spec, where) for name, spec in raw["columns"].items())
    rules = tuple(_rule(i, spec, {c.name for c in columns}, where) for i, spec in enumerate(raw.get("rules", [])))
    _unknown(raw.get("expectations", {}), EXPECTATION_KEYS, f"{where} expectations")
    ids = [r.id for r in rules]
    if len(ids) != len(set(ids)):
        raise ContractError(f"{where}: rule ids must be unique")
    return Contract(
        dataset=raw["dataset"],
        prefix=raw["prefix"],
        file=raw["file"],
        description=raw.get("description", ""),
        columns=columns,
        rules=rules,
        expectations=raw.get("expectations", {}),
    )


@cache
def load_contract(dataset: str) -> Contract:
    path = catalog.contract_file(dataset)
    if not path.exists():
        raise ContractError(f"no contract for dataset {dataset!r} in {catalog.CONTRACTS_DIR}")
    return parse_contract(path.read_text(encoding="utf-8"), str(path.name))


def contract_names() -> list[str]:
    return catalog.contract_names()
