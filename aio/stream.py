"""``AsyncRowStream``: the rows of one streaming request, read on an event loop.

The same promises as ``RowStream`` (docs/semantics.md): rows arrive live and are tentative until success; a failed
stream yields the rows that arrived, then raises its typed error; after :meth:`AsyncRowStream.cancel` iteration ends
quietly with outcome ``cancelled``. The channel between the worker's reader thread and this stream is bounded: a
slow consumer makes the reader wait, the pipe fill and the worker block (backpressure end to end).

On the loop: the stream never blocks it. It awaits a wakeup when nothing is buffered, and when rows keep coming
faster than they are consumed it still lets the loop run other tasks every ``YIELD_ROWS`` rows
(``asyncio.sleep(0)`` costs microseconds), so a fast stream cannot starve the loop.
Cancelling the task that iterates cancels the request (cooperatively: the worker stays warm).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from leanworker.actors.core.results import Diagnostic, Progress, Row, StreamSummary
from leanworker.actors.slot import (
    CANCELLED,
    END,
    ROWS,
    RequestChannel,
    StreamEvents,
    Terminal,
    committed,
    end_of_iteration,
    stream_summary,
    terminal_result,
)
from leanworker.aio.reader import ChannelReader
from leanworker.errors import LeanWorkerError


class RequestOwner(Protocol):
    """What a stream needs of its lease (``AsyncLease``): admission, cancellation and the wait for an end."""

    async def admit(self, command: str, request: Any, timeout: float | None, *, streaming: bool) -> ChannelReader:
        ...

    def cancel(self, reader: ChannelReader, *, abandon: bool) -> None: ...

    def settled(self, reader: ChannelReader) -> None: ...

    async def settle(self, reader: ChannelReader) -> Terminal | None: ...


YIELD_ROWS = 64  # rows handed out back to back before the stream lets the loop's other tasks run


def _abandon(lease: RequestOwner, reader: ChannelReader) -> None:
    """A stream collected before its end: cancel its request (its lease waits for the end before it is reused)."""
    if reader.channel.terminal is None:
        lease.cancel(reader, abandon=True)


class AsyncRowStream:
    """Rows of one request, live, as :class:`~leanworker.Row` values: an async iterator and an async context manager.

    Made by ``AsyncLease.stream()``; the request is admitted when the stream is first entered or iterated.
    """

    def __init__(self, lease: RequestOwner, command: str, request: Any, timeout: float | None,
                 on_diagnostic: Callable[[Diagnostic], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self._lease = lease  # kept alive while the stream is
        self._command = command
        self._request = request
        self._timeout = timeout
        self._events = events = StreamEvents(on_diagnostic, on_progress)
        self._reader: ChannelReader | None = None
        self._rows: Iterator[Row] | None = None
        self._terminal: Terminal | None = None
        self._cancel_requested = False
        self._handed = 0  # rows handed out since the stream last let the loop run
        self._started = False
        self._never_ran = False  # cancelled before it started: no request was made
        self._start_error: LeanWorkerError | None = None  # the admission's error (raised again at every use)
        self._finalizer: weakref.finalize[Any, AsyncRowStream] | None = None
        self.diagnostics: list[Diagnostic] = events.diagnostics
        self.progress: list[Progress] = events.progress

    # -- starting ----------------------------------------------------------------------------------------------

    async def _start(self) -> ChannelReader | None:
        """Admit the request (once); None if it was cancelled before it started."""
        if self._start_error is not None:
            raise self._start_error
        if self._reader is not None or self._started:
            return self._reader
        self._started = True
        if self._cancel_requested:
            self._never_ran = True
            return None
        try:
            reader = await self._lease.admit(self._command, self._request, self._timeout, streaming=True)
        except LeanWorkerError as exc:
            self._start_error = exc
            raise
        self._reader = reader
        self._finalizer = weakref.finalize(self, _abandon, self._lease, reader)
        self._cancel_if_requested(reader)  # cancel() may have come while the request was being admitted
        return reader

    def _cancel_if_requested(self, reader: ChannelReader) -> None:
        if self._cancel_requested:
            self._lease.cancel(reader, abandon=False)

    # -- iteration ------------------------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncRowStream:
        return self

    async def __anext__(self) -> Row:
        rows = self._rows
        if rows is not None:
            row = next(rows, None)
            if row is not None:
                self._handed += 1
                if self._handed >= YIELD_ROWS:  # rows keep coming: let the loop's other tasks run now and then
                    self._handed = 0
                    await self._yield_to_loop()
                return row
            self._rows = None
        return await self._next_frame()

    async def _yield_to_loop(self) -> None:
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._cancelled_by_task()
            raise

    async def _next_frame(self) -> Row:
        try:
            reader = self._reader or await self._start()
            if reader is None or self._terminal is not None:
                raise StopAsyncIteration
            while True:
                item = await reader.next()
                kind = item[0]
                if kind is ROWS:
                    stream = item[1]
                    rows = self._rows = (Row(stream, seq, payload) for seq, payload in enumerate(item[3], item[2]))
                    row = next(rows, None)
                    if row is not None:
                        return row
                elif kind is END:
                    self._ended(item[1])
                    end_of_iteration(item[1], self._cancel_requested)
                    raise StopAsyncIteration
                else:
                    self._events.take(item)
        except asyncio.CancelledError:
            self._cancelled_by_task()
            raise

    def _ended(self, terminal: Terminal) -> None:
        self._terminal = terminal
        if self._reader is not None:
            self._lease.settled(self._reader)
        if self._finalizer is not None:
            self._finalizer.detach()

    def _cancelled_by_task(self) -> None:
        """The task reading this stream was cancelled: cancel the request (the lease waits for its end)."""
        self._cancel_requested = True
        if self._reader is not None:
            self._lease.cancel(self._reader, abandon=True)

    @property
    def _channel(self) -> RequestChannel | None:
        return self._reader.channel if self._reader is not None else None

    async def collect(self) -> list[Row]:
        """Every remaining row, or the typed error of a failed request."""
        return [row async for row in self]

    async def result(self) -> Any:
        """Drain the stream and return the command's terminal metadata (raise its error if it failed)."""
        async for _ in self:
            pass
        terminal = self._terminal
        if terminal is None:
            raise RuntimeError("the stream was cancelled before it started")
        return terminal_result(terminal)

    # -- results (as RowStream's) --------------------------------------------------------------------------------

    def _end(self) -> Terminal | None:
        channel = self._channel
        return self._terminal or (channel.terminal if channel is not None else None)

    @property
    def request_id(self) -> int | None:
        channel = self._channel
        return channel.request_id if channel is not None else None

    @property
    def done(self) -> bool:
        """True once the request has ended (or was cancelled before it started, or could not start)."""
        return self._end() is not None or self._never_ran or self._start_error is not None

    @property
    def outcome(self) -> str | None:
        """The terminal outcome once the request has ended (``cancelled`` if it was cancelled before it started)."""
        terminal = self._end()
        if terminal is None:
            return CANCELLED if self._never_ran else None
        return terminal.outcome

    @property
    def error(self) -> LeanWorkerError | None:
        terminal = self._end()
        return terminal.error if terminal else self._start_error

    @property
    def committed(self) -> bool:
        """True only after the request ended in success: then, and only then, may rows be committed."""
        return committed(self._end())

    @property
    def summary(self) -> StreamSummary | None:
        """Totals of a successful stream; None before the end or after a failure."""
        return stream_summary(self._end())

    @property
    def events_dropped(self) -> int:
        channel = self._channel
        return channel.events_dropped if channel is not None else 0

    # -- cancellation ---------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the worker to stop this request; returns at once. Iteration then ends with outcome ``cancelled``."""
        if self._terminal is not None or self._cancel_requested:
            return
        self._cancel_requested = True
        if self._reader is not None:
            self._lease.cancel(self._reader, abandon=False)

    async def aclose(self) -> None:
        """Cancel if still running, drop unread rows, and wait until the request has ended."""
        if self._terminal is not None:
            return
        if not self._started:
            self._cancel_requested = self._started = self._never_ran = True
            return
        reader = self._reader
        if reader is None:
            return
        if reader.channel.terminal is None:
            self._cancel_requested = True
            self._lease.cancel(reader, abandon=True)
        terminal = await self._lease.settle(reader)
        if terminal is not None:
            self._ended(terminal)

    async def __aenter__(self) -> AsyncRowStream:
        await self._start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
