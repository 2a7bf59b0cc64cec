"""A slot's counters (rows delivered, backpressure waits, stale frames, dropped events, answers read by callers),
updated from the reader thread, callers and the supervisor."""

from __future__ import annotations

from leanworker.actors.core import locks


class Counters:
    """Per-slot counters updated from several threads."""

    __slots__ = ("_lock", "rows_delivered", "backpressure_waits", "stale_frames_dropped", "events_dropped",
                 "answers_read_by_caller")

    def __init__(self) -> None:
        self._lock = locks.lock("counters")
        self.rows_delivered = 0
        self.backpressure_waits = 0
        self.stale_frames_dropped = 0
        self.events_dropped = 0
        self.answers_read_by_caller = 0

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)
