"""A slot's counters (rows delivered, backpressure waits, stale frames, dropped events, answers read by callers,
requests ended by command and outcome with their durations), updated from the reader thread, callers and the
supervisor."""

from __future__ import annotations

from leanworker.actors.core import locks
from leanworker.actors.core.stats import RequestStats


class Counters:
    """Per-slot counters updated from several threads."""

    __slots__ = ("_lock", "rows_delivered", "backpressure_waits", "stale_frames_dropped", "events_dropped",
                 "answers_read_by_caller", "_requests")

    def __init__(self) -> None:
        self._lock = locks.lock("counters")
        self.rows_delivered = 0
        self.backpressure_waits = 0
        self.stale_frames_dropped = 0
        self.events_dropped = 0
        self.answers_read_by_caller = 0
        self._requests = RequestStats()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def request_ended(self, command: str, outcome: str, seconds: float) -> None:
        """A request admitted ``seconds`` ago ended with ``outcome`` (its channel's first terminal)."""
        with self._lock:
            self._requests.record(command, outcome, seconds)

    def request_stats(self) -> RequestStats:
        """A copy of the requests ended so far."""
        with self._lock:
            return self._requests.copy()
