"""Request statistics the runtime keeps as it goes, for metrics (``leanworker.metrics``): requests by command and
outcome, their durations, and a few waits, as cumulative counts and fixed-bucket histograms.

Pure data: whoever records holds its own lock (a slot's ``Counters``, the pool's book). Recording is a dict lookup
and a bisect, cheap enough for every request; reading copies and merges (a scrape, not the hot path). The set of
command labels is bounded (``MAX_COMMANDS``): commands past it are counted under ``OTHER_COMMAND``, so that a
client sending made-up command names cannot grow a metrics registry without bound.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

# Upper bounds in seconds: from a warm call (tens of microseconds) to a long Lean elaboration (minutes).
DURATION_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
MAX_COMMANDS = 64
OTHER_COMMAND = "(other)"


@dataclass
class Histogram:
    """Observations in fixed buckets (``counts[i]``: those <= ``bounds[i]`` and above the bound before; the last
    count holds those above every bound), their sum and their number."""

    bounds: tuple[float, ...] = DURATION_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.total += value * times
        self.count += times

    def merge(self, other: Histogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.total += other.total
        self.count += other.count

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total, self.count)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` for every bound, then ``(inf, count)``: Prometheus's buckets."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((bound, running))
        out.append((float("inf"), self.count))
        return out


@dataclass
class RequestStats:
    """Requests ended, by command and outcome, and each command's durations (admission to terminal)."""

    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: dict[str, Histogram] = field(default_factory=dict)

    def record(self, command: str, outcome: str, seconds: float) -> None:
        histogram = self.durations.get(command)
        if histogram is None:  # a command not seen yet (or past the bound: counted as OTHER_COMMAND)
            command = self._label(command)
            histogram = self.durations.get(command)
            if histogram is None:
                histogram = self.durations[command] = Histogram()
        histogram.counts[bisect_left(histogram.bounds, seconds)] += 1  # observe(), inlined: once per request
        histogram.total += seconds
        histogram.count += 1
        key = (command, outcome)
        outcomes = self.outcomes
        outcomes[key] = outcomes.get(key, 0) + 1

    def merge(self, other: RequestStats) -> None:
        labels: dict[str, str] = {}
        for command, histogram in other.durations.items():
            label = labels[command] = self._label(command)
            mine = self.durations.get(label)
            if mine is None:
                self.durations[label] = histogram.copy()
            else:
                mine.merge(histogram)
        for (command, outcome), n in other.outcomes.items():
            key = (labels.get(command) or self._label(command), outcome)
            self.outcomes[key] = self.outcomes.get(key, 0) + n

    def _label(self, command: str) -> str:
        """``command``, or ``OTHER_COMMAND`` once ``MAX_COMMANDS`` other commands have been seen."""
        if command in self.durations or len(self.durations) < MAX_COMMANDS:
            return command
        return OTHER_COMMAND

    def copy(self) -> RequestStats:
        out = RequestStats()
        out.merge(self)
        return out


@dataclass(frozen=True)
class PoolStats:
    """What a pool has measured over its life (``WorkerPool.stats()``), beside its snapshot.

    ``requests``: requests ended, by command and outcome, with durations from admission to terminal (workers that
    have stopped included); ``queue_wait``: how long each lease granted waited in admission (0 for a warm grant);
    ``session_open``: how long each session open took (spawn to ready); ``slot_memory_mib``: each live worker slot's
    memory by its *position* (0 .. max_workers-1, stable while the slot lives; None: unavailable), in
    ``memory_metric`` (rss or pss).
    """

    requests: RequestStats
    queue_wait: Histogram
    session_open: Histogram
    slot_memory_mib: dict[int, float | None]
    memory_metric: str
