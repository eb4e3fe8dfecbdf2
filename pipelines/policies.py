"""Loading policy files: the only place they are read, so every error names the file and the key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import schemas
from disclosure_control.policy import Policy, PolicyError, parse_policy
from pipelines.transforms.school_statistics import Publication, PublicationError, parse_publication

POLICIES_DIR = Path(schemas.__file__).parent / "policies"
DEFAULT_DISCLOSURE_POLICY = POLICIES_DIR / "disclosure.toml"
DEFAULT_RECIPIENTS = POLICIES_DIR / "recipients.toml"
LEVELS = ("aggregate", "record")


def _toml(path: Path, error_type: type[Exception]) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise error_type(f"cannot read it ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise error_type(f"not valid TOML ({error})") from None


def load_disclosure_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_DISCLOSURE_POLICY
    try:
        return parse_policy(_toml(path, PolicyError))
    except PolicyError as error:
        raise PolicyError(f"{path}: {error}") from None


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
    try:
        return {key: parse_recipient(key, spec) for key, spec in _toml(path, RecipientError).items()}
    except RecipientError as error:
        raise RecipientError(f"{path}: {error}") from None


def load_publication(path: Path) -> Publication:
    try:
        return parse_publication(_toml(path, PublicationError))
    except PublicationError as error:
        raise PublicationError(f"{path}: {error}") from None
