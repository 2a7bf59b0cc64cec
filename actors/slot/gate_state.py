"""The request state machine of one slot's admission gate, as a pure policy (docs/semantics.md, Requests and
outcomes; Generations and fencing). The gate (gate.py) runs it under its lock; tests drive it without processes.

- **Admit**: a request is admitted only while a generation is open and no request is in flight, and only on the
  generation its caller expects (a lease's); request ids rise on the wire.
- **First terminal wins**: the request in flight ends once, by its ``done`` or by the supervisor (timeout, kill,
  memory, shutdown); whichever comes second finds nothing in flight and is dropped.
- **Generation fencing**: closing the gate (a generation ending) refuses every later admission until the next
  generation opens; a ``done`` of a request no longer in flight changes nothing. A lease is current while the
  generation it was granted on is :attr:`GateState.live_generation`: from that generation's start until its process
  exits, or a later one starts (the pool's leases read it without the lock: one comparison per command).
- **Cancel once**: a cancel is sent for the request in flight at most once; one for a request no longer in flight
  is not sent.
- **Closing after a done**: when the generation's request budget (``max_requests``) is spent, a cycle is pending,
  or the request ended in a protocol error, the gate closes itself as the request ends, and the supervisor hears.
"""

from __future__ import annotations

from leanworker.actors.slot.channel import OK, PROTOCOL
from leanworker.actors.slot.endings import CYCLE


class GateState:
    """Which generation is open, which request is in flight, and the counts the slot reports."""

    __slots__ = ("generation", "latest_generation", "live_generation", "inflight", "handshake", "last_id", "served",
                 "budget", "close_after_current", "cycle_reason", "requests_ok", "requests_failed",
                 "notify_every_done", "cancelled")

    def __init__(self, notify_every_done: bool = False) -> None:
        self.generation: int | None = None  # the open generation; None: closed
        self.latest_generation = 0  # the newest generation started
        self.live_generation = 0  # the newest generation started, until its process exits (0: none)
        self.inflight: int | None = None  # the request id in flight
        self.handshake: int | None = None  # the request id of a handshake step in flight (configure, open)
        self.last_id = 0  # the highest request id written to the current worker
        self.served = 0  # requests ended on the open generation
        self.budget: int | None = None  # requests the open generation may serve
        self.close_after_current = False
        self.cycle_reason: str | None = None  # why the open generation closes after the request in flight
        self.requests_ok = 0
        self.requests_failed = 0
        self.notify_every_done = notify_every_done  # a policy (idle cycling, tracing) wants every done
        self.cancelled: int | None = None  # the request id a cancel was last sent for

    @property
    def is_open(self) -> bool:
        return self.generation is not None

    @property
    def idle(self) -> bool:
        """Open, with no request in flight."""
        return self.generation is not None and self.inflight is None

    def start(self, generation: int) -> None:
        """``generation`` is being started: leases of older ones are stale from now on."""
        self.latest_generation = self.live_generation = generation

    def exited(self, generation: int) -> None:
        """``generation``'s process exited: a lease granted on it is stale from now on."""
        if self.live_generation == generation:
            self.live_generation = 0

    def open(self, generation: int, budget: int | None) -> None:
        """``generation`` is ready: admit requests on it."""
        self.generation, self.served, self.budget, self.close_after_current = generation, 0, budget, False
        self.cycle_reason = None

    def close(self) -> None:
        """The open generation is ending: admit nothing until the next one opens."""
        self.generation = None

    def admissible(self, expect_generation: int | None) -> bool:
        """Whether a request may be admitted now (on ``expect_generation``, when the caller names one)."""
        generation = self.generation
        return (generation is not None and self.inflight is None
                and (expect_generation is None or expect_generation == generation))

    def admit(self, request_id: int) -> bool:
        """Put ``request_id`` in flight (call after :meth:`admissible`). False: a later id went out first, so this
        one may not follow it on the wire (take a new id)."""
        if request_id <= self.last_id:
            return False
        self.last_id = self.inflight = request_id
        return True

    def withdraw(self, request_id: int) -> None:
        """An admitted request whose frame could not be built: nothing was written, so nothing is in flight (its
        id stays used: ids still rise)."""
        if self.inflight == request_id:
            self.inflight = None

    def begin_handshake(self, request_id: int) -> None:
        """A handshake step (``configure``, ``open``) goes out as ``request_id``, outside admission: its ``done``
        goes to the supervisor, and later requests use higher ids."""
        self.last_id = max(self.last_id, request_id)
        self.handshake = request_id

    def done(self, request_id: int, outcome: str) -> tuple[bool, bool]:
        """The worker's ``done`` for ``request_id`` arrived. Returns (it ended the request in flight, the
        supervisor must hear of it). A ``done`` that lost the race to the supervisor ends nothing."""
        if request_id == self.handshake:
            self.handshake = None
            return True, True  # the supervisor runs the handshake
        if self.inflight != request_id:
            return False, False
        self.inflight = None
        self.served += 1
        if outcome == OK:
            self.requests_ok += 1
        else:
            self.requests_failed += 1
        if self.generation is None:
            return True, True
        if (self.budget is not None and self.served >= self.budget) or self.close_after_current \
                or outcome == PROTOCOL:
            self.generation = None
            return True, True
        return True, self.notify_every_done

    def fail(self, request_id: int) -> bool:
        """The supervisor ended ``request_id`` itself (timeout, kill, memory, shutdown, exit). True if it was the
        request in flight (the first terminal)."""
        won = self.inflight == request_id
        if won:
            self.inflight = None
        self.requests_failed += 1
        return won

    def cancel(self, request_id: int) -> bool:
        """A cancel of ``request_id`` is asked for: True if it is in flight and not asked already (send it)."""
        if self.inflight != request_id or self.cancelled == request_id:
            return False
        self.cancelled = request_id
        return True

    def cycle_when_idle(self, reason: str = CYCLE) -> bool:
        """A cycle for ``reason`` is wanted: True if the gate is idle (cycle now); else it closes after the request
        in flight, for that reason (:attr:`cycle_reason`, until the next generation opens)."""
        if self.idle:
            return True
        if self.inflight is not None:
            self.close_after_current = True
            self.cycle_reason = reason
        return False
