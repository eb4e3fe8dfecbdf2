"""The disclosure control policy: thresholds, protection levels, rules and symbols, checked once.

The policy arrives as a mapping (parsed from the commented TOML file by the caller: this package does no file
I/O), and parse_policy rejects anything it does not understand with a message that names the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from schemas.keys import check_keys  # the one key check of every config; imports nothing

METHODS = ("fast", "optimal")
ZERO_HANDLING = ("publish", "suppress")
COSTS = ("value", "count")
DEFAULT_SYMBOLS = {"suppressed": "c", "not_applicable": "z", "unavailable": "x", "low": "low"}


class PolicyError(ValueError):
    """A policy that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Dominance:
    n: int
    k: float  # percent


@dataclass(frozen=True)
class Policy:
    threshold: int = 10
    protection_level: float = 50.0  # percent of the cell value, as tau-ARGUS's FREQ(n, p)
    zeros: str = "publish"
    protect_singletons: bool = True  # a count of one (one contributor) is known to its own member
    dominance: Dominance | None = None
    p_percent: float | None = None
    group_disclosure: tuple[str, ...] = ()  # dimensions whose categories are sensitive attributes
    rounding_base: int | None = None
    small_denominator: int = 30
    method: str = "fast"
    optimal_solves: int = 20_000  # attacker LPs the optimal method may solve before it gives way to fast (work, not time)
    movers: int = 1  # units an intruder may know joined or left between two consecutive releases
    cost: str = "value"
    total_cost_factor: float = 1000.0
    symbols: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SYMBOLS))
    version: str = "unversioned"

    def for_counts(self) -> "Policy":
        """The policy as it applies to counts alone: without the magnitude rules, which one file of rules for a
        whole release holds for the amounts some of its tables publish (its loader checks that some do)."""
        return replace(self, dominance=None, p_percent=None)

    def with_overrides(self, **changes) -> "Policy":
        """A copy with some settings changed (for command-line options), checked like the file."""
        return parse_policy({**as_mapping(self), **{k: v for k, v in changes.items() if v is not None}})


def as_mapping(policy: Policy) -> dict:
    out = {k: getattr(policy, k) for k in Policy.__dataclass_fields__}
    out["dominance"] = {"n": policy.dominance.n, "k": policy.dominance.k} if policy.dominance else None
    out["group_disclosure"] = list(policy.group_disclosure)
    return {k: v for k, v in out.items() if v is not None}


def _number(raw: dict, key: str, kind, low: float, high: float | None = None):
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise PolicyError(f"{key}: must be a{'n integer' if kind is int else ' number'}, not {value!r}")
    if value < low or (high is not None and value > high):
        raise PolicyError(f"{key}: {value} is outside {low} to {high if high is not None else 'any'}")
    return kind(value)


def _choice(raw: dict, key: str, allowed: tuple[str, ...]) -> str:
    if raw[key] not in allowed:
        raise PolicyError(f"{key}: {raw[key]!r} is not one of {', '.join(allowed)}")
    return raw[key]


def parse_policy(raw: dict) -> Policy:
    check_keys(raw, "", sorted(Policy.__dataclass_fields__), (), PolicyError)
    values = {}
    if "threshold" in raw:
        values["threshold"] = _number(raw, "threshold", int, 1, 1000)
    if "protection_level" in raw:
        values["protection_level"] = _number(raw, "protection_level", float, 0, 100)
    if "zeros" in raw:
        values["zeros"] = _choice(raw, "zeros", ZERO_HANDLING)
    if "protect_singletons" in raw:
        if not isinstance(raw["protect_singletons"], bool):
            raise PolicyError(f"protect_singletons: must be true or false, not {raw['protect_singletons']!r}")
        values["protect_singletons"] = raw["protect_singletons"]
    if "dominance" in raw:
        spec = raw["dominance"]
        if not isinstance(spec, dict) or set(spec) != {"n", "k"}:
            raise PolicyError("dominance: must be a table with exactly the keys n and k")
        values["dominance"] = Dominance(_number(spec, "n", int, 1, 10), _number(spec, "k", float, 0, 100))
    if "p_percent" in raw:
        values["p_percent"] = _number(raw, "p_percent", float, 0, 100)
    if "group_disclosure" in raw:
        dims = raw["group_disclosure"]
        if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
            raise PolicyError("group_disclosure: must be a list of dimension names")
        values["group_disclosure"] = tuple(dims)
    if "rounding_base" in raw:
        values["rounding_base"] = _number(raw, "rounding_base", int, 1, 1000)
    if "small_denominator" in raw:
        values["small_denominator"] = _number(raw, "small_denominator", int, 0)
    if "method" in raw:
        values["method"] = _choice(raw, "method", METHODS)
    if "optimal_solves" in raw:
        values["optimal_solves"] = _number(raw, "optimal_solves", int, 1, 10_000_000)
    if "movers" in raw:
        values["movers"] = _number(raw, "movers", int, 0, 1000)
    if "cost" in raw:
        values["cost"] = _choice(raw, "cost", COSTS)
    if "total_cost_factor" in raw:
        values["total_cost_factor"] = _number(raw, "total_cost_factor", float, 1)
    if "symbols" in raw:
        symbols = raw["symbols"]
        if not isinstance(symbols, dict) or set(symbols) - set(DEFAULT_SYMBOLS):
            raise PolicyError(f"symbols: keys must be among {', '.join(DEFAULT_SYMBOLS)}")
        values["symbols"] = {**DEFAULT_SYMBOLS, **{k: str(v) for k, v in symbols.items()}}
    if "version" in raw:
        values["version"] = str(raw["version"])
    return replace(Policy(), **values)
