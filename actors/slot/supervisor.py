"""SupervisorActor: one worker slot. Owns the generation counter, the slot's state machine (slot_life.py), request
deadlines, the cancellation ladder, cycling and restarts. It never touches a process itself: it tells its ChildActor
(one per generation) to kill or stop, and hears back how the process ended. Callers admit requests through the
admission gate (gate.py) without a message round trip (the gate arms each request's deadline); the supervisor hears
of a request's ``done`` only when it has something to decide. Messages about a generation are fenced in one place
(:meth:`SupervisorActor.on_receive`): those of an old or exited generation are dropped.

What it decides, it asks pure policies: the slot's life, restarts and intensity (slot_life.py), a generation's
start-up (generation.py), why a generation ends (endings.py), the gate's request state machine (gate_state.py),
who waits for a ready generation (waiting.py), the memory ceilings (memory_ceilings.py) and the shutdown
(closing.py). What it does is messaging and bookkeeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pykka

from leanworker.actors.core.config import RestartPolicy, SessionKey, WorkerConfig
from leanworker.actors.core.intercept import session_open
from leanworker.actors.core.mailbox import stop_if_alive, tell_if_alive
from leanworker.actors.core.results import WorkerSnapshot
from leanworker.actors.core.timers import Scheduler, TimerHandle
from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.slot import endings
from leanworker.actors.slot import messages as msg
from leanworker.actors.slot.channel import CRASHED, PROTOCOL, SHUTDOWN, RequestChannel, Terminal
from leanworker.actors.slot.child import ChildActor
from leanworker.actors.slot.closing import Closing
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.endings import Ending
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.actors.slot.generation import Generation, SlotListener
from leanworker.actors.slot.memory import MemorySampler
from leanworker.actors.slot.memory_watch import MemoryWatch
from leanworker.actors.slot.port import RequestPort
from leanworker.actors.slot.slot_life import CLOSED, EXHAUSTED, FAILED, READY, SlotLife
from leanworker.actors.slot.snapshot import live_pid, worker_snapshot
from leanworker.actors.slot.waiting import Waiting
from leanworker.errors import LeanWorkerError, WorkerClosed
from leanworker.protocol import messages as wire

log = logging.getLogger("leanworker")

# Messages sent with ask(): an error goes to the caller.
ASKED = frozenset({msg.Submit, msg.AwaitReady, msg.TakeSnapshot, msg.Cycle})


class SupervisorActor(pykka.ThreadingActor):
    """One supervised worker slot (see the module docstring)."""

    use_daemon_thread = True  # a forgotten worker must not keep the interpreter alive (atexit still reaps it)

    def __init__(self, key: SessionKey, config: WorkerConfig, policy: RestartPolicy, tracer: TraceSink | None,
                 scheduler: Scheduler, sampler: MemorySampler | None, name: str = "worker",
                 listener: SlotListener | None = None, closed_error: type[WorkerClosed] = WorkerClosed,
                 gate: AdmissionGate | None = None) -> None:
        super().__init__()
        self.listener = listener  # the pool hears: ready, failed, exhausted, restart, memory, generation_ended
        self.key = key
        self.config = config
        self.policy = policy
        self.tracer = tracer
        self.scheduler = scheduler
        self.name = name
        self.gate = gate if gate is not None else AdmissionGate.for_slot(config, policy, scheduler, tracer, name)
        self.gate.bind(self.actor_ref)  # here, in the starter's thread: before the actor runs or the gate opens
        self.counters: Counters = self.gate.counters
        self.life = SlotLife(policy, name, closed_error)
        self.waiting = Waiting()
        self.memory = MemoryWatch(sampler, policy)
        self.closing = Closing()
        self.generation = 0
        self.gen: Generation | None = None
        self.sessions_opened = 0
        self._handlers: dict[type, Callable[[Any], Any]] = {
            msg.Submit: self._on_submit, msg.SubmitLater: self._on_submit_later, msg.CancelRequest: self._on_cancel,
            msg.AwaitReady: self._on_await_ready, msg.Cycle: self._on_cycle, msg.TakeSnapshot: self._on_snapshot,
            msg.Shutdown: self._on_shutdown,
        }
        self._fenced: dict[type, Callable[[Any, Generation], Any]] = {  # messages about one generation
            msg.Spawned: self._on_spawned, msg.SpawnFailed: self._on_spawn_failed, msg.HelloReceived: self._on_hello,
            msg.FrameViolation: self._on_violation, msg.RequestDone: self._on_done, msg.Exited: self._on_exited,
            msg.Deadline: self._on_deadline, msg.IdleCheck: self._on_idle_check, msg.MemorySample: self._on_memory,
        }

    @classmethod
    def start_port(cls, key: SessionKey, config: WorkerConfig, policy: RestartPolicy, tracer: TraceSink | None,
                   scheduler: Scheduler, sampler: MemorySampler | None, name: str = "worker",
                   listener: SlotListener | None = None, closed_error: type[WorkerClosed] = WorkerClosed,
                   gate: AdmissionGate | None = None) -> RequestPort:
        """Start a supervisor and return the port its callers use (its ref and its gate), without a message to the
        new actor: the gate (``gate``, made with :meth:`AdmissionGate.for_slot`, or a new one) is made first and
        handed to it (the pool books a slot and its gate under its lock, which is never held across an ask)."""
        if gate is None:
            gate = AdmissionGate.for_slot(config, policy, scheduler, tracer, name)
        supervisor = cls.start(key, config, policy, tracer, scheduler, sampler, name, listener, closed_error, gate)
        return RequestPort(supervisor, gate, config)

    # -- pykka plumbing ------------------------------------------------------------------------------------------

    def on_start(self) -> None:
        self._spawn()

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if self.tracer is not None:
            self.tracer.record("message", self.name, self.generation, message=kind.__name__)
        handler, fenced = self._handlers.get(kind), self._fenced.get(kind)
        if handler is None and fenced is None:
            raise TypeError(f"{self.name}: unexpected message {message!r}")
        if kind in ASKED and handler is not None:
            return handler(message)  # the caller gets the exception
        try:
            if fenced is None:
                return handler(message) if handler is not None else None
            gen = self.gen  # the one check of a message's generation: the current one, its process not yet exited
            if gen is None or gen.number != message.generation or gen.exited:
                return None
            return fenced(message, gen)
        except Exception:  # in a tell, pykka would stop the actor: log the bug and keep supervising
            log.exception("%s: handling %s failed", self.name, kind.__name__)
            return None

    # -- generations: start-up -----------------------------------------------------------------------------------

    def _spawn(self) -> None:
        self.generation += 1
        number = self.generation
        connection = Connection(number, self.counters)
        child = ChildActor.start(self.actor_ref, number, self.key, self.config, connection, self.gate, self.tracer,
                                 self.name)
        self.gen = Generation(number, child, connection, time.monotonic())
        self.gate.started(number)
        self.gen.timer = self._later(self.config.startup_timeout, msg.Deadline(number, 0, "startup"))
        self.life.starting()
        self._trace("generation_start")

    def _on_spawned(self, message: msg.Spawned, gen: Generation) -> None:
        gen.pid = message.pid
        number = gen.number
        self.memory.watch(message.pid, lambda rss: tell_if_alive(self.actor_ref, msg.MemorySample(number, rss)))

    def _on_spawn_failed(self, message: msg.SpawnFailed, gen: Generation) -> None:
        gen.startup_error = message.error
        self._on_exited(msg.Exited(message.generation, None, None, ""), gen)

    def _on_hello(self, message: msg.HelloReceived, gen: Generation) -> None:
        if gen.hello():
            gen.disarm()
            self._handshake_step(gen, wire.configure(0, self.config.max_frame_bytes))

    def _handshake_step(self, gen: Generation, message: dict[str, Any]) -> None:
        request_id = message["id"] = self.gate.handshake_id()
        gen.begin_step(request_id, message["type"], self.counters)
        bound = gen.step_bound(self.config)
        if bound is not None:
            gen.timer = self._later(bound, msg.Deadline(gen.number, request_id, "session"))
        assert gen.connection.pipe is not None
        try:
            gen.connection.pipe.send(message)  # never blocks (pipe.py); a closed pipe: the exit report is on its way
        except LeanWorkerError as exc:  # session options that are not plain data
            self._end_generation(gen, gen.startup_failed(exc))

    def _on_handshake_done(self, gen: Generation, terminal: Terminal) -> None:
        gen.disarm()
        step = gen.step_answered(terminal)
        if step == "failed":
            assert terminal.error is not None
            self._end_generation(gen, gen.startup_failed(terminal.error))
        elif step == "opening":
            self._open_session(gen)
        elif step == "ready":
            self.sessions_opened += 1
            self._trace("ready", startup_s=round(time.monotonic() - gen.started_at, 6))
            self.life.ready()
            self.gate.open(gen.connection, self.policy.max_requests)
            self._notify("ready", gen.number)
            if not self.waiting.ready(gen.number, self.gate.admit_for):
                self._arm_idle_check(gen)

    def _open_session(self, gen: Generation) -> None:
        key = self.key
        try:
            options, gen.connection.requests = session_open(key, gen.pid)
        except LeanWorkerError as exc:  # an interceptor failed
            self._end_generation(gen, gen.startup_failed(exc))
            return
        self._handshake_step(gen, wire.open_session(0, key.capability, key.workspace, list(key.imports), options))

    # -- generations: the end ------------------------------------------------------------------------------------

    def _on_exited(self, message: msg.Exited, gen: Generation) -> None:
        crash = endings.crash_error(message.exit_code, message.signal, message.stderr_tail)
        channels = gen.close(Terminal(CRASHED, error=crash))
        self.memory.unwatch()
        stop_if_alive(gen.child)
        self.gate.fail_at_exit(gen.number, channels, Terminal(CRASHED, error=crash))
        self._trace("exited", exit_code=message.exit_code, signal=message.signal, reason=gen.ending)
        if not gen.started and not self.closing.active:
            self.waiting.fail(gen.startup_error or crash)
        reason = endings.exit_reason(gen.ending)
        self._notify("generation_ended", (gen.number, reason))
        verdict = self.life.exited(reason, gen.planned, gen.started, self.closing.active, time.monotonic(),
                                   gen.startup_error or crash)
        if verdict == CLOSED:
            self.closing.exited(gen.number, message.exit_code, message.signal)
        elif verdict == FAILED:
            self._notify("failed", self.life.failure)
        else:
            self._trace("restart", reason=reason, planned=gen.planned)
            self._notify("restart", (reason, gen.planned))
            if verdict != EXHAUSTED:
                self._spawn()
                return
            assert self.life.failure is not None
            self._trace("exhausted", restarts=self.life.intensity.count)
            self.waiting.fail(self.life.failure)
            self._notify("exhausted", self.life.failure)

    def _end_generation(self, gen: Generation, ending: Ending) -> None:
        """Begin ending ``gen``; the restart (or not) happens when its exit arrives."""
        if not gen.end(ending.reason, ending.planned):
            return
        self.gate.close()
        gen.disarm()
        self.life.stopping()
        self._trace("generation_end", reason=ending.reason, planned=ending.planned)
        self.memory.unwatch()
        self._tell_child(gen, msg.Kill(ending.reason) if ending.kill else msg.Stop(Future(), graceful=True))

    def _settle(self, gen: Generation, terminal: Terminal, ending: Ending, request_id: int | None = None) -> None:
        """End the request in flight with ``terminal`` unless its ``done`` won the race, then ``gen`` with ``ending``;
        for a deadline of ``request_id`` the generation ends only if the request was still in flight."""
        if self.gate.fail_inflight(terminal, request_id) or request_id is None:
            self._end_generation(gen, ending)

    def _cycle(self, gen: Generation, reason: str) -> None:
        """Replace ``gen`` now if idle, else as soon as its request in flight ends."""
        if self.gate.cycle_when_idle(reason):
            self._end_generation(gen, Ending.cycle(reason))

    # -- requests ------------------------------------------------------------------------------------------------

    def _on_done(self, message: msg.RequestDone, gen: Generation) -> None:
        """A request ended with a done that needs a decision (the gate closed itself, or a policy watches)."""
        if gen.handshake is not None and gen.handshake.request_id == message.request_id:
            self._on_handshake_done(gen, message.terminal)
            return
        self._trace("request_done", message.request_id, outcome=message.terminal.outcome)
        if gen.ending is not None:
            return
        ending = endings.after_done(message.terminal.outcome, self.gate.is_open, self.gate.cycle_pending)
        if ending is None:
            self._arm_idle_check(gen)
        else:
            self._end_generation(gen, ending)

    def _on_submit(self, message: msg.Submit, reply: Future[RequestChannel] | None = None
                   ) -> RequestChannel | Future[RequestChannel]:
        """The slow path, for requests the gate did not admit at once. A request that must wait for the generation
        being started is answered through ``reply`` (a new future if None), which is returned."""
        if self.life.door(self.closing.active, message.expect_generation, self.generation, time.monotonic()):
            self._spawn()
        channel = self.gate.admit_for(message)
        if channel is not None:
            return channel
        return self.waiting.hold(message, reply, self.gate.inflight is not None, self.name)

    def _on_submit_later(self, message: msg.SubmitLater) -> None:
        """The slow path for a caller that must not block: the answer of :meth:`_on_submit` goes to its reply."""
        withdrawn = self.waiting.answer_later(message.reply, lambda: self._on_submit(message.submit, message.reply))
        if withdrawn is not None:  # the caller gave up before its request was admitted: stop it at once
            self._on_cancel(msg.CancelRequest(withdrawn.request_id))

    def _on_cancel(self, message: msg.CancelRequest) -> None:
        gen = self.gen
        pipe = gen.connection.pipe if gen is not None else None
        channel = self.gate.cancel(message.request_id) if pipe is not None else None
        if gen is None or pipe is None or channel is None:
            return
        self._trace("cancel", message.request_id)
        pipe.send(wire.cancel(message.request_id))
        channel.timers.append(self._later(self.config.cancel_grace,
                                          msg.Deadline(gen.number, message.request_id, "cancel")))

    def _on_deadline(self, message: msg.Deadline, gen: Generation) -> None:
        if message.kind in ("startup", "session"):
            startup_error = gen.startup_deadline(message.kind, message.request_id, self.config.startup_timeout,
                                                 self.config.session_open_timeout)
            if startup_error is not None:
                self._end_generation(gen, gen.startup_failed(startup_error))
            return
        expiry = endings.after_deadline(message.kind, message.request_id, self.gate.inflight,
                                        f"{self.name}/{gen.number}", self.config.cancel_grace)
        if expiry is not None:
            self._settle(gen, *expiry, request_id=message.request_id)

    def _on_violation(self, message: msg.FrameViolation, gen: Generation) -> None:
        startup_error = gen.startup_violation(message.error)
        if startup_error is not None:  # the generation never became ready: a failed start-up
            self._end_generation(gen, gen.startup_failed(startup_error))
            return
        self._settle(gen, Terminal(PROTOCOL, error=message.error), endings.after_violation())

    # -- cycling and memory --------------------------------------------------------------------------------------

    def _on_idle_check(self, message: msg.IdleCheck, gen: Generation) -> None:
        if gen.ending is None and self.gate.idle_since(message.served):
            self._end_generation(gen, Ending.cycle(endings.IDLE))

    def _on_cycle(self, message: msg.Cycle) -> None:
        gen = self.gen
        if gen is not None and gen.replaceable and not self.closing.active:
            self._cycle(gen, message.reason)

    def _on_memory(self, message: msg.MemorySample, gen: Generation) -> None:
        rss = message.rss_mib
        self._notify("memory", rss)
        judged = self.memory.sample(rss, self.gate.cycle_pending is not None, gen.serving)
        if judged is None:
            return
        verdict, terminal, ending = judged
        self._trace(verdict, rss_mib=round(rss or 0.0, 1))
        if terminal is None:
            self._cycle(gen, ending.reason)
        else:
            self._settle(gen, terminal, ending)

    # -- readiness, snapshots, shutdown ------------------------------------------------------------------------

    def _on_await_ready(self, message: msg.AwaitReady) -> Future[int]:
        ready = self.gen.number if self.life.state == READY and self.gen is not None else None
        return self.waiting.await_ready(ready, self.life.refusal(self.closing.active))

    def _on_snapshot(self, message: msg.TakeSnapshot) -> WorkerSnapshot:
        pid = live_pid(self.gen)
        return worker_snapshot(self.life, self.gate, self.counters, self.gen, self.generation, self.memory.rss(pid),
                               self.sessions_opened)

    def _on_shutdown(self, message: msg.Shutdown) -> None:
        if not self.closing.begin(message.reply):
            return
        closed = self.life.closed_error(f"worker {self.name} was shut down")
        self.gate.close()
        self.gate.fail_inflight(Terminal(SHUTDOWN, error=closed))
        self.waiting.fail(closed)
        gen = self.gen
        self.life.stopping()
        self.memory.unwatch()
        if gen is None or gen.exited:
            self.closing.no_process(gen.number if gen is not None else 0)
            self.life.closed()
            return
        gen.disarm()
        at_once = gen.before_ready  # no session to close, and no frame read while one opens: its open is abandoned
        gen.ending = gen.ending or endings.SHUTDOWN_REASON
        if not self._tell_child(gen, msg.Stop(message.reply, graceful=True, at_once=at_once)):
            self.closing.stop_undelivered()

    # -- helpers -----------------------------------------------------------------------------------------------

    def _later(self, delay: float, message: Any) -> TimerHandle:
        return self.scheduler.tell_later(delay, self.actor_ref, message)

    def _trace(self, kind: str, request_id: int | None = None, **fields: Any) -> None:
        if self.tracer is not None:
            self.tracer.record(kind, self.name, self.generation, request_id, **fields)

    def _notify(self, event: str, payload: Any) -> None:
        if self.listener is not None:
            try:
                self.listener(event, payload)
            except Exception:  # the listener (the pool) is gone
                pass

    def _arm_idle_check(self, gen: Generation) -> None:
        if self.policy.idle_cycle_after is not None:
            self._later(self.policy.idle_cycle_after, msg.IdleCheck(gen.number, self.gate.served))

    def _tell_child(self, gen: Generation, message: msg.Kill | msg.Stop) -> bool:
        """The one way to reach a generation's child actor, which may have stopped already.

        A child actor stops only once its process has exited (after its shutdown ladder, or on a failure that
        killed the group), and its reader thread reports that exit in any case. So a message that cannot be
        delivered needs no action now: a pending shutdown reply is answered when the exit is handled.
        """
        if tell_if_alive(gen.child, message):
            return True
        self._trace("child_gone", message=type(message).__name__)
        return False
