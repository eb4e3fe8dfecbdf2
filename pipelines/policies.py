"""Loading policy files: the only place they are read, so every error names the file and the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import schemas
from disclosure_control.policy import Policy, PolicyError, parse_policy

POLICIES_DIR = Path(schemas.__file__).parent / "policies"
DEFAULT_DISCLOSURE_POLICY = POLICIES_DIR / "disclosure.toml"


def load_disclosure_policy(path: Path | None = None) -> Policy:
    path = path or DEFAULT_DISCLOSURE_POLICY
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the policy ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{path}: not valid TOML ({error})") from None
    try:
        return parse_policy(raw)
    except PolicyError as error:
        raise PolicyError(f"{path}: {error}") from None
