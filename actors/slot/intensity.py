"""Restart intensity: at most ``max_restarts`` unplanned restarts within ``window`` seconds. A pure policy, used by
the supervisor (per worker slot) and the pool (per session key, across its workers)."""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    """A sliding window of restart times."""

    def __init__(self, max_restarts: int, window: float) -> None:
        self.max_restarts = max_restarts
        self.window = window
        self._times: deque[float] = deque()

    def record(self, now: float) -> float | None:
        """Count a restart at ``now``. None while within the limit; else the seconds until the oldest restart in
        the window leaves it (when trying again makes sense)."""
        times = self._times
        times.append(now)
        while times and times[0] < now - self.window:
            times.popleft()
        if len(times) <= self.max_restarts:
            return None
        return times[0] + self.window - now

    @property
    def count(self) -> int:
        """Restarts in the window at the last :meth:`record`."""
        return len(self._times)

    def clear(self) -> None:
        self._times.clear()
