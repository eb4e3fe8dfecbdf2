"""Loading policy files: the only place they are read, so every error names the file and the key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import schemas
from disclosure_control.policy import Policy, PolicyError, parse_policy
from pipelines.io import read_toml
from pipelines.transforms.school_statistics import Publication, PublicationError, parse_publication

POLICIES_DIR = Path(schemas.__file__).parent / "policies"
DEFAULT_DISCLOSURE_POLICY = POLICIES_DIR / "disclosure.toml"
DEFAULT_RECIPIENTS = POLICIES_DIR / "recipients.toml"
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


@dataclass(frozen=True)
class Recipient:
    key: str
    name: str
    legal_basis: str
    level: str
    fields: frozenset[str]

    def manifest_entry(self) -> dict:
        return {"recipient": self.key, "name": self.name, "legal_basis": self.legal_basis, "level": self.level}


class RecipientError(ValueError):
    """A recipients file that cannot be used; the message names the file and the key."""


def parse_recipient(key: str, raw: dict) -> Recipient:
    missing = [k for k in ("name", "legal_basis", "level", "fields") if k not in raw]
    if missing:
        raise RecipientError(f"{key}.{missing[0]}: missing")
    if raw["level"] not in LEVELS:
        raise RecipientError(f"{key}.level: {raw['level']!r} is not one of {', '.join(LEVELS)}")
    if not isinstance(raw["fields"], list) or (raw["level"] == "aggregate" and raw["fields"]):
        raise RecipientError(f"{key}.fields: a list of column names (empty for an aggregate recipient)")
    return Recipient(key, str(raw["name"]), str(raw["legal_basis"]), raw["level"], frozenset(map(str, raw["fields"])))


def load_recipients(path: Path = DEFAULT_RECIPIENTS) -> dict[str, Recipient]:
    return _loaded(path, lambda raw: {key: parse_recipient(key, spec) for key, spec in raw.items()}, RecipientError)


def load_publication(path: Path) -> Publication:
    return _loaded(path, parse_publication, PublicationError)
