"""Measuring one scenario: wall time and peak memory of this process, printed as one JSON line."""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Measurement:
    scenario: str
    rows: int
    seconds: float
    peak_rss_mb: float
    baseline: str = ""
    baseline_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(work: Callable[[], int]) -> tuple[int, float, float]:
    """Rows returned by work, its wall seconds, and this process's peak memory once it finished."""
    start = time.perf_counter()
    rows = work()
    return rows, time.perf_counter() - start, peak_rss_mb()


def emit(measurement: Measurement) -> None:
    print("BENCH " + json.dumps(asdict(measurement)), flush=True)
