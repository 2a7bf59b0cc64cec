"""The supervisor's state and the helpers every part of it uses (supervisor.py is the actor; its request,
deadline, cycling and memory handlers are in supervisor_requests.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pykka

from leanworker.actors.core.config import RestartPolicy, SessionKey, WorkerConfig
from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.results import ShutdownReport
from leanworker.actors.core.timers import Scheduler, TimerHandle
from leanworker.actors.core.tracing import Tracer
from leanworker.actors.slot.channel import Counters, RequestChannel, Router, Terminal
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.actors.slot.intensity import RestartIntensity
from leanworker.actors.slot.memory import MemorySampler
from leanworker.actors.slot.messages import IdleCheck, Kill, Stop, Submit
from leanworker.actors.slot.pipe import PipeWriter
from leanworker.errors import LeanWorkerError, WorkerClosed


@dataclass
class Generation:
    """One generation of a slot: its child actor, router, pipe, process and where its life stands."""

    number: int
    child: pykka.ActorRef[Any]
    router: Router
    started_at: float
    pipe: PipeWriter | None = None
    pid: int | None = None
    phase: str = "spawning"  # spawning, configuring, opening, ready, ending
    handshake: RequestChannel | None = None
    timer: TimerHandle | None = None
    ending: str | None = None  # why this generation is being ended (restart reason)
    planned: bool = False  # a planned cycle (does not count toward restart intensity)
    startup_error: LeanWorkerError | None = None
    exited: bool = False


@dataclass
class Pending:
    """A request that waits for the generation being started."""

    submit: Submit
    reply: Future[RequestChannel] = field(default_factory=Future)


SlotListener = Callable[[str, Any], None]


class SupervisorBase:
    """The supervisor's state (set in ``SupervisorActor.__init__``) and its shared helpers."""

    actor_ref: pykka.ActorRef[Any]
    listener: SlotListener | None
    closed_error: type[WorkerClosed]
    key: SessionKey
    config: WorkerConfig
    policy: RestartPolicy
    tracer: Tracer | None
    scheduler: Scheduler
    sampler: MemorySampler | None
    name: str
    counters: Counters
    gate: AdmissionGate
    state: str  # starting, ready, stopping, failed, exhausted, closed
    generation: int
    gen: Generation | None
    _cancel_sent: int | None  # the request id a cancel frame was last sent for
    pending: Pending | None
    ready_waiters: list[Future[int]]
    intensity: RestartIntensity
    restarts: Counter[str]
    sessions_opened: int
    ever_ready: bool
    failure: LeanWorkerError | None
    cycle_pending: str | None
    exhausted_until: float
    closing: Future[ShutdownReport] | None
    _answer_at_exit: bool  # the shutdown's Stop could not be delivered: the exit report answers it
    last_rss: float | None

    def _spawn(self) -> None:
        raise NotImplementedError  # SupervisorActor starts generations

    def _tell_self(self, message: Any) -> None:
        tell_if_alive(self.actor_ref, message)

    def _later(self, delay: float, message: Any) -> TimerHandle:
        return self.scheduler.call_later(delay, lambda: self._tell_self(message))

    def _trace(self, kind: str, request_id: int | None = None, **fields: Any) -> None:
        if self.tracer is not None:
            self.tracer.record(kind, self.name, self.generation, request_id, **fields)

    def _notify(self, event: str, payload: Any) -> None:
        if self.listener is not None:
            try:
                self.listener(event, payload)
            except Exception:  # the listener (the pool) is gone
                pass

    def _current(self, generation: int) -> Generation | None:
        gen = self.gen
        return gen if gen is not None and gen.number == generation and not gen.exited else None

    def _arm_idle_check(self, gen: Generation) -> None:
        if self.policy.idle_cycle_after is not None:
            self._later(self.policy.idle_cycle_after, IdleCheck(gen.number, self.gate.served))

    def _startup_failed(self, gen: Generation, error: LeanWorkerError) -> None:
        if gen.startup_error is None:
            gen.startup_error = error
        self._end_generation(gen, "startup", planned=False, kill=True)

    def _end_generation(self, gen: Generation, reason: str, planned: bool, kill: bool) -> None:
        """Begin ending ``gen``; the restart (or not) happens when its exit arrives."""
        if gen.ending is not None:
            return
        with self.gate.lock:
            self.gate.close_locked()
        gen.ending, gen.planned = reason, planned
        gen.phase = "ending"
        self._cancel_gen_timer(gen)
        self.state = "stopping"
        self._trace("generation_end", reason=reason, planned=planned)
        if self.sampler is not None:
            self.sampler.unwatch(self)
        self._tell_child(gen, Kill(reason) if kill else Stop(Future(), graceful=True))

    def _fail_waiters(self, error: LeanWorkerError) -> None:
        for waiter in self.ready_waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self.ready_waiters.clear()
        if self.pending is not None:
            if not self.pending.reply.done():
                self.pending.reply.set_exception(error)
            self.pending = None

    def _cancel_gen_timer(self, gen: Generation) -> None:
        if gen.timer is not None:
            gen.timer.cancel()
            gen.timer = None

    def _tell_child(self, gen: Generation, message: Kill | Stop) -> bool:
        """The one way to reach a generation's child actor, which may have stopped already.

        A child actor stops only once its process has exited (after its shutdown ladder, or on a failure that
        killed the group), and its reader thread reports that exit in any case. So a message that cannot be
        delivered needs no action now: a pending shutdown reply is answered when the exit is handled.
        """
        if tell_if_alive(gen.child, message):
            return True
        self._trace("child_gone", message=type(message).__name__)
        return False

    def _fail_inflight(self, terminal: Terminal, request_id: int | None = None) -> bool:
        """End the request in flight with ``terminal`` unless its ``done`` won the race. True if this call won."""
        gate = self.gate
        with gate.lock:
            channel = gate.inflight
            if channel is None or (request_id is not None and channel.request_id != request_id):
                return False
            if not channel.finish(terminal):
                return False  # its done arrived first
            gate.fail_locked(channel)
        if self.gen is not None:
            self.gen.router.pop(channel.request_id)
        self._trace("request_failed", channel.request_id, outcome=terminal.outcome)
        return True
