"""Loading policy files: the only place they are read, so every error names the file and the key."""

from __future__ import annotations

import grp
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import schemas
from disclosure_control.policy import Policy, PolicyError, parse_policy
from pipelines.io import read_toml
from pipelines.registry import RETURN_NAMES, extract_names, extract_spec
from schemas.config import check_keys

if TYPE_CHECKING:
    from pipelines.transforms.extract import Entitlement, Extract
    from pipelines.transforms.publication import Publication

# The spec parsers live with the transforms that use them (numpy, the growth reference); they are imported where a
# spec is loaded, so that commands that load none (the callback's access policy, --help) start without them.

POLICIES_DIR = Path(schemas.__file__).parent / "policies"
DEFAULT_DISCLOSURE_POLICY = POLICIES_DIR / "disclosure.toml"
DEFAULT_RECIPIENTS = POLICIES_DIR / "recipients.toml"
DEFAULT_ACCESS = POLICIES_DIR / "access.toml"
LEVELS = ("aggregate", "record")


def _loaded(path: Path, parse, error_type: type[ValueError]):
    """A config file read once and checked; every error names the file (and the key, from parse)."""
    try:
        raw = read_toml(path)
    except ValueError as error:
        raise error_type(str(error)) from None
    try:
        return parse(raw)
    except error_type as error:
        raise error_type(f"{path}: {error}") from None


def load_disclosure_policy(path: Path | None = None) -> Policy:
    return _loaded(path or DEFAULT_DISCLOSURE_POLICY, parse_policy, PolicyError)


FORMATS = ("ees", "parquet", "csv")
RECIPIENT_KEYS = ("name", "legal_basis", "level", "fields", "policy", "formats", "pseudonymise", "generalise", "key_id")


@dataclass(frozen=True)
class Recipient:
    key: str
    name: str
    legal_basis: str
    level: str
    entitlement: Entitlement
    policy: Path
    formats: tuple[str, ...]

    @property
    def fields(self) -> frozenset[str]:
        return self.entitlement.fields

    def manifest_entry(self) -> dict:
        return {"recipient": self.key, "name": self.name, "legal_basis": self.legal_basis, "level": self.level}


class RecipientError(ValueError):
    """A recipients file that cannot be used; the message names the file and the key."""


def _names(raw: dict, key: str, where: str) -> frozenset[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipientError(f"{where}.{key}: a list of column names")
    return frozenset(value)


def _entitlement(key: str, raw: dict) -> Entitlement:
    from pipelines.transforms.deidentify import GENERALISATIONS
    from pipelines.transforms.extract import Entitlement

    generalise = raw.get("generalise", {})
    bad = [field for field, how in generalise.items() if how not in GENERALISATIONS]
    if bad:
        raise RecipientError(f"{key}.generalise.{bad[0]}: {generalise[bad[0]]!r} is not one of {', '.join(GENERALISATIONS)}")
    pseudonymise = _names(raw, "pseudonymise", key)
    if pseudonymise and not raw.get("key_id"):
        raise RecipientError(f"{key}.key_id: needed to pseudonymise {', '.join(sorted(pseudonymise))}")
    return Entitlement(_names(raw, "fields", key), pseudonymise, tuple(sorted(generalise.items())), raw.get("key_id"))


def parse_recipient(key: str, raw: dict) -> Recipient:
    check_keys(raw, key, RECIPIENT_KEYS, RECIPIENT_KEYS[:6], RecipientError)
    if raw["level"] not in LEVELS:
        raise RecipientError(f"{key}.level: {raw['level']!r} is not one of {', '.join(LEVELS)}")
    entitlement = _entitlement(key, raw)
    if raw["level"] == "aggregate" and (entitlement.fields or entitlement.pseudonymise or entitlement.generalise):
        raise RecipientError(f"{key}.fields: an aggregate recipient is entitled to no fields")
    bad = [f for f in raw["formats"] if f not in FORMATS]
    if bad:
        raise RecipientError(f"{key}.formats: {bad[0]!r} is not one of {', '.join(FORMATS)}")
    policy = POLICIES_DIR / raw["policy"]
    if not policy.is_file():
        raise RecipientError(f"{key}.policy: no policy file {raw['policy']!r} in {POLICIES_DIR}")
    return Recipient(key, str(raw["name"]), str(raw["legal_basis"]), raw["level"], entitlement, policy, tuple(raw["formats"]))


def load_recipients(path: Path = DEFAULT_RECIPIENTS) -> dict[str, Recipient]:
    return _loaded(path, lambda raw: {key: parse_recipient(key, spec) for key, spec in raw.items()}, RecipientError)


def checked_references(spec, error: type[ValueError], recipients: dict | None = None):
    """A spec's references, checked like dbt's ref(): its return, recipient and dataset must exist, or the spec
    would be dropped from every run (a misspelt return) or fail in the middle of one."""
    from schemas.contract import contract_names

    if spec.return_name not in RETURN_NAMES:
        raise error(f"return: {spec.return_name!r} is not one of {', '.join(RETURN_NAMES)}")
    if spec.recipient not in (recipients if recipients is not None else load_recipients()):
        raise error(f"recipient: {spec.recipient!r} is not in recipients.toml")
    if spec.dataset not in contract_names():
        raise error(f"dataset: {spec.dataset!r} is not a dataset with a contract ({', '.join(contract_names())})")
    return spec


def load_publication(path: Path) -> Publication:
    from pipelines.transforms.publication import PublicationError, parse_filters, parse_publication

    filters = _loaded(path.parent / "filters.toml", parse_filters, PublicationError)
    return _loaded(path, lambda raw: checked_references(parse_publication(raw, filters, path.stem), PublicationError),
                   PublicationError)


def load_extract(path: Path, recipients: dict[str, Recipient]) -> Extract:
    """An extract spec, refused at load if it asks for more than its recipient may have."""
    from pipelines.transforms.extract import ExtractError, check_entitled, parse_extract

    def parsed(raw: dict) -> Extract:
        extract = checked_references(parse_extract(raw, path.stem), ExtractError, recipients)
        check_entitled(extract, recipients[extract.recipient].entitlement)
        return extract
    return _loaded(path, parsed, ExtractError)


def entitled_columns(recipient: Recipient) -> set[str]:
    """Output columns that hold a field the recipient may have in the clear (an extract's UPN for the DfE): the
    leak scan skips them."""
    recipients = load_recipients()
    extracts = (load_extract(extract_spec(n), recipients) for n in extract_names())
    return {column for e in extracts if e.recipient == recipient.key for column, field in e.columns
            if field in recipient.entitlement.fields and recipient.entitlement.treatment(field) is None}


class AccessError(ValueError):
    """An access policy that cannot be used; the message names the file and the key."""


def load_access_group(path: Path = DEFAULT_ACCESS) -> str | None:
    """The Unix group that may read what runs leave on disk (access.toml), or None for owner-only."""
    def parsed(raw: dict) -> str | None:
        check_keys(raw, "access", ("group",), ("group",), AccessError)
        if not isinstance(raw["group"], str):
            raise AccessError("access.group: a group name, or \"\" for none")
        if raw["group"]:
            try:
                grp.getgrnam(raw["group"])
            except KeyError:
                raise AccessError(f"access.group: there is no group {raw['group']!r} on this machine") from None
        return raw["group"] or None
    return _loaded(path, parsed, AccessError)
