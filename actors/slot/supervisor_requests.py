"""The supervisor's handlers for requests (the slow admission path, cancel, deadlines, protocol violations) and
for cycling and memory samples. A mixin of SupervisorActor (supervisor.py): the actor routes messages here."""

from __future__ import annotations

import time
from concurrent.futures import Future

from leanworker.actors.slot.channel import CANCELLED, MEMORY, PROTOCOL, TIMEOUT, RequestChannel, Terminal
from leanworker.actors.slot.messages import (
    CancelRequest,
    Cycle,
    Deadline,
    FrameViolation,
    IdleCheck,
    MemorySample,
    Submit,
)
from leanworker.actors.slot.supervisor_base import Generation, Pending, SupervisorBase
from leanworker.errors import (
    Cancelled,
    HandshakeError,
    LeanWorkerError,
    MemoryLimitExceeded,
    RequestTimeout,
    StaleLease,
    StartupTimeout,
    WorkerBusy,
)
from leanworker.protocol import messages


class RequestHandlers(SupervisorBase):
    """Requests, deadlines, cancel, violations, cycling and memory (docs/semantics.md)."""

    def _on_submit(self, message: Submit) -> RequestChannel | Future[RequestChannel]:
        """The slow path, for requests the gate did not admit at once."""
        if self.closing is not None or self.state == "closed":
            raise self.closed_error(f"worker {self.name} is shut down")
        if message.expect_generation is not None and message.expect_generation != self.generation:
            raise StaleLease(f"generation {message.expect_generation} of {self.name} has ended")
        if self.state == "failed":
            assert self.failure is not None
            raise self.failure
        if self.state == "exhausted":
            if time.monotonic() < self.exhausted_until:
                assert self.failure is not None
                raise self.failure
            self.intensity.clear()
            self._spawn()
        channel = self.gate.try_admit(message)
        if channel is not None:
            return channel
        if self.gate.inflight is not None or self.pending is not None:
            raise WorkerBusy(f"worker {self.name} is running another request")
        self.pending = Pending(message)
        return self.pending.reply

    def _on_cancel(self, message: CancelRequest) -> None:
        gen = self.gen
        channel = self.gate.inflight
        if gen is None or gen.pipe is None or channel is None or channel.request_id != message.request_id:
            return
        if self._cancel_sent == message.request_id:
            return  # already asked
        self._cancel_sent = message.request_id
        self._trace("cancel", message.request_id)
        gen.pipe.send(messages.cancel(message.request_id))
        channel.timers.append(self._later(self.config.cancel_grace,
                                          Deadline(gen.number, message.request_id, "cancel")))

    def _on_deadline(self, message: Deadline) -> None:
        gen = self._current(message.generation)
        if gen is None:
            return
        if message.kind == "startup":
            if gen.phase == "spawning":
                self._startup_failed(gen, StartupTimeout(
                    f"worker did not say hello within {self.config.startup_timeout:g} s"))
            return
        if message.kind == "session":
            if gen.handshake is not None and gen.handshake.request_id == message.request_id:
                step = "session open" if gen.phase == "opening" else "configure"
                self._startup_failed(gen, StartupTimeout(f"{step} did not finish in time"))
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
        if gen.phase == "spawning":
            error = message.error if isinstance(message.error, HandshakeError) else HandshakeError(str(message.error))
            self._startup_failed(gen, error)
            return
        if gen.phase in ("configuring", "opening"):  # the generation never became ready: a failed start-up
            self._startup_failed(gen, message.error)
            return
        self._fail_inflight(Terminal(PROTOCOL, error=message.error))
        self._end_generation(gen, "protocol", planned=False, kill=True)

    def _cycle(self, gen: Generation, reason: str) -> None:
        """Replace ``gen`` now if idle, else as soon as its request in flight ends."""
        with self.gate.lock:
            idle = self.gate.is_open and self.gate.inflight is None
            if not idle and self.gate.inflight is not None:
                self.gate.close_after_current = True
        if idle:
            self._end_generation(gen, reason, planned=True, kill=False)
        elif self.gate.inflight is not None:
            self.cycle_pending = reason

    def _on_idle_check(self, message: IdleCheck) -> None:
        gen = self._current(message.generation)
        if gen is None or gen.ending is not None:
            return
        with self.gate.lock:
            idle = self.gate.is_open and self.gate.inflight is None and self.gate.served == message.served
        if idle:
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
        if message.rss_mib is None or gen.ending is not None or gen.phase != "ready":
            return  # unavailable (decide nothing), or already being replaced
        rss = message.rss_mib
        hard, soft = self.policy.rss_hard_limit_mib, self.policy.rss_soft_limit_mib
        if hard is not None and rss > hard:
            self._trace("memory_hard", rss_mib=round(rss, 1))
            error = MemoryLimitExceeded(f"worker used {rss:.0f} MiB, over the hard limit of {hard} MiB",
                                        rss_mib=rss, limit_mib=hard)
            self._fail_inflight(Terminal(MEMORY, error=error))
            self._end_generation(gen, "memory_hard", planned=False, kill=True)
        elif soft is not None and rss > soft and self.cycle_pending is None:
            self._trace("memory_soft", rss_mib=round(rss, 1))
            self._cycle(gen, "memory_soft")
