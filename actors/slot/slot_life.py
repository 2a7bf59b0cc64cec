"""A worker slot's life as a pure policy the supervisor consults (docs/semantics.md, Start-up; Restarts, intensity
and cycling; Plain data, on the requests a worker takes; tests drive it without processes).

States: starting, ready, stopping (a planned cycle or a kill in progress), failed (never became ready), exhausted
(restart intensity passed), closed. When a generation's process exits, the slot is closed if it is shutting down;
failed if no generation ever became ready and this one did not either; else the restart is counted by its reason
and a new generation starts, unless an unplanned restart passes the intensity (``max_restarts`` in
``restart_window``): then the slot is exhausted until the oldest restart leaves the window, and a request after
that starts it afresh. A failed or exhausted slot keeps its error (:attr:`SlotLife.failure`): the start-up's, or
``RestartLimitExceeded``.

A request the admission gate did not take comes to the slot's door (:meth:`SlotLife.door`): refused if the slot
is shut down (``WorkerClosed``, or the pool's ``PoolClosed``), if it expects a generation that has ended
(``StaleLease``), or with the slot's failure; else it may go on (to the gate, or to wait for the generation being
started).
"""

from __future__ import annotations

from collections import Counter

from leanworker.actors.core.config import RestartPolicy
from leanworker.actors.slot.endings import exhausted_error
from leanworker.actors.slot.intensity import RestartIntensity
from leanworker.errors import LeanWorkerError, StaleLease, WorkerClosed

CLOSED = "closed"
FAILED = "failed"
RESTART = "restart"
EXHAUSTED = "exhausted"
READY = "ready"


class SlotLife:
    """The slot's state, restarts by reason, restart intensity, and its error once it failed or is exhausted."""

    def __init__(self, policy: RestartPolicy, name: str = "worker",
                 closed_error: type[WorkerClosed] = WorkerClosed) -> None:
        self.policy = policy
        self.name = name
        self.closed_error = closed_error
        self.state = "starting"
        self.restarts: Counter[str] = Counter()
        self.intensity = RestartIntensity(policy.max_restarts, policy.restart_window)
        self.ever_ready = False
        self.exhausted_until = 0.0
        self.retry_after = 0.0  # of the last exhaustion
        self.failure: LeanWorkerError | None = None

    def starting(self) -> None:
        self.state = "starting"

    def ready(self) -> None:
        self.state = READY
        self.ever_ready = True

    def stopping(self) -> None:
        self.state = "stopping"

    def closed(self) -> None:
        self.state = CLOSED

    def exited(self, reason: str, planned: bool, started: bool, closing: bool, now: float,
               error: LeanWorkerError | None = None) -> str:
        """A generation's process exited: CLOSED, FAILED, RESTART (start the next generation) or EXHAUSTED.

        ``started``: the generation became ready (or was being ended after it did) and no start-up step failed;
        ``error``: what its start-up failed with, or its crash (the slot's failure if it is FAILED).
        """
        if closing:
            self.state = CLOSED
            return CLOSED
        if not started and not self.ever_ready:
            self.state = FAILED
            self.failure = error
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
        self.failure = exhausted_error(self.name, self.intensity.count, self.policy.restart_window,
                                       self.policy.max_restarts, retry)
        return EXHAUSTED

    def may_start_again(self, now: float) -> bool:
        """An exhausted slot is asked for a request: True (and the window is forgotten) once its time has come."""
        if now < self.exhausted_until:
            return False
        self.intensity.clear()
        return True

    def door(self, closing: bool, expect_generation: int | None, generation: int, now: float) -> bool:
        """A request the gate did not admit (on ``expect_generation``, when its caller names one) comes to the
        door. Raises its refusal (see the module docstring); returns True when a generation must be started for it
        first (the slot was exhausted and its time has come), False when it may go on as things are."""
        if closing or self.state == CLOSED:
            raise self.closed_error(f"worker {self.name} is shut down")
        if expect_generation is not None and expect_generation != generation:
            raise StaleLease(f"generation {expect_generation} of {self.name} has ended")
        if self.state == FAILED or (self.state == EXHAUSTED and not self.may_start_again(now)):
            assert self.failure is not None
            raise self.failure
        return self.state == EXHAUSTED

    def refusal(self, closing: bool) -> LeanWorkerError | None:
        """What a caller waiting for the slot to be ready gets at once, if anything: the slot's failure, or
        ``WorkerClosed`` (``PoolClosed``) when it is shut down."""
        if self.state in (FAILED, EXHAUSTED) and self.failure is not None:
            return self.failure
        if closing:
            return self.closed_error(f"worker {self.name} is shut down")
        return None

    def shown(self, busy: bool) -> str:
        """The state a snapshot shows: a ready slot is "busy" or "idle"."""
        if self.state != READY:
            return self.state
        return "busy" if busy else "idle"
