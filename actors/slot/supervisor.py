"""SupervisorActor: one worker slot. Owns the generation counter, the slot's state machine, request deadlines,
the cancellation ladder, cycling policy and restart intensity. It never touches a process itself: it tells its
ChildActor (one per generation) to kill or stop, and hears back how the process ended.

States: starting, idle, busy, stopping (a planned cycle or a kill in progress), failed (never became ready),
exhausted (restart intensity passed), closed. Idle and busy are "ready" with the admission gate (gate.py) idle or
holding a request: callers admit requests through the gate without a message round trip, and the supervisor
hears of each one (``Started``) before its frame is written.

Its decisions are policies it consults: restart intensity (intensity.py), the gate's request state machine
(gate.py), the memory ceilings (RestartPolicy); what it does is messaging and bookkeeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pykka

from leanworker.actors.core.config import RestartPolicy, SessionKey, WorkerConfig
from leanworker.actors.core.intercept import intercept
from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.process_tree import sample_tree_mib
from leanworker.actors.core.results import ShutdownReport, WorkerSnapshot
from leanworker.actors.core.timers import Scheduler, TimerHandle
from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.slot.channel import (
    CANCELLED,
    CRASHED,
    MEMORY,
    OK,
    PROTOCOL,
    SHUTDOWN,
    TIMEOUT,
    RequestChannel,
    Terminal,
)
from leanworker.actors.slot.child import ChildActor
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.actors.slot.generation import Generation, Pending, SlotListener
from leanworker.actors.slot.memory import MemorySampler
from leanworker.actors.slot.memory_ceilings import HARD, SOFT, MemoryCeilings
from leanworker.actors.slot.messages import (
    AwaitReady,
    CancelRequest,
    Cycle,
    Deadline,
    Exited,
    FrameViolation,
    HelloReceived,
    IdleCheck,
    Kill,
    MemorySample,
    RequestDone,
    Shutdown,
    Spawned,
    SpawnFailed,
    Stop,
    Submit,
    SubmitLater,
    TakeSnapshot,
)
from leanworker.actors.slot.slot_life import CLOSED, EXHAUSTED, FAILED, SlotLife
from leanworker.errors import (
    Cancelled,
    LeanWorkerError,
    MemoryLimitExceeded,
    RequestTimeout,
    RestartLimitExceeded,
    StaleLease,
    WorkerBusy,
    WorkerClosed,
    WorkerCrashed,
)
from leanworker.protocol import messages

log = logging.getLogger("leanworker")

HANDSHAKE_BUFFER = 16
ASKED = frozenset({Submit, AwaitReady, TakeSnapshot, Cycle})  # messages sent with ask(): errors go to the caller


class SupervisorActor(pykka.ThreadingActor):
    """One supervised worker slot (see the module docstring)."""

    use_daemon_thread = True  # a forgotten worker must not keep the interpreter alive (atexit still reaps it)

    def __init__(self, key: SessionKey, config: WorkerConfig, policy: RestartPolicy, tracer: TraceSink | None,
                 scheduler: Scheduler, sampler: MemorySampler | None, name: str = "worker",
                 listener: SlotListener | None = None, closed_error: type[WorkerClosed] = WorkerClosed) -> None:
        super().__init__()
        self.listener = listener  # the pool hears: ready, failed, exhausted, restart, memory, generation_ended
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
        self.life = SlotLife(policy)  # the slot's state, restarts and intensity (slot_life.py)
        self.generation = 0
        self.gen: Generation | None = None
        self._cancel_sent: int | None = None  # the request id a cancel frame was last sent for
        self.pending: Pending | None = None
        self.ready_waiters: list[Future[int]] = []
        self.ceilings = MemoryCeilings(policy)
        self.sessions_opened = 0
        self.failure: LeanWorkerError | None = None
        self.cycle_pending: str | None = None
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
            SubmitLater: self._on_submit_later,
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
        connection = Connection(number, self.counters)
        child = ChildActor.start(self.actor_ref, number, self.key, self.config, connection, self.gate, self.tracer,
                                 self.name)
        self.gen = Generation(number, child, connection, time.monotonic())
        self.gate.started(number)
        self.gen.timer = self._later(self.config.startup_timeout, Deadline(number, 0, "startup"))
        self.life.starting()
        self._trace("generation_start")

    def _on_spawned(self, message: Spawned) -> None:
        gen = self._current(message.generation)
        if gen is None:
            return
        gen.pid = message.pid
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
        if gen is None or not gen.hello():
            return
        self._cancel_gen_timer(gen)
        self._handshake_step(gen, messages.configure(0, self.config.max_frame_bytes))

    def _handshake_step(self, gen: Generation, message: dict[str, Any]) -> None:
        request_id = self.gate.handshake_id()
        message["id"] = request_id
        channel = RequestChannel(request_id, gen.number, message["type"], False, HANDSHAKE_BUFFER, self.counters)
        gen.connection.register(channel)
        gen.handshake = channel
        timeout = (self.config.startup_timeout if message["type"] == "configure"
                   else self.config.session_open_timeout)
        if timeout is not None:
            gen.timer = self._later(timeout, Deadline(gen.number, request_id, "session"))
        assert gen.connection.pipe is not None
        try:
            gen.connection.pipe.send(message)  # never blocks (pipe.py); a closed pipe means the exit report is on its way
        except LeanWorkerError as exc:  # session options that are not plain data
            self._startup_failed(gen, exc)

    def _on_handshake_done(self, gen: Generation, terminal: Terminal) -> None:
        self._cancel_gen_timer(gen)
        if terminal.outcome != OK:
            gen.handshake = None
            assert terminal.error is not None
            self._startup_failed(gen, terminal.error)
            return
        if gen.step_done() == "opening":
            key = self.key
            options = key.options_dict()
            try:
                intercepted = intercept(key, gen.pid)
            except Exception as exc:  # an interceptor's bug fails this start-up, typed, instead of the actor
                self._startup_failed(gen, LeanWorkerError(f"an interceptor failed: {type(exc).__name__}: {exc}"))
                return
            if intercepted is not None:
                options.update(intercepted.options)
                gen.connection.requests = intercepted.requests
            self._handshake_step(gen, messages.open_session(0, key.capability, key.workspace, list(key.imports),
                                                            options))
            return
        self.sessions_opened += 1
        self._trace("ready", startup_s=round(time.monotonic() - gen.started_at, 6))
        self.life.ready()
        self.gate.open(gen.connection, self.policy.max_requests)
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
        if not pending.reply.set_running_or_notify_cancel():
            return  # withdrawn while it waited (an event loop's caller gave up): nothing is sent
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
        if self.sampler is not None:
            self.sampler.unwatch(self)
        try:
            gen.child.stop(block=False)
        except pykka.ActorDeadError:
            pass
        crash = WorkerCrashed(_describe_exit(message), exit_code=message.exit_code, signal=message.signal,
                              stderr_tail=message.stderr_tail)
        channels = gen.connection.close()
        if gen.handshake in channels:
            channels.remove(gen.handshake)
            gen.handshake.finish(Terminal(CRASHED, error=crash))
        for channel in self.gate.fail_at_exit(channels, Terminal(CRASHED, error=crash)):
            if self.tracer is not None:
                self._trace("request_failed", channel.request_id, outcome=CRASHED, error="WorkerCrashed",
                            rows=channel.rows_received())
        self._trace("exited", exit_code=message.exit_code, signal=message.signal, reason=gen.ending)
        started = gen.started
        if not started and self.closing is None:
            self._fail_waiters(gen.startup_error or crash)
        reason = gen.ending or "crash"
        self._notify("generation_ended", (gen.number, reason))
        verdict = self.life.exited(reason, gen.planned, started, self.closing is not None, time.monotonic())
        if verdict == CLOSED:
            assert self.closing is not None
            if self._answer_at_exit and not self.closing.done():  # our Stop found the child stopped
                self.closing.set_result(ShutdownReport("already_exited", gen.number, message.exit_code,
                                                       message.signal, 0.0))
        elif verdict == FAILED:
            self.failure = gen.startup_error or crash
            self._notify("failed", self.failure)
        else:
            self._trace("restart", reason=reason, planned=gen.planned)
            self._notify("restart", (reason, gen.planned))
            if verdict == EXHAUSTED:
                self._exhausted()
            else:
                self._spawn()

    def _exhausted(self) -> None:
        life = self.life
        count, window = life.intensity.count, self.policy.restart_window
        self.failure = RestartLimitExceeded(
            f"worker {self.name} restarted {count} times in {window:g} s (limit {self.policy.max_restarts});"
            f" it may be tried again in {life.retry_after:.1f} s", retry_after=life.retry_after)
        self._trace("exhausted", restarts=count)
        self._fail_waiters(self.failure)
        self._notify("exhausted", self.failure)

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

    # -- the slow admission path, cancel, deadlines, violations, cycling, memory --------------------------------

    def _on_submit(self, message: Submit, reply: Future[RequestChannel] | None = None
                   ) -> RequestChannel | Future[RequestChannel]:
        """The slow path, for requests the gate did not admit at once. A request that must wait for the generation
        being started is answered through ``reply`` (a new future if None), which is returned."""
        state = self.life.state
        if self.closing is not None or state == CLOSED:
            raise self.closed_error(f"worker {self.name} is shut down")
        if message.expect_generation is not None and message.expect_generation != self.generation:
            raise StaleLease(f"generation {message.expect_generation} of {self.name} has ended")
        if state == FAILED or (state == EXHAUSTED and not self.life.may_start_again(time.monotonic())):
            assert self.failure is not None
            raise self.failure
        if state == EXHAUSTED:
            self._spawn()
        channel = self.gate.try_admit(message)
        if channel is not None:
            return channel
        if self.pending is not None and self.pending.reply.cancelled():
            self.pending = None  # its caller withdrew it: it never runs
        if self.gate.inflight is not None or self.pending is not None:
            raise WorkerBusy(f"worker {self.name} is running another request")
        self.pending = Pending(message) if reply is None else Pending(message, reply)
        return self.pending.reply

    def _on_submit_later(self, message: SubmitLater) -> None:
        """The slow path for a caller that must not block: the answer of :meth:`_on_submit` goes to its reply."""
        reply = message.reply
        try:
            answer = self._on_submit(message.submit, reply)
        except Exception as exc:  # as an ask would raise it in the caller
            if reply.set_running_or_notify_cancel():
                reply.set_exception(exc)
            return
        if isinstance(answer, Future):
            return  # pending: the reply is answered when the generation is ready (or fails), unless withdrawn
        if reply.set_running_or_notify_cancel():
            reply.set_result(answer)
        else:  # the caller gave up before its request was admitted: stop it at once
            answer.abandon()
            self._on_cancel(CancelRequest(answer.request_id))

    def _on_cancel(self, message: CancelRequest) -> None:
        gen = self.gen
        channel = self.gate.inflight
        pipe = gen.connection.pipe if gen is not None else None
        if gen is None or pipe is None or channel is None or channel.request_id != message.request_id:
            return
        if self._cancel_sent == message.request_id:
            return  # already asked
        self._cancel_sent = message.request_id
        self._trace("cancel", message.request_id)
        pipe.send(messages.cancel(message.request_id))
        channel.timers.append(self._later(self.config.cancel_grace,
                                          Deadline(gen.number, message.request_id, "cancel")))

    def _on_deadline(self, message: Deadline) -> None:
        gen = self._current(message.generation)
        if gen is None:
            return
        if message.kind in ("startup", "session"):
            startup_error = gen.startup_deadline(message.kind, message.request_id, self.config.startup_timeout,
                                                 self.config.session_open_timeout)
            if startup_error is not None:
                self._startup_failed(gen, startup_error)
            return
        inflight = self.gate.inflight
        command = inflight.command if inflight is not None and inflight.request_id == message.request_id else "?"
        label = f"{command!r} (request {self.name}/{gen.number}/{message.request_id})"
        if message.kind == "request":
            limit = inflight.timeout if inflight is not None and inflight.timeout is not None else 0.0
            error: LeanWorkerError = RequestTimeout(f"{label} did not finish within {limit:g} s; the worker was "
                                                    "killed")
            if self._fail_inflight(Terminal(TIMEOUT, error=error), message.request_id):
                self._end_generation(gen, "timeout", planned=False, kill=True)
        elif message.kind == "cancel":
            error = Cancelled(f"{label} ignored cancel for {self.config.cancel_grace:g} s; the worker was killed")
            if self._fail_inflight(Terminal(CANCELLED, error=error), message.request_id):
                self._end_generation(gen, "cancel", planned=False, kill=True)

    def _on_violation(self, message: FrameViolation) -> None:
        gen = self._current(message.generation)
        if gen is None:
            return
        startup_error = gen.startup_violation(message.error)
        if startup_error is not None:  # the generation never became ready: a failed start-up
            self._startup_failed(gen, startup_error)
            return
        self._fail_inflight(Terminal(PROTOCOL, error=message.error))
        self._end_generation(gen, "protocol", planned=False, kill=True)

    def _cycle(self, gen: Generation, reason: str) -> None:
        """Replace ``gen`` now if idle, else as soon as its request in flight ends."""
        if self.gate.cycle_when_idle():
            self._end_generation(gen, reason, planned=True, kill=False)
        elif self.gate.inflight is not None:
            self.cycle_pending = reason

    def _on_idle_check(self, message: IdleCheck) -> None:
        gen = self._current(message.generation)
        if gen is None or gen.ending is not None:
            return
        if self.gate.idle_since(message.served):
            self._end_generation(gen, "idle", planned=True, kill=False)

    def _on_cycle(self, message: Cycle) -> None:
        gen = self.gen
        if gen is not None and not gen.exited and gen.ending is None and self.closing is None:
            self._cycle(gen, message.reason)

    def _on_memory(self, message: MemorySample) -> None:
        gen = self._current(message.generation)
        if gen is None:
            return
        self.last_rss = message.rss_mib
        self._notify("memory", message.rss_mib)
        if gen.ending is not None or gen.phase != "ready":
            return  # already being replaced
        rss = message.rss_mib
        verdict = self.ceilings.verdict(rss, self.cycle_pending is not None)
        if verdict is None:
            return
        assert rss is not None
        self._trace(verdict, rss_mib=round(rss, 1))
        if verdict == HARD:
            error = MemoryLimitExceeded(f"worker used {rss:.0f} MiB, over the hard limit of {self.ceilings.hard_mib} "
                                        "MiB", rss_mib=rss, limit_mib=self.ceilings.hard_mib)
            self._fail_inflight(Terminal(MEMORY, error=error))
            self._end_generation(gen, HARD, planned=False, kill=True)
        else:
            self._cycle(gen, SOFT)

    # -- readiness, snapshots, shutdown ------------------------------------------------------------------------

    def _on_await_ready(self, message: AwaitReady) -> Future[int]:
        future: Future[int] = Future()
        if self.life.state == "ready" and self.gen is not None:
            future.set_result(self.gen.number)
        elif self.life.state in (FAILED, EXHAUSTED) and self.failure is not None:
            future.set_exception(self.failure)
        elif self.closing is not None:
            future.set_exception(self.closed_error(f"worker {self.name} is shut down"))
        else:
            self.ready_waiters.append(future)
        return future

    def _on_snapshot(self, message: TakeSnapshot) -> WorkerSnapshot:
        gen = self.gen
        pid = gen.pid if gen is not None and not gen.exited else None
        rss = self.last_rss if self.sampler is not None else (sample_tree_mib(pid) if pid else None)
        state = self.life.state
        if state == "ready":
            state = "busy" if self.gate.inflight is not None else "idle"
        return WorkerSnapshot(
            state=state,
            generation=self.generation,
            pid=pid,
            requests_ok=self.gate.requests_ok,
            requests_failed=self.gate.requests_failed,
            requests_this_generation=self.gate.served if gen is not None and gen.phase == "ready" else 0,
            rows_delivered=self.counters.rows_delivered,
            restarts=dict(self.life.restarts),
            rss_mib=rss,
            stale_frames_dropped=self.counters.stale_frames_dropped,
            backpressure_waits=self.counters.backpressure_waits,
            sessions_opened=self.sessions_opened,
            events_dropped=self.counters.events_dropped,
            answers_read_by_caller=self.counters.answers_read_by_caller,
        )

    def _on_shutdown(self, message: Shutdown) -> None:
        if self.closing is not None:
            self.closing.add_done_callback(lambda done: _copy_future(done, message.reply))
            return
        self.closing = message.reply
        closed = self.closed_error(f"worker {self.name} was shut down")
        self.gate.close()
        self._fail_inflight(Terminal(SHUTDOWN, error=closed))
        self._fail_waiters(closed)
        gen = self.gen
        self.life.stopping()
        if self.sampler is not None:
            self.sampler.unwatch(self)
        if gen is None or gen.exited:
            number = gen.number if gen is not None else 0
            message.reply.set_result(ShutdownReport("already_exited", number, None, None, 0.0))
            self.life.closed()
            return
        self._cancel_gen_timer(gen)
        gen.ending = gen.ending or "shutdown"
        if not self._tell_child(gen, Stop(message.reply, graceful=True)):
            self._answer_at_exit = True

    # -- helpers -----------------------------------------------------------------------------------------------

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
        if not gen.end(reason, planned):
            return
        self.gate.close()
        self._cancel_gen_timer(gen)
        self.life.stopping()
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
            if self.pending.reply.set_running_or_notify_cancel():  # False: withdrawn by its caller
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
        channel = self.gate.fail_inflight(terminal, request_id)
        if channel is None:
            return False
        if self.gen is not None:
            self.gen.connection.pop(channel.request_id)
        if self.tracer is not None:
            self._trace("request_failed", channel.request_id, outcome=terminal.outcome,
                        error=type(terminal.error).__name__, rows=channel.rows_received())
        return True


def _describe_exit(exited: Exited) -> str:
    if exited.signal is not None:
        return f"worker was killed by signal {exited.signal}"
    if exited.exit_code is not None:
        return f"worker exited with code {exited.exit_code}"
    return "worker could not be started"


def _copy_future(source: Future[ShutdownReport], target: Future[ShutdownReport]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
