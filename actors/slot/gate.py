"""The admission gate of one worker slot: the fast path that keeps actor hops off every request.

The supervisor owns the gate: it opens it for a ready generation, closes it before it kills, cycles or shuts down,
and decides everything else. While the gate is open and no request is in flight, a caller admits its own request
under the gate's lock: it registers the channel, notes the request's deadline and queues the ``call`` frame on the
never-blocking pipe writer (the request is encoded before the lock). The reader thread releases the gate when the
``done`` arrives, before the caller can see the terminal, and leaves it closed when the generation's request budget
(``max_requests``) is spent or a cycle is pending; it tells the supervisor only when the supervisor has something to
decide. The decisions are the pure :class:`GateState`'s (gate_state.py); the gate runs them under its lock, which it
alone takes.

The gate is made before its supervisor (:meth:`AdmissionGate.for_slot`) and bound to it by the supervisor's
constructor, so whoever starts a slot holds its gate without asking the new actor for it (the pool starts slots under
its lock, which is held only for bookkeeping).

Deadlines are watched by one timer per slot, not one per request: it is armed when a request is admitted and none is
armed to fire by that request's deadline, and when it fires it tells the supervisor if the request then in flight is
past its deadline, else it is armed again for that request's. (A timer per request cost a heap entry that lived for
the whole timeout, about 2 us a request with the garbage collection of those entries.)
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pykka

from leanworker.actors.core import locks
from leanworker.actors.core.config import RestartPolicy, WorkerConfig
from leanworker.actors.core.intercept import RequestHook
from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.timers import Scheduler, TimerHandle
from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.slot.channel import DEFAULT_BUFFER_BYTES, RequestChannel, Terminal
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.gate_state import GateState
from leanworker.actors.slot.messages import Deadline, RequestDone, Submit
from leanworker.actors.slot.readside import ReadSide
from leanworker.errors import NotPlainData, ProtocolError, UnencodableValue
from leanworker.protocol import messages
from leanworker.protocol.frames import encode_frame


class AdmissionGate:
    """Admission shared by a supervisor (the owner), its callers and its reader threads."""

    def __init__(self, supervisor: pykka.ActorRef[Any] | None, counters: Counters, scheduler: Scheduler,
                 buffer_rows: int, request_timeout: float | None, tracer: TraceSink | None, name: str,
                 notify_every_done: bool, buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        self.lock = locks.lock("gate")
        self.supervisor = supervisor  # None until bound (see :meth:`bind`)
        self.counters = counters
        self.scheduler = scheduler
        self.buffer_rows = buffer_rows
        self.buffer_bytes = buffer_bytes
        self.request_timeout = request_timeout
        self.tracer = tracer
        self.name = name
        self.state = GateState(notify_every_done or tracer is not None)
        self.ids = itertools.count(1)
        self.connection: Connection | None = None  # the open generation's
        self.inflight: RequestChannel | None = None
        self._watch: TimerHandle | None = None  # the deadline watch armed (see the module docstring)
        self._watch_due = 0.0  # when it fires (time.monotonic())
        self._watch_token = 0  # which arming is current: a superseded one that fires does nothing

    @classmethod
    def for_slot(cls, config: WorkerConfig, policy: RestartPolicy, scheduler: Scheduler, tracer: TraceSink | None,
                 name: str) -> AdmissionGate:
        """The gate of a slot run with ``config`` and ``policy``, not yet bound to its supervisor: the supervisor's
        constructor binds it, before the gate can open."""
        return cls(None, Counters(), scheduler, config.buffer_rows, config.request_timeout, tracer, name,
                   policy.idle_cycle_after is not None, config.buffer_bytes)

    def bind(self, supervisor: pykka.ActorRef[Any]) -> None:
        """Tell ``supervisor`` (the owner) from now on; the supervisor's constructor calls it, before anything can
        open the gate (a gate that never opened admits nothing, so it has nothing to tell)."""
        self.supervisor = supervisor

    def _tell(self, message: Any) -> None:
        if self.supervisor is not None:
            tell_if_alive(self.supervisor, message)

    # -- what everyone may read without the lock -------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.state.is_open

    @property
    def latest_generation(self) -> int:
        return self.state.latest_generation

    def open_on(self, generation: int) -> bool:
        """Open for requests, and ``generation`` is the newest (one call on the pool's warm path)."""
        state = self.state
        return state.generation is not None and state.latest_generation == generation

    @property
    def served(self) -> int:
        return self.state.served

    @property
    def requests_ok(self) -> int:
        return self.state.requests_ok

    @property
    def requests_failed(self) -> int:
        return self.state.requests_failed

    # -- the supervisor's side -------------------------------------------------------------------------------------

    def started(self, generation: int) -> None:
        """A new generation is being started: leases of older ones are stale from now on."""
        with self.lock:
            self.state.start(generation)

    def open(self, connection: Connection, budget: int | None) -> None:
        with self.lock:
            self.connection = connection
            self.state.open(connection.generation, budget)

    def close(self) -> None:
        with self.lock:
            self.state.close()

    def handshake_id(self) -> int:
        """A request id for a handshake step (``configure``, ``open``), which the gate does not admit."""
        request_id = next(self.ids)
        with self.lock:
            self.state.begin_handshake(request_id)
        return request_id

    def cycle_when_idle(self, reason: str) -> bool:
        """A cycle for ``reason`` is wanted: True to cycle now (idle); else the gate closes after the request in
        flight (:attr:`cycle_pending` says why, until the next generation opens)."""
        with self.lock:
            return self.state.cycle_when_idle(reason)

    @property
    def cycle_pending(self) -> str | None:
        """Why the open generation closes after the request in flight, if it does (a cycle asked for meanwhile)."""
        return self.state.cycle_reason

    def idle_since(self, served: int) -> bool:
        """Open and idle, with no request ended since ``served`` were."""
        with self.lock:
            return self.state.idle and self.state.served == served

    def fail_inflight(self, terminal: Terminal, request_id: int | None = None) -> bool:
        """End the request in flight (``request_id``'s, when given) with ``terminal`` unless its ``done`` won the
        race; its id leaves the connection, so nothing later of it reaches anyone. True if this call won."""
        with self.lock:
            channel, connection = self.inflight, self.connection
            if channel is None or (request_id is not None and channel.request_id != request_id):
                return False
            if not channel.finish(terminal):
                return False  # its done arrived first
            self._failed_locked(channel)
        if connection is not None:
            connection.pop(channel.request_id)
        self._trace_failed(channel, terminal)
        return True

    def cancel(self, request_id: int) -> RequestChannel | None:
        """A cancel of ``request_id`` is asked for: its channel if it is in flight and no cancel went out for it
        yet (the supervisor sends the frame and arms the grace); else None."""
        with self.lock:
            channel = self.inflight
            if channel is None or channel.request_id != request_id or not self.state.cancel(request_id):
                return None
            return channel

    def fail_at_exit(self, generation: int, channels: list[RequestChannel], terminal: Terminal) -> None:
        """``generation``'s process exited: close, make its leases stale, and end ``channels`` with ``terminal`` (so a
        caller that sees its request end so finds its lease stale already)."""
        ended = []
        with self.lock:
            self.state.close()
            self.state.exited(generation)
            self.inflight = None
            self.state.inflight = None
            for channel in channels:
                if channel.finish(terminal):
                    self.state.fail(channel.request_id)
                    channel.cancel_timers()
                    ended.append(channel)
        for channel in ended:
            self._trace_failed(channel, terminal)

    def _trace_failed(self, channel: RequestChannel, terminal: Terminal) -> None:
        if self.tracer is not None:
            self.tracer.record("request_failed", self.name, channel.generation, channel.request_id,
                               outcome=terminal.outcome, error=type(terminal.error).__name__,
                               rows=channel.rows_received())

    def _failed_locked(self, channel: RequestChannel) -> None:
        if self.inflight is channel:
            self.inflight = None
        self.state.fail(channel.request_id)
        channel.cancel_timers()

    # -- the callers' side -----------------------------------------------------------------------------------------

    def try_admit(self, submit: Submit) -> RequestChannel | None:
        """Admit ``submit`` at once if the gate is open and idle; None means "ask the supervisor".

        The request is encoded before the lock is taken (a value that is not plain data raises
        :class:`NotPlainData` here, with nothing sent), and the frame is written without blocking (pipe.py), so the
        lock is never held across anything slow: the deadline, the cancel ladder and shutdown take it too.
        """
        state = self.state
        while True:
            connection = self.connection
            if not state.admissible(submit.expect_generation) or connection is None or connection.pipe is None:
                return None
            pipe = connection.pipe
            request_id = next(self.ids)
            frame = self._encode(submit, request_id, pipe.max_frame_bytes)
            with self.lock:
                if not state.admissible(submit.expect_generation) or self.connection is not connection:
                    return None
                if not state.admit(request_id):
                    continue  # another caller took a later id first: ids must rise on the wire
                if connection.requests is not None and not submit.command.startswith(messages.BUILTIN_PREFIX):
                    frame = self._intercepted_frame(submit, request_id, pipe.max_frame_bytes, connection.requests)
                generation = connection.generation
                channel = RequestChannel(request_id, generation, submit.command, submit.streaming,
                                         self.buffer_rows, self.counters, self.buffer_bytes)
                channel.admitted_at = admitted_at = time.monotonic()
                connection.register(channel)  # before writing: the answer can arrive before the write returns
                self.inflight = channel
                if self.tracer is not None:  # before writing too, so that no trace holds its done before it
                    self.tracer.record("request_admitted", self.name, generation, request_id,
                                       command=submit.command)
                pipe.write_frame(frame)
                timeout = submit.timeout if submit.timeout is not None else self.request_timeout
                channel.timeout = timeout
                if timeout is not None:
                    channel.due = due = admitted_at + timeout
                    if self._watch is None or due < self._watch_due:
                        self._arm_watch_locked(timeout, due)
                return channel

    def _arm_watch_locked(self, delay: float, due: float) -> None:
        """Arm the deadline watch to fire in ``delay`` seconds, at ``due`` (call with the lock held)."""
        if self._watch is not None:
            self._watch.cancel()
        self._watch_token += 1
        token = self._watch_token
        self._watch_due = due
        self._watch = self.scheduler.call_later(delay, lambda: self._watch_fired(token))

    def _watch_fired(self, token: int) -> None:
        """The deadline watch fired (in the timer thread): tell the supervisor if the request in flight is past its
        deadline (the supervisor ends it unless its ``done`` won), else watch again until its deadline."""
        with self.lock:
            if token != self._watch_token:
                return  # superseded by an earlier deadline's arming
            self._watch = None
            channel = self.inflight
            if channel is None or channel.due is None:
                return
            left = channel.due - time.monotonic()
            if left > 0:
                self._arm_watch_locked(left, channel.due)
                return
        self._tell(Deadline(channel.generation, channel.request_id, "request"))

    def admit_for(self, submit: Submit) -> RequestChannel | None:
        """:meth:`try_admit` on a caller's behalf (from the supervisor's thread: the slow path), in the caller's
        context when it sent one, so that its ``request_admitted`` is recorded there, as on the fast path."""
        if submit.context is None:
            return self.try_admit(submit)
        return submit.context.run(self.try_admit, submit)

    def _intercepted_frame(self, submit: Submit, request_id: int, max_frame_bytes: int,
                           hook: RequestHook) -> bytes:
        """The frame of an admitted request on an intercepted generation (actors/core/intercept.py): the hook
        decides, once, what is sent. Called under the lock, after admission: a frame that cannot be built withdraws
        the admission (nothing was written)."""
        request = hook(submit.command, submit.request)
        try:
            return self._encode(Submit(submit.command, request, submit.streaming, submit.timeout,
                                       submit.expect_generation), request_id, max_frame_bytes)
        except BaseException:
            self.state.withdraw(request_id)
            raise

    @staticmethod
    def _encode(submit: Submit, request_id: int, max_frame_bytes: int) -> bytes:
        message = messages.call(request_id, submit.command, submit.request, submit.streaming)
        try:
            return encode_frame(message, max_frame_bytes)  # checks plain data once, on the whole message
        except NotPlainData as exc:  # name the caller's value, not the message around it
            path = exc.path.replace("message['request']", "request", 1)
            raise type(exc)(str(exc).replace(exc.path, path, 1), path=path) from None
        except ProtocolError as exc:  # too large for one frame
            raise UnencodableValue(f"request of {submit.command!r} does not fit in one frame: {exc}",
                                   path="request") from None

    def reads_for(self, channel: RequestChannel) -> ReadSide | None:
        """The read side a caller may use to read ``channel``'s answer itself, or None."""
        connection = self.connection
        return None if connection is None else connection.reads_for(channel)

    # -- the reader's side -----------------------------------------------------------------------------------------

    def release(self, channel: RequestChannel, terminal: Terminal) -> None:
        """A ``done`` arrived for ``channel``: free the slot unless it must close, and tell the supervisor when it
        has something to decide (the one way a ``done`` reaches it)."""
        with self.lock:
            ended, notify = self.state.done(channel.request_id, terminal.outcome)
            if ended and self.inflight is channel:
                self.inflight = None
                channel.cancel_timers()
        if notify:
            self._tell(RequestDone(channel.generation, channel.request_id, terminal))
