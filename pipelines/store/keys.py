"""Keys: read at the edge, from the environment or a Prefect Secret block, never from code, config or the
repository; keep them where only the pipeline's service account can read them.

- Pseudonymisation: a recipient's key_id "health" is LARETURNS_KEY_HEALTH (hex) or the Secret block
  "lareturns-key-health".
- The ledger's signing key: LARETURNS_LEDGER_KEY (an Ed25519 private key as 64 hex digits) or the Secret block
  "lareturns-ledger-key". Its public key (`lareturns ledger-key`) goes to the auditor, who checks every entry's
  signature with it: whoever can write the run folder cannot sign a forged entry without the private key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key


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


LEDGER_KEY_VARIABLE = "LARETURNS_LEDGER_KEY"


def ledger_signing_key() -> Ed25519PrivateKey:
    value = os.environ.get(LEDGER_KEY_VARIABLE) or _secret_block("lareturns-ledger-key")
    if not value:
        raise MissingKey(f"no ledger signing key: set {LEDGER_KEY_VARIABLE} (an Ed25519 private key as 64 hex digits) or "
                         "create the Prefect Secret block lareturns-ledger-key")
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(value.strip()))
    except ValueError:
        raise MissingKey(f"{LEDGER_KEY_VARIABLE} is not an Ed25519 private key as 64 hex digits") from None


def ledger_public_key_pem() -> str:
    """The public half of the ledger's signing key, for the auditor."""
    return ledger_signing_key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def ledger_public_key(path: Path) -> Ed25519PublicKey:
    """The auditor's copy of the ledger's public key (a PEM file)."""
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    except ValueError:
        raise ValueError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key
