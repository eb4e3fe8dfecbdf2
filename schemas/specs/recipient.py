"""Recipients (schemas/policies/recipients.toml): who receives what, under which legal basis and disclosure policy,
and what each may have at record level. Checked when loaded, naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas import catalog
from schemas.keys import check_keys
from schemas.specs.extract import Entitlement

LEVELS = ("aggregate", "record")
GENERALISATION_NAMES = ("month_of_birth", "postcode_district", "postcode_sector")  # pipelines/nodes/deidentify.py
FORMATS = ("ees", "parquet", "xlsx", "csv")
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
    generalise = raw.get("generalise", {})
    bad = [field for field, how in generalise.items() if how not in GENERALISATION_NAMES]
    if bad:
        raise RecipientError(f"{key}.generalise.{bad[0]}: {generalise[bad[0]]!r} is not one of {', '.join(GENERALISATION_NAMES)}")
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
    policy = catalog.policy_file(raw["policy"])
    if not policy.is_file():
        raise RecipientError(f"{key}.policy: no policy file {raw['policy']!r} in {catalog.POLICIES_DIR}")
    return Recipient(key, str(raw["name"]), str(raw["legal_basis"]), raw["level"], entitlement, policy, tuple(raw["formats"]))
