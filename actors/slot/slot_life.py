"""A worker slot's life as a pure policy the supervisor consults (docs/semantics.md, Start-up; Restarts, intensity
and cycling; tests drive it without processes).

States: starting, ready, stopping (a planned cycle or a kill in progress), failed (never became ready), exhausted
(restart intensity passed), closed. When a generation's process exits, the slot is closed if it is shutting down;
failed if no generation ever became ready and this one did not either; else the restart is counted by its reason
and a new generation starts, unless an unplanned restart passes the intensity (``max_restarts`` in
``restart_window``): then the slot is exhausted until the oldest restart leaves the window, and a request after
that starts it afresh.
"""

from __future__ import annotations

from collections import Counter

from leanworker.actors.core.config import RestartPolicy
from leanworker.actors.slot.intensity import RestartIntensity

CLOSED = "closed"
FAILED = "failed"
RESTART = "restart"
EXHAUSTED = "exhausted"


class SlotLife:
    """The slot's state, restarts by reason, and restart intensity."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.state = "starting"
        self.restarts: Counter[str] = Counter()
        self.intensity = RestartIntensity(policy.max_restarts, policy.restart_window)
        self.ever_ready = False
        self.exhausted_until = 0.0
        self.retry_after = 0.0  # of the last exhaustion

    def starting(self) -> None:
        self.state = "starting"

    def ready(self) -> None:
        self.state = "ready"
        self.ever_ready = True

    def stopping(self) -> None:
        self.state = "stopping"

    def closed(self) -> None:
        self.state = CLOSED

    def exited(self, reason: str, planned: bool, started: bool, closing: bool, now: float) -> str:
        """A generation's process exited: CLOSED, FAILED, RESTART (start the next generation) or EXHAUSTED.

        ``started``: the generation became ready (or was being ended after it did) and no start-up step failed.
        """
        if closing:
            self.state = CLOSED
            return CLOSED
        if not started and not self.ever_ready:
            self.state = FAILED
            return FAILED
        self.restarts[reason] += 1
        if planned:
            return RESTART
        retry = self.intensity.record(now)
        if retry is None:
            return RESTART
        self.state = EXHAUSTED
        self.exhausted_until = now + retry
        self.retry_after = retry
        return EXHAUSTED

    def may_start_again(self, now: float) -> bool:
        """An exhausted slot is asked for a request: True (and the window is forgotten) once its time has come."""
        if now < self.exhausted_until:
            return False
        self.intensity.clear()
        return True
