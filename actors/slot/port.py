"""``RequestPort``: how a caller reaches one worker slot: admits requests (through the gate, else through the
supervisor), wraps their answers, and asks the supervisor what only it knows. Shared by ``lw.Worker`` and the
pool's leases."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import pykka

from leanworker.actors.core import lifecycle
from leanworker.actors.core.config import WorkerConfig
from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.results import (
    CapabilityMetadata,
    Diagnostic,
    DoctorCheck,
    DoctorReport,
    Progress,
    WorkerSnapshot,
)
from leanworker.actors.core.interruptible import future_result
from leanworker.actors.core.waits import settle_bound
from leanworker.actors.slot.channel import OK, RequestChannel
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.actors.slot.messages import (
    CancelRequest,
    Submit,
    SubmitLater,
    TakeSnapshot,
)
from leanworker.actors.slot.stream import RowStream
from leanworker.errors import LeanWorkerError, WorkerClosed
from leanworker.protocol import messages


class RequestPort:
    """Sends requests to one supervisor and wraps the answers. Shared by :class:`Worker` and pool leases."""

    def __init__(self, supervisor: pykka.ActorRef[Any], gate: AdmissionGate, config: WorkerConfig) -> None:
        self.supervisor = supervisor
        self.gate = gate
        self.config = config
        self.owner_pid = os.getpid()

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        lifecycle.check_owner(self.owner_pid, "worker")
        try:
            return self.supervisor.ask(message, timeout=timeout)
        except pykka.ActorDeadError:
            raise WorkerClosed("the worker is shut down") from None

    def wait_timeout(self) -> float:
        """An upper bound for anything the supervisor promises to settle (startup, open, kill and reap)."""
        config = self.config
        return settle_bound(config, startup=True, request=True)

    def _admit(self, submit: Submit) -> RequestChannel:
        """Through the open gate if possible, else through the supervisor (which may queue until ready)."""
        lifecycle.check_owner(self.owner_pid, "worker")
        answer = self.gate.try_admit(submit) or self.ask(submit.in_callers_context())
        if isinstance(answer, Future):
            reply = answer
            try:
                answer = future_result(reply, self.wait_timeout())
            except FutureTimeout:
                self._withdraw(reply)
                raise LeanWorkerError("the worker did not become ready in time") from None
            except BaseException:  # KeyboardInterrupt, say, while a restarted worker opens its session
                self._withdraw(reply)
                raise
        channel: RequestChannel = answer
        return channel

    def _withdraw(self, reply: Future[RequestChannel]) -> None:
        """The caller stopped waiting for its request's admission: it never runs, or is cancelled at once."""
        if reply.cancel():
            return
        try:
            channel = reply.result()
        except BaseException:
            return
        channel.abandon()
        self.cancel(channel.request_id)

    def admit_nowait(self, command: str, request: Any = None, timeout: float | None = None, *, streaming: bool,
                     expect_generation: int | None = None) -> RequestChannel | Future[RequestChannel]:
        """Admit a request without ever waiting (for an event loop): its channel when the gate admits it at once,
        else a future the supervisor resolves with the channel or the error. Cancelling that future before it is
        resolved withdraws the request (a request admitted meanwhile is cancelled at once). The channel is read with
        ``RequestChannel.poll``; the reader thread reads every answer, a call's too."""
        lifecycle.check_owner(self.owner_pid, "worker")
        submit = Submit(command, request, streaming, timeout, expect_generation)
        channel = self.gate.try_admit(submit)
        if channel is not None:
            return channel
        reply: Future[RequestChannel] = Future()
        if not tell_if_alive(self.supervisor, SubmitLater(submit.in_callers_context(), reply)):
            raise WorkerClosed("the worker is shut down")
        return reply

    def stream(self, command: str, request: Any = None, timeout: float | None = None, *, streaming: bool = True,
               on_diagnostic: Callable[[Diagnostic], None] | None = None,
               on_progress: Callable[[Progress], None] | None = None,
               expect_generation: int | None = None) -> RowStream:
        answer = self._admit(Submit(command, request, streaming, timeout, expect_generation))
        supervisor = self.supervisor
        request_id = answer.request_id

        def cancel() -> None:
            tell_if_alive(supervisor, CancelRequest(request_id))

        return RowStream(answer, cancel, self.settle_timeout(), on_diagnostic, on_progress)

    def admit_call(self, command: str, request: Any = None, timeout: float | None = None,
                   expect_generation: int | None = None) -> RequestChannel:
        """Admit a non-streaming call; its terminal is awaited with :meth:`finish_call`."""
        return self._admit(Submit(command, request, False, timeout, expect_generation))

    def finish_call(self, channel: RequestChannel) -> Any:
        reads = self.gate.reads_for(channel)
        if reads is not None:
            reads.serve(channel)  # read the answer in this thread (actors/slot/readside.py)
        # Usually the answer was read above: its terminal is set (once, never unset), so no wait is needed.
        terminal = channel.terminal or channel.wait_terminal(None)  # the supervisor's deadline guarantees one
        assert terminal is not None
        if terminal.outcome != OK:
            assert terminal.error is not None
            raise terminal.error
        return terminal.result

    def call(self, command: str, request: Any = None, timeout: float | None = None,
             expect_generation: int | None = None) -> Any:
        return self.finish_call(self.admit_call(command, request, timeout, expect_generation))

    def cancel(self, request_id: int) -> None:
        tell_if_alive(self.supervisor, CancelRequest(request_id))

    def settle_timeout(self) -> float:
        """How long a cancelled request may take to end (its grace, then a kill and a reap)."""
        return settle_bound(self.config, cancel=True, slack=5.0)

    def metadata(self, expect_generation: int | None = None) -> CapabilityMetadata:
        return self.metadata_of(self.call(messages.METADATA_COMMAND, expect_generation=expect_generation))

    def doctor(self, expect_generation: int | None = None) -> DoctorReport:
        return self.doctor_of(self.call(messages.DOCTOR_COMMAND, expect_generation=expect_generation))

    @staticmethod
    def metadata_of(data: Any) -> CapabilityMetadata:
        """The answer of the built-in metadata command, typed."""
        return CapabilityMetadata(data["name"], data["version"], tuple(data["commands"]), data["protocol"],
                                  data["host"], data["python"], data["lean"])

    @staticmethod
    def doctor_of(data: Any) -> DoctorReport:
        """The answer of the built-in doctor command, typed."""
        return DoctorReport(tuple(DoctorCheck(c["name"], c["status"], c["message"]) for c in data["checks"]))

    def snapshot(self) -> WorkerSnapshot:
        snapshot: WorkerSnapshot = self.ask(TakeSnapshot())
        return snapshot
