"""The one check of a config table's keys, used by every policy, spec, contract and mapping file: an unknown key
(a typo) and a missing one are each an error naming where.key, so that no misspelt rule is silently ignored."""

from __future__ import annotations

from collections.abc import Iterable


def check_keys(raw: dict, where: str, allowed: Iterable[str], required: Iterable[str], error: type[Exception]) -> None:
    allowed, required = tuple(allowed), tuple(required)
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise error(f"{where}.{unknown[0]}: unknown key (expected {', '.join(allowed)})")
    missing = [k for k in required if k not in raw]
    if missing:
        raise error(f"{where}.{missing[0]}: missing")
