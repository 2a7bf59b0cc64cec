"""Who waits for a slot's generation to be ready, as a pure policy the supervisor consults (docs/semantics.md, Plain
data: a request sent while the worker restarts waits for the new generation; Start-up; tests drive it without
processes).

Two kinds of waiter: callers of ``AwaitReady`` (a future of the generation number: ``Worker(...)`` waits so for its
first generation), and at most one request that the gate could not admit (a :class:`Pending`, answered with its
channel). A second request while one waits, or while one is in flight, is refused with ``WorkerBusy``; a waiting
request whose caller withdrew it (its future cancelled) never runs. When the generation is ready every caller hears
its number and the waiting request is handed back for admission; when the slot fails, shuts down or is exhausted,
every waiter gets that error instead.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from leanworker.actors.slot.channel import RequestChannel
from leanworker.actors.slot.messages import Submit
from leanworker.errors import LeanWorkerError, StaleLease, WorkerBusy


@dataclass
class Pending:
    """A request that waits for the generation being started; its channel (or error) goes to ``reply``."""

    submit: Submit
    reply: Future[RequestChannel] = field(default_factory=Future)


class Waiting:
    """The callers and the request waiting for the next ready generation (see the module docstring)."""

    def __init__(self) -> None:
        self.callers: list[Future[int]] = []
        self.pending: Pending | None = None

    def await_ready(self, ready: int | None, refusal: LeanWorkerError | None) -> Future[int]:
        """A future of the ready generation's number: resolved now if one is ``ready``, failed now with
        ``refusal`` (the slot failed, is exhausted or shut down), else when the next generation is ready."""
        future: Future[int] = Future()
        if ready is not None:
            future.set_result(ready)
        elif refusal is not None:
            future.set_exception(refusal)
        else:
            self.callers.append(future)
        return future

    def hold(self, submit: Submit, reply: Future[RequestChannel] | None, inflight: bool,
             name: str) -> Future[RequestChannel]:
        """Let ``submit`` wait for the next ready generation (its answer goes to ``reply``, a new future if None),
        unless a request is ``inflight`` or another still waits: ``WorkerBusy``."""
        if self.pending is not None and self.pending.reply.cancelled():
            self.pending = None  # its caller withdrew it: it never runs
        if inflight or self.pending is not None:
            raise WorkerBusy(f"worker {name} is running another request")
        self.pending = Pending(submit) if reply is None else Pending(submit, reply)
        return self.pending.reply

    def ready(self, generation: int, try_admit: Callable[[Submit], RequestChannel | None]) -> bool:
        """``generation`` is ready: every caller hears its number, and the waiting request, if any, is admitted
        with ``try_admit`` (the gate's: :meth:`admit`). True if there was one."""
        for caller in self.callers:
            if not caller.done():
                caller.set_result(generation)
        self.callers.clear()
        pending, self.pending = self.pending, None
        if pending is None:
            return False
        self.admit(pending, try_admit)
        return True

    @staticmethod
    def answer_later(reply: Future[RequestChannel],
                     attempt: Callable[[], RequestChannel | Future[RequestChannel]]) -> RequestChannel | None:
        """Answer a caller that must not block (an event loop's) on ``reply`` with what ``attempt`` (the slow path)
        gives: a channel, or the error it raised; a request that waits is answered when it is admitted. Returns a
        channel admitted for a caller that withdrew meanwhile: its request must be cancelled at once."""
        try:
            answer = attempt()
        except Exception as exc:  # as an ask would raise it in the caller
            if reply.set_running_or_notify_cancel():
                reply.set_exception(exc)
            return None
        if isinstance(answer, Future):
            return None  # it waits: answered when the generation is ready (or fails), unless withdrawn
        if reply.set_running_or_notify_cancel():
            reply.set_result(answer)
            return None
        answer.abandon()
        return answer

    @staticmethod
    def admit(pending: Pending, try_admit: Callable[[Submit], RequestChannel | None]) -> None:
        """Admit a request that waited, with ``try_admit`` (the gate's), and answer its caller: its channel, the
        error admission raised, or ``StaleLease`` when the gate refused it (it expects another generation). A
        request withdrawn while it waited is not sent."""
        if not pending.reply.set_running_or_notify_cancel():
            return  # withdrawn while it waited (an event loop's caller gave up): nothing is sent
        try:
            channel = try_admit(pending.submit)
        except LeanWorkerError as exc:
            pending.reply.set_exception(exc)
            return
        if channel is None:
            pending.reply.set_exception(StaleLease(f"generation {pending.submit.expect_generation} has ended"))
        else:
            pending.reply.set_result(channel)

    def fail(self, error: LeanWorkerError) -> None:
        """No generation will be ready for them: every waiter gets ``error`` (a withdrawn request gets nothing)."""
        for caller in self.callers:
            if not caller.done():
                caller.set_exception(error)
        self.callers.clear()
        if self.pending is not None:
            if self.pending.reply.set_running_or_notify_cancel():  # False: withdrawn by its caller
                self.pending.reply.set_exception(error)
            self.pending = None
