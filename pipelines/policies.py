"""Loading policy files: the only place they are read, so every error names the file and the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import schemas
from disclosure_control.policy import Policy, PolicyError, parse_policy
from pipelines.transforms.school_statistics import Publication, PublicationError, parse_publication

POLICIES_DIR = Path(schemas.__file__).parent / "policies"
DEFAULT_DISCLOSURE_POLICY = POLICIES_DIR / "disclosure.toml"


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


def load_publication(path: Path) -> Publication:
    try:
        return parse_publication(_toml(path, PublicationError))
    except PublicationError as error:
        raise PublicationError(f"{path}: {error}") from None
