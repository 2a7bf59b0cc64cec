"""``AsyncLease``: the right to run commands on one warm worker, from an event loop.

It wraps the pool's ``Lease`` (the same affine token: generation-checked, released exactly once) and drives it
without blocking: a command is admitted through the worker's gate (``Lease.admit_nowait``), its answer read by the
worker's reader thread into the request's bounded channel, and the task awaits a wakeup (reader.py, wakeup.py).

Cancellation (docs/semantics.md, asyncio): cancelling the task that awaits a call, or iterates a stream, cancels the
request cooperatively (outcome ``cancelled``; the worker stays warm). The task is not held back while the worker
answers: the lease remembers the cancelled request, and its next command, or its release, first waits for that
request's terminal (at most ``settle_timeout``), so the worker is never handed on mid-request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.results import CapabilityMetadata, Diagnostic, DoctorReport, Progress
from leanworker.actors.pool import Lease
from leanworker.actors.slot import OK, RequestChannel, RequestPort, Terminal
from leanworker.aio.reader import ChannelReader
from leanworker.aio.stream import AsyncRowStream
from leanworker.aio.wakeup import LoopWakeup, settled
from leanworker.errors import StaleLease
from leanworker.protocol import messages

RELEASE_WAIT = 10.0  # seconds a release waits for the pool to book it (as the threaded lease's)
PENDING_CANCEL_YIELDS = 3  # loop turns a command waits for a just-cancelled task to cancel its request
_background: set[asyncio.Task[None]] = set()  # releases that outlive a cancelled task (strong references)


class AsyncLease:
    """The right to run commands on one warm worker; an async context manager. Use ``AsyncWorkerPool.lease(key)``."""

    def __init__(self, lease: Lease, loop: asyncio.AbstractEventLoop) -> None:
        self._lease = lease
        self._loop = loop
        self._inflight: ChannelReader | None = None  # the request of the last command, until it has ended
        self._cancelled: ChannelReader | None = None  # ... when it was cancelled and may still be ending
        self._released = False

    @property
    def lease_id(self) -> int:
        return self._lease.lease_id

    @property
    def key(self) -> SessionKey:
        return self._lease.key

    @property
    def generation(self) -> int:
        """The worker generation the lease was granted on."""
        return self._lease.generation

    @property
    def valid(self) -> bool:
        """True while the lease is unreleased and its worker generation is still the current one."""
        return not self._released and self._lease.valid

    # -- commands -------------------------------------------------------------------------------------------------

    async def call(self, command: str, request: Any = None, timeout: float | None = None) -> Any:
        """Run one command on the leased worker and return its result (see ``Lease.call``)."""
        reader = await self.admit(command, request, timeout, streaming=False)
        try:
            terminal = await reader.terminal()
        except asyncio.CancelledError:
            self.cancel(reader, abandon=True)
            raise
        self.settled(reader)
        if terminal.outcome != OK:
            assert terminal.error is not None
            raise terminal.error
        return terminal.result

    def stream(self, command: str, request: Any = None, timeout: float | None = None,
               on_diagnostic: Callable[[Diagnostic], None] | None = None,
               on_progress: Callable[[Progress], None] | None = None) -> AsyncRowStream:
        """Run one command and stream its rows (an async iterator and async context manager of ``Row``); the
        request is admitted when the stream is first entered or iterated."""
        return AsyncRowStream(self, command, request, timeout, on_diagnostic, on_progress)

    async def metadata(self) -> CapabilityMetadata:
        return RequestPort.metadata_of(await self.call(messages.METADATA_COMMAND))

    async def doctor(self) -> DoctorReport:
        return RequestPort.doctor_of(await self.call(messages.DOCTOR_COMMAND))

    # -- what commands and streams share ------------------------------------------------------------------------

    async def admit(self, command: str, request: Any, timeout: float | None, *, streaming: bool) -> ChannelReader:
        """Admit one request on the leased worker and return its channel's reader (never blocks the loop)."""
        if self._released:
            raise StaleLease(f"lease {self._lease.lease_id} was released")
        for _ in range(PENDING_CANCEL_YIELDS):
            inflight = self._inflight
            if inflight is None or inflight.channel.terminal is not None or inflight is self._cancelled:
                break
            await asyncio.sleep(0)  # a task cancelled just now may not have cancelled its request yet: let it
        cancelled = self._cancelled
        if cancelled is not None and cancelled.channel.terminal is None:
            await self.settle(cancelled)  # a cancelled request still ending: let it free the worker first
        answer = self._lease.admit_nowait(command, request, timeout, streaming=streaming)
        channel = await self._admitted(answer) if isinstance(answer, Future) else answer
        reader = self._inflight = ChannelReader(channel, self._loop)
        return reader

    async def _admitted(self, answer: Future[RequestChannel]) -> RequestChannel:
        """Await the slow path's answer (the supervisor's) without a thread."""
        wakeup = LoopWakeup(self._loop)
        waiter = wakeup.arm()
        answer.add_done_callback(lambda _: wakeup())
        try:
            await waiter
        except asyncio.CancelledError:
            if not answer.cancel():  # admitted as we gave up: cancel that request at once
                answer.add_done_callback(self._admitted_too_late)
            raise
        return answer.result()

    def _admitted_too_late(self, answer: Future[RequestChannel]) -> None:
        """Runs in the supervisor's thread: cancel the request at once, and let the loop remember it, so that the
        lease's next command or its release waits for its end."""
        if answer.exception() is None:
            channel = answer.result()
            channel.abandon()
            self._lease.cancel_request(channel.request_id)
            try:
                self._loop.call_soon_threadsafe(self._remember_cancelled, channel)
            except RuntimeError:
                pass  # the loop is closed: nobody will use this lease again

    def _remember_cancelled(self, channel: RequestChannel) -> None:
        if channel.terminal is None:
            self._inflight = self._cancelled = ChannelReader(channel, self._loop)

    def cancel(self, reader: ChannelReader, *, abandon: bool) -> None:
        """Cancel ``reader``'s request (never waits); ``abandon`` drops its unread rows. The lease's next command,
        or its release, waits for its end."""
        channel = reader.channel
        if channel.terminal is not None:
            self.settled(reader)
            return
        if abandon:
            channel.abandon()
        self._cancelled = reader
        self._lease.cancel_request(channel.request_id)

    def settled(self, reader: ChannelReader) -> None:
        """``reader``'s request has ended."""
        if self._inflight is reader:
            self._inflight = None
        if self._cancelled is reader:
            self._cancelled = None

    async def settle(self, reader: ChannelReader) -> Terminal | None:
        """Wait for the end of ``reader``'s request, at most the worker's settle timeout (a cancel's grace, then a
        kill and a reap); its terminal, or None if it did not come."""
        try:
            async with asyncio.timeout(self._lease.settle_timeout()):
                terminal = await reader.terminal()
        except TimeoutError:
            return reader.channel.terminal
        self.settled(reader)
        return terminal

    # -- release --------------------------------------------------------------------------------------------------

    async def release(self) -> None:
        """Return the worker to the pool. Idempotent: a second call does nothing.

        A command still running on the lease is cancelled first and waited for, so the next holder never gets a
        worker in the middle of a request. If this task is cancelled while it waits, the release still happens,
        as soon as the request has ended.
        """
        if self._released:
            return
        self._released = True
        reader = self._inflight
        if reader is not None and reader.channel.terminal is None:
            self.cancel(reader, abandon=True)
            try:
                await self.settle(reader)
            except asyncio.CancelledError:
                task = self._loop.create_task(self._release_after(reader))
                _background.add(task)
                task.add_done_callback(_background.discard)
                raise
        await self._return()

    async def _release_after(self, reader: ChannelReader) -> None:
        try:
            await self.settle(reader)
        finally:
            self._lease.release_nowait()

    async def _return(self) -> None:
        """Give the worker back; wait (on the loop) until the pool has booked it, when an actor books it."""
        booked = self._lease.release_nowait()
        if booked is not None:
            await settled(booked, RELEASE_WAIT)

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else ("valid" if self._lease.valid else "stale")
        return f"<AsyncLease {self.lease_id} {self.key.capability} generation {self.generation} {state}>"
