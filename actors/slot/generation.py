"""What a supervisor knows of one generation of its slot (its child actor, connection, process and phase), with the
start-up decisions on it as pure methods (docs/semantics.md, Start-up; tests drive them without processes): the
bound of each handshake step, what a violation or a missed deadline before it is ready means, and its end.

Phases: spawning (until the hello), configuring and opening (the two handshake steps), ready, ending. A generation
that breaks the protocol or misses a deadline before it is ready has failed its start-up: a broken hello is a
``HandshakeError``, a missed hello or handshake step a ``StartupTimeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from leanworker.actors.core.config import WorkerConfig
from leanworker.actors.core.timers import TimerHandle
from leanworker.actors.slot.channel import OK, RequestChannel, Terminal
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.endings import Ending, after_startup_failure
from leanworker.errors import HandshakeError, LeanWorkerError, StartupTimeout

HANDSHAKE_BUFFER = 16  # rows a handshake step's channel holds (it streams none)


@dataclass
class Generation:
    """One generation of a slot: its child actor, its connection, its process and where its life stands."""

    number: int
    child: pykka.ActorRef[Any]
    connection: Connection
    started_at: float
    pid: int | None = None
    phase: str = "spawning"  # spawning, configuring, opening, ready, ending
    handshake: RequestChannel | None = None
    timer: TimerHandle | None = None
    ending: str | None = None  # why this generation is being ended (restart reason)
    planned: bool = False  # a planned cycle (does not count toward restart intensity)
    startup_error: LeanWorkerError | None = None
    exited: bool = False

    @property
    def started(self) -> bool:
        """It became ready (it may be ending since) and no start-up step failed."""
        return self.phase in ("ready", "ending") and self.startup_error is None

    @property
    def serving(self) -> bool:
        """Ready, and no end decided for it: what a memory sample is judged on."""
        return self.phase == "ready" and self.ending is None

    @property
    def before_ready(self) -> bool:
        """Starting, configuring or opening its session: it has no session to close yet, and reads no frame while
        its capability opens one (a shutdown kills it at once)."""
        return self.phase in ("spawning", "configuring", "opening")

    @property
    def replaceable(self) -> bool:
        """Its process lives and no end is decided for it yet: a cycle may be asked for."""
        return not self.exited and self.ending is None

    def hello(self) -> bool:
        """The worker said hello: True if that begins the handshake (only while spawning)."""
        if self.phase != "spawning":
            return False
        self.phase = "configuring"
        return True

    def begin_step(self, request_id: int, step: str, counters: Counters) -> RequestChannel:
        """A handshake step (``configure``, ``open``) goes out as ``request_id``: its channel, registered on the
        connection, so that its ``done`` finds it."""
        self.handshake = RequestChannel(request_id, self.number, step, False, HANDSHAKE_BUFFER, counters)
        self.connection.register(self.handshake)
        return self.handshake

    def step_bound(self, config: WorkerConfig) -> float | None:
        """What bounds the handshake step about to be sent: ``configure`` the start-up timeout, the session open
        ``WorkerConfig.session_open_timeout`` (None: nothing)."""
        return config.startup_timeout if self.phase == "configuring" else config.session_open_timeout

    def step_answered(self, terminal: Terminal) -> str:
        """The ``done`` of the handshake step in flight arrived: "ignored" when the generation is ending already (shut
        down or failed while the step ran: its answer changes nothing), "failed" when the step failed (its error is
        the start-up's), else the next phase (:meth:`step_done`)."""
        if self.ending is not None or terminal.outcome != OK:
            self.handshake = None
            return "ignored" if self.ending is not None else "failed"
        return self.step_done()

    def step_done(self) -> str:
        """A handshake step succeeded: the next phase, "opening" (send the session open) or "ready"."""
        self.handshake = None
        self.phase = "opening" if self.phase == "configuring" else "ready"
        return self.phase

    def startup_violation(self, error: LeanWorkerError) -> LeanWorkerError | None:
        """The start-up error a protocol violation is, or None once the generation is ready (a request's fault)."""
        if self.phase == "spawning":
            return error if isinstance(error, HandshakeError) else HandshakeError(str(error))
        if self.phase in ("configuring", "opening"):
            return error
        return None

    def startup_deadline(self, kind: str, request_id: int, startup_timeout: float,
                         open_timeout: float | None = None) -> StartupTimeout | None:
        """The start-up error a deadline of ``kind`` is, or None when it no longer applies (the step was done).
        ``open_timeout`` is what bounded the session open (``WorkerConfig.session_open_timeout``)."""
        if kind == "startup" and self.phase == "spawning":
            return StartupTimeout(f"worker did not say hello within {startup_timeout:g} s")
        if kind == "session" and self.handshake is not None and self.handshake.request_id == request_id:
            if self.phase != "opening":
                return StartupTimeout(f"configure did not finish within {startup_timeout:g} s")
            within = f" within {open_timeout:g} s" if open_timeout is not None else ""
            return StartupTimeout(f"the session open did not finish{within} (WorkerConfig.open_timeout bounds it, "
                                  "else request_timeout; an expensive open such as a Lean import needs more: raise "
                                  "it)")
        return None

    def close(self, terminal: Terminal) -> list[RequestChannel]:
        """The process exited: no later frame of it reaches a request, and the handshake step in flight, if any,
        ends with ``terminal``. Returns the requests' channels still open."""
        self.exited = True
        self.disarm()
        channels = self.connection.close()
        if self.handshake in channels:
            channels.remove(self.handshake)
            self.handshake.finish(terminal)
        return channels

    def startup_failed(self, error: LeanWorkerError) -> Ending:
        """A start-up step failed with ``error``: it is the start-up's error unless an earlier one stands, and the
        generation ends as a restart for reason ``startup``."""
        if self.startup_error is None:
            self.startup_error = error
        return after_startup_failure()

    def disarm(self) -> None:
        """Cancel the start-up deadline armed for the current step, if any."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def end(self, reason: str, planned: bool) -> bool:
        """Begin ending for ``reason``: True unless it is ending already (the first reason stands)."""
        if self.ending is not None:
            return False
        self.ending, self.planned, self.phase = reason, planned, "ending"
        return True


SlotListener = Callable[[str, Any], None]
