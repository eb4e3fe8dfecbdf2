"""The one missing/unknown-key check of every policy and spec: an unknown key (a typo) and a missing one are each
an error naming the key, so no misspelt rule is silently ignored. Dependency-free, so that the pure
disclosure-control library checks its policy with the same check as the app's specs without importing the app.
"""

from __future__ import annotations

from collections.abc import Iterable


def check_keys(raw: dict, where: str, allowed: Iterable[str], required: Iterable[str], error: type[Exception]) -> None:
    """where: the table's key in its file ("" for the file's top level)."""
    allowed, required, prefix = tuple(allowed), tuple(required), f"{where}." if where else ""
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise error(f"{prefix}{unknown[0]}: unknown key (expected {', '.join(allowed)})")
    missing = [k for k in required if k not in raw]
    if missing:
        raise error(f"{prefix}{missing[0]}: missing")


def check_nested_keys(raw: dict, nested: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
                      error: type[Exception]) -> None:
    """check_keys on each nested table of a spec (a list's items as key[i]), nested: key -> (allowed, required).
    A value that is not a table is checked as an empty one, so its required keys are reported missing."""
    for key, (allowed, required) in nested.items():
        value = raw.get(key)
        items = [(f"{key}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else \
            [] if value is None else [(key, value)]
        for where, table in items:
            check_keys(table if isinstance(table, dict) else {}, where, allowed, required, error)
