"""SupervisorActor: one worker slot. Owns the generation counter, the slot's state machine, request deadlines,
the cancellation ladder, cycling policy and restart intensity. It never touches a process itself: it tells its
ChildActor (one per generation) to kill or stop, and hears back how the process ended.

States: starting, idle, busy, stopping (a planned cycle or a kill in progress), failed (never became ready),
exhausted (restart intensity passed), closed. Idle and busy are "ready" with the admission gate (gate.py) idle or
holding a request: callers admit requests through the gate without a message round trip, and the supervisor
hears of each one (``Started``) before its frame is written.

This module holds the actor and the generations' life (spawn, handshake, exit, restart); the state and shared
helpers are in supervisor_base.py, the request, deadline, cycling and memory handlers in supervisor_requests.py,
readiness, snapshots and shutdown in supervisor_control.py.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pykka

from leanworker.actors.core.config import RestartPolicy, SessionKey, WorkerConfig
from leanworker.actors.core.results import ShutdownReport
from leanworker.actors.core.timers import Scheduler
from leanworker.actors.core.tracing import Tracer
from leanworker.actors.slot.channel import CRASHED, OK, PROTOCOL, Counters, RequestChannel, Router, Terminal
from leanworker.actors.slot.child import ChildActor
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.actors.slot.intensity import RestartIntensity
from leanworker.actors.slot.memory import MemorySampler
from leanworker.actors.slot.messages import (
    AwaitReady,
    CancelRequest,
    Cycle,
    Deadline,
    Exited,
    FrameViolation,
    HelloReceived,
    IdleCheck,
    MemorySample,
    RequestDone,
    Shutdown,
    Spawned,
    SpawnFailed,
    Stop,
    Submit,
    TakeSnapshot,
)
from leanworker.actors.slot.supervisor_base import Generation, Pending, SlotListener
from leanworker.actors.slot.supervisor_control import ControlHandlers
from leanworker.actors.slot.supervisor_requests import RequestHandlers
from leanworker.errors import (
    LeanWorkerError,
    RestartLimitExceeded,
    StaleLease,
    WorkerClosed,
    WorkerCrashed,
)
from leanworker.protocol import messages

log = logging.getLogger("leanworker")

HANDSHAKE_BUFFER = 16
ASKED = frozenset({Submit, AwaitReady, TakeSnapshot, Cycle})  # messages sent with ask(): errors go to the caller


class SupervisorActor(RequestHandlers, ControlHandlers, pykka.ThreadingActor):
    """One supervised worker slot (see the module docstring)."""

    use_daemon_thread = True  # a forgotten worker must not keep the interpreter alive (atexit still reaps it)

    def __init__(self, key: SessionKey, config: WorkerConfig, policy: RestartPolicy, tracer: Tracer | None,
                 scheduler: Scheduler, sampler: MemorySampler | None, name: str = "worker",
                 listener: SlotListener | None = None, closed_error: type[WorkerClosed] = WorkerClosed) -> None:
        super().__init__()
        self.listener = listener  # the pool hears: ready, failed, exhausted, restart, memory
        self.closed_error = closed_error
        self.key = key
        self.config = config
        self.policy = policy
        self.tracer = tracer
        self.scheduler = scheduler
        self.sampler = sampler
        self.name = name
        self.counters = Counters()
        self.gate = AdmissionGate(self.actor_ref, self.counters, scheduler, config.buffer_rows,
                                  config.request_timeout, tracer, name, policy.idle_cycle_after is not None,
                                  config.buffer_bytes)
        self.state = "starting"  # starting, ready, stopping, failed, exhausted, closed
        self.generation = 0
        self.gen: Generation | None = None
        self._cancel_sent: int | None = None  # the request id a cancel frame was last sent for
        self.pending: Pending | None = None
        self.ready_waiters: list[Future[int]] = []
        self.intensity = RestartIntensity(policy.max_restarts, policy.restart_window)
        self.restarts: Counter[str] = Counter()
        self.sessions_opened = 0
        self.ever_ready = False
        self.failure: LeanWorkerError | None = None
        self.cycle_pending: str | None = None
        self.exhausted_until = 0.0
        self.closing: Future[ShutdownReport] | None = None
        self._answer_at_exit = False  # the shutdown's Stop could not be delivered: the exit report answers it
        self.last_rss: float | None = None
        self._handlers: dict[type, Callable[[Any], Any]] = {
            Spawned: self._on_spawned,
            SpawnFailed: self._on_spawn_failed,
            HelloReceived: self._on_hello,
            FrameViolation: self._on_violation,
            RequestDone: self._on_done,
            Exited: self._on_exited,
            Deadline: self._on_deadline,
            IdleCheck: self._on_idle_check,
            MemorySample: self._on_memory,
            Submit: self._on_submit,
            CancelRequest: self._on_cancel,
            AwaitReady: self._on_await_ready,
            Cycle: self._on_cycle,
            TakeSnapshot: self._on_snapshot,
            Shutdown: self._on_shutdown,
        }

    # -- pykka plumbing ------------------------------------------------------------------------------------------

    def on_start(self) -> None:
        self._spawn()

    def on_receive(self, message: Any) -> Any:
        tracer = self.tracer
        if tracer is not None:
            tracer.record("message", self.name, self.generation, message=type(message).__name__)
        handler = self._handlers.get(type(message))
        if handler is None:
            raise TypeError(f"{self.name}: unexpected message {message!r}")
        if type(message) in ASKED:
            return handler(message)  # the caller gets the exception
        try:
            return handler(message)
        except Exception:  # in a tell, pykka would stop the actor: log the bug and keep supervising
            log.exception("%s: handling %s failed", self.name, type(message).__name__)
            return None

    # -- generations ---------------------------------------------------------------------------------------------

    def _spawn(self) -> None:
        self.generation += 1
        number = self.generation
        router = Router(number, self.counters)
        child = ChildActor.start(self.actor_ref, number, self.key, self.config, router, self.gate, self.tracer,
                                 self.name)
        self.gen = Generation(number, child, router, time.monotonic())
        self.gate.latest_generation = number
        self.gen.timer = self._later(self.config.startup_timeout, Deadline(number, 0, "startup"))
        self.state = "starting"
        self._trace("generation_start")

    def _on_spawned(self, message: Spawned) -> None:
        gen = self._current(message.generation)
        if gen is None:
            return
        gen.pid, gen.pipe = message.pid, message.pipe
        if self.sampler is not None:
            number = gen.number
            self.sampler.watch(self, message.pid, lambda rss: self._tell_self(MemorySample(number, rss)))

    def _on_spawn_failed(self, message: SpawnFailed) -> None:
        gen = self._current(message.generation)
        if gen is not None:
            gen.startup_error = message.error
            self._on_exited(Exited(message.generation, None, None, ""))

    def _on_hello(self, message: HelloReceived) -> None:
        gen = self._current(message.generation)
        if gen is None or gen.phase != "spawning":
            return
        self._cancel_gen_timer(gen)
        gen.phase = "configuring"
        self._handshake_step(gen, messages.configure(0, self.config.max_frame_bytes))

    def _handshake_step(self, gen: Generation, message: dict[str, Any]) -> None:
        request_id = next(self.gate.ids)
        self.gate.last_id = max(self.gate.last_id, request_id)
        message["id"] = request_id
        channel = RequestChannel(request_id, gen.number, message["type"], False, HANDSHAKE_BUFFER, self.counters)
        gen.router.register(channel)
        gen.handshake = channel
        timeout = self.config.startup_timeout if message["type"] == "configure" else self.config.request_timeout
        if timeout is not None:
            gen.timer = self._later(timeout, Deadline(gen.number, request_id, "session"))
        assert gen.pipe is not None
        try:
            gen.pipe.send(message)  # never blocks (pipe.py); a closed pipe means the exit report is on its way
        except LeanWorkerError as exc:  # session options that are not plain data
            self._startup_failed(gen, exc)

    def _on_handshake_done(self, gen: Generation, terminal: Terminal) -> None:
        self._cancel_gen_timer(gen)
        gen.handshake = None
        if terminal.outcome != OK:
            assert terminal.error is not None
            self._startup_failed(gen, terminal.error)
            return
        if gen.phase == "configuring":
            gen.phase = "opening"
            key = self.key
            self._handshake_step(gen, messages.open_session(0, key.capability, key.workspace, list(key.imports),
                                                            key.options_dict()))
            return
        gen.phase = "ready"
        self.sessions_opened += 1
        self.ever_ready = True
        self._trace("ready", startup_s=round(time.monotonic() - gen.started_at, 6))
        self.state = "ready"
        with self.gate.lock:
            self.gate.open_locked(gen.number, gen.router, gen.pipe, self.policy.max_requests)
        for waiter in self.ready_waiters:
            if not waiter.done():
                waiter.set_result(gen.number)
        self.ready_waiters.clear()
        self._notify("ready", gen.number)
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._admit_pending(pending)
        else:
            self._arm_idle_check(gen)

    def _admit_pending(self, pending: Pending) -> None:
        try:
            channel = self.gate.try_admit(pending.submit)
        except LeanWorkerError as exc:
            pending.reply.set_exception(exc)
            return
        if channel is None:
            pending.reply.set_exception(StaleLease(f"generation {pending.submit.expect_generation} has ended"))
        else:
            pending.reply.set_result(channel)

    def _on_exited(self, message: Exited) -> None:
        gen = self._current(message.generation)
        if gen is None:
            return
        gen.exited = True
        self._cancel_gen_timer(gen)
        with self.gate.lock:
            self.gate.close_locked()
            self.gate.inflight = None
        if self.sampler is not None:
            self.sampler.unwatch(self)
        try:
            gen.child.stop(block=False)
        except pykka.ActorDeadError:
            pass
        crash = WorkerCrashed(_describe_exit(message), exit_code=message.exit_code, signal=message.signal,
                              stderr_tail=message.stderr_tail)
        for channel in gen.router.close():
            if channel.finish(Terminal(CRASHED, error=crash)) and channel is not gen.handshake:
                with self.gate.lock:
                    self.gate.fail_locked(channel)
                self._trace("request_failed", channel.request_id, outcome=CRASHED)
        self._trace("exited", exit_code=message.exit_code, signal=message.signal, reason=gen.ending)
        if self.closing is not None:
            self.state = "closed"
            if self._answer_at_exit and not self.closing.done():  # our Stop found the child stopped
                self.closing.set_result(ShutdownReport("already_exited", gen.number, message.exit_code,
                                                       message.signal, 0.0))
            return
        if gen.phase not in ("ready", "ending") or gen.startup_error is not None:
            self._fail_waiters(gen.startup_error or crash)
            if not self.ever_ready:
                self.state = "failed"
                self.failure = gen.startup_error or crash
                self._notify("failed", self.failure)
                return
        reason = gen.ending or "crash"
        self.restarts[reason] += 1
        self._notify("restart", (reason, gen.planned))
        if not gen.planned and not self._restart_allowed():
            return
        self._spawn()

    def _restart_allowed(self) -> bool:
        now = time.monotonic()
        retry = self.intensity.record(now)
        if retry is None:
            return True
        count, window = self.intensity.count, self.policy.restart_window
        self.state = "exhausted"
        self.exhausted_until = now + retry
        self.failure = RestartLimitExceeded(
            f"worker {self.name} restarted {count} times in {window:g} s (limit {self.policy.max_restarts});"
            f" it may be tried again in {retry:.1f} s", retry_after=retry)
        self._trace("exhausted", restarts=count)
        self._fail_waiters(self.failure)
        self._notify("exhausted", self.failure)
        return False

    # -- requests ------------------------------------------------------------------------------------------------

    def _on_done(self, message: RequestDone) -> None:
        """A request ended with a done that needs a decision (the gate closed itself, or a policy watches)."""
        gen = self._current(message.generation)
        if gen is None:
            return
        if gen.handshake is not None and gen.handshake.request_id == message.request_id:
            self._on_handshake_done(gen, message.terminal)
            return
        self._trace("request_done", message.request_id, outcome=message.terminal.outcome)
        if gen.ending is not None:
            return
        if message.terminal.outcome == PROTOCOL:  # rows were lost: this worker cannot be trusted
            self._end_generation(gen, "protocol", planned=False, kill=True)
            return
        if not self.gate.is_open:  # the reader closed it: request budget spent, or a cycle was pending
            reason = self.cycle_pending or "max_requests"
            self.cycle_pending = None
            self._end_generation(gen, reason, planned=True, kill=False)
            return
        self._arm_idle_check(gen)


def _describe_exit(exited: Exited) -> str:
    if exited.signal is not None:
        return f"worker was killed by signal {exited.signal}"
    if exited.exit_code is not None:
        return f"worker exited with code {exited.exit_code}"
    return "worker could not be started"
