"""Small helpers shared by the benchmarks."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any


def timings(function: Callable[[], object], repeat: int, warmup: int = 50) -> list[float]:
    """Seconds per call of ``function``, ``repeat`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        out.append(time.perf_counter() - start)
    return out


class NothingMeasured(RuntimeError):
    """A benchmark row that has no sample: reported as an error, never as a figure."""


def median_us(samples: list[float]) -> float:
    if not samples:
        raise NothingMeasured("no samples: nothing was measured")
    return statistics.median(samples) * 1e6


def p90_us(samples: list[float]) -> float:
    if not samples:
        raise NothingMeasured("no samples: nothing was measured")
    return sorted(samples)[int(len(samples) * 0.9)] * 1e6


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def print_report(report: dict[str, Any], as_json: bool, width: int = 12) -> None:
    """The report as one JSON object, or a line per entry: its name, then its figures as JSON."""
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for name, value in report.items():
        print(f"{name:{width}} {json.dumps(value)}")
