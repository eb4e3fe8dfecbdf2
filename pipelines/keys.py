"""Pseudonymisation keys: read at the edge, from the environment or a Prefect Secret block, never from code,
config or the repository. A recipient's key_id "health" is LARETURNS_KEY_HEALTH (hex) or the Secret block
"lareturns-key-health"; keep it where only the pipeline's service account can read it.
"""

from __future__ import annotations

import os


class MissingKey(RuntimeError):
    """No key for a recipient whose extract needs pseudonyms; nothing is delivered without one."""


def key_variable(key_id: str) -> str:
    return f"LARETURNS_KEY_{key_id.upper()}"


def pseudonymisation_key(key_id: str) -> bytes:
    value = os.environ.get(key_variable(key_id)) or _secret_block(f"lareturns-key-{key_id}")
    if not value:
        raise MissingKey(f"no pseudonymisation key {key_id!r}: set {key_variable(key_id)} (hex) or create the "
                         f"Prefect Secret block lareturns-key-{key_id}")
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        raise MissingKey(f"pseudonymisation key {key_id!r} is not hex") from None


def _secret_block(name: str) -> str | None:
    from prefect.blocks.system import Secret

    try:
        return Secret.load(name).get()
    except Exception:  # noqa: BLE001 - no such block, or no Prefect API to ask: either way there is no key here
        return None
