"""The admission gate of one worker slot: the fast path that keeps actor hops off every request.

The supervisor owns the gate: it opens it for a ready generation, closes it before it kills, cycles or shuts down,
and decides everything else. While the gate is open and no request is in flight, a caller admits its own request
under the gate's lock: it registers the channel, arms the request deadline (a timer that tells the supervisor)
and queues the ``call`` frame on the never-blocking pipe writer (the request is encoded before the lock). The reader thread releases the gate when the ``done`` arrives,
before the caller can see the terminal, and leaves it closed when the generation's request budget
(``max_requests``) is spent or a cycle is pending; it tells the supervisor only when the supervisor has something
to decide. Everything the gate does is under its lock, and the supervisor takes the same lock for its decisions.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

import pykka

from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.timers import Scheduler
from leanworker.actors.core.tracing import Tracer
from leanworker.actors.slot.channel import DEFAULT_BUFFER_BYTES, OK, PROTOCOL, Counters, RequestChannel, Router
from leanworker.actors.slot.messages import Deadline, Submit
from leanworker.errors import NotPlainData, ProtocolError, UnencodableValue
from leanworker.protocol import messages
from leanworker.protocol.frames import encode_frame

if TYPE_CHECKING:
    from leanworker.actors.slot.readside import ReadSide


class AdmissionGate:
    """Admission state shared by a supervisor (the owner), its callers and its reader threads."""

    def __init__(self, supervisor: pykka.ActorRef[Any], counters: Counters, scheduler: Scheduler,
                 buffer_rows: int, request_timeout: float | None, tracer: Tracer | None, name: str,
                 notify_every_done: bool, buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        self.lock = threading.Lock()
        self.supervisor = supervisor
        self.counters = counters
        self.scheduler = scheduler
        self.buffer_rows = buffer_rows
        self.buffer_bytes = buffer_bytes
        self.request_timeout = request_timeout
        self.tracer = tracer
        self.name = name
        self.notify_every_done = notify_every_done or tracer is not None
        self.ids = itertools.count(1)
        self.last_id = 0  # the highest request id written to the current worker
        self.generation: int | None = None  # None: closed
        self.latest_generation = 0  # the newest generation started (set by the supervisor)
        self.router: Router | None = None
        self.pipe: Any = None
        self.inflight: RequestChannel | None = None
        self.served = 0
        self.budget: int | None = None
        self.close_after_current = False
        self.requests_ok = 0
        self.requests_failed = 0

    # -- the supervisor's side (call with the lock held) ----------------------------------------------------------

    def open_locked(self, generation: int, router: Router, pipe: Any, budget: int | None) -> None:
        self.generation, self.router, self.pipe = generation, router, pipe
        self.served, self.budget, self.close_after_current = 0, budget, False

    def close_locked(self) -> None:
        self.generation = None

    @property
    def is_open(self) -> bool:
        return self.generation is not None

    # -- the callers' side ----------------------------------------------------------------------------------------

    def try_admit(self, submit: Submit) -> RequestChannel | None:
        """Admit ``submit`` at once if the gate is open and idle; None means "ask the supervisor".

        The request is encoded before the lock is taken (a value that is not plain data raises
        :class:`NotPlainData` here, with nothing sent), and the frame is written without blocking (pipe.py), so the
        lock is never held across anything slow: the deadline, the cancel ladder and shutdown take it too.
        """
        while True:
            pipe = self.pipe
            if self.generation is None or self.inflight is not None or pipe is None:
                return None
            request_id = next(self.ids)
            frame = self._encode(submit, request_id, pipe.max_frame_bytes)
            with self.lock:
                generation = self.generation
                if generation is None or self.inflight is not None or self.pipe is not pipe:
                    return None
                if submit.expect_generation is not None and submit.expect_generation != generation:
                    return None
                if request_id <= self.last_id:
                    continue  # another caller took a later id first: ids must rise on the wire
                self.last_id = request_id
                channel = RequestChannel(request_id, generation, submit.command, submit.streaming,
                                         self.buffer_rows, self.counters, self.buffer_bytes)
                assert self.router is not None
                self.router.register(channel)  # before writing: the answer can arrive before the write returns
                self.inflight = channel
                pipe.write_frame(frame)
                timeout = submit.timeout if submit.timeout is not None else self.request_timeout
                channel.timeout = timeout
                if timeout is not None:
                    channel.timers.append(self.scheduler.call_later(
                        timeout, lambda: tell_if_alive(self.supervisor, Deadline(generation, request_id, "request"))))
                if self.tracer is not None:
                    self.tracer.record("request_admitted", self.name, generation, request_id,
                                       command=submit.command)
                return channel

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
        router = self.router
        if channel.streaming or router is None or router.generation != channel.generation:
            return None
        return router.reads

    # -- the reader's and the supervisor's side -------------------------------------------------------------------

    def release(self, channel: RequestChannel, outcome: str) -> bool:
        """A ``done`` arrived for ``channel``: free the slot unless it must close. True: tell the supervisor."""
        with self.lock:
            if self.inflight is not channel:
                return False
            self.inflight = None
            channel.cancel_timers()
            self.served += 1
            if outcome == OK:
                self.requests_ok += 1
            else:
                self.requests_failed += 1
            if self.generation is None:
                return True
            if (self.budget is not None and self.served >= self.budget) or self.close_after_current \
                    or outcome == PROTOCOL:
                self.generation = None
                return True
            return self.notify_every_done

    def fail_locked(self, channel: RequestChannel) -> None:
        """The supervisor ended ``channel`` itself (timeout, kill, shutdown)."""
        if self.inflight is channel:
            self.inflight = None
        channel.cancel_timers()
        self.requests_failed += 1
