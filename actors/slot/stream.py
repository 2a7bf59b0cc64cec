"""The caller's side of a streaming request."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

from leanworker.actors.core.results import Diagnostic, Progress, Row, StreamSummary
from leanworker.actors.slot.channel import END, ROWS, RequestChannel, Terminal
from leanworker.actors.slot.reading import StreamEvents, committed, end_of_iteration, stream_summary, terminal_result
from leanworker.errors import LeanWorkerError

CancelFunction = Callable[[], None]


def _abandon(channel: RequestChannel, cancel: CancelFunction) -> None:
    if channel.terminal is None:
        channel.abandon()
        cancel()


class RowStream:
    """Rows of one request, live, as :class:`Row` values; a context manager.

    Iterating yields rows as they arrive. When the request fails, iteration raises its typed error after the rows
    that arrived before the failure; rows are *committed* (``stream.committed``) only when the request succeeds.
    After :meth:`cancel`, iteration ends quietly with ``stream.outcome == "cancelled"``. Leaving the ``with`` block
    early cancels the request and waits for its terminal, so the worker is free again afterwards.
    """

    def __init__(self, channel: RequestChannel, cancel: CancelFunction, settle_timeout: float,
                 on_diagnostic: Callable[[Diagnostic], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self._channel = channel
        self._cancel = cancel
        self._settle_timeout = settle_timeout
        self._events = events = StreamEvents(on_diagnostic, on_progress)
        self._cancel_requested = False
        self._terminal: Terminal | None = None
        self.diagnostics: list[Diagnostic] = events.diagnostics
        self.progress: list[Progress] = events.progress
        self._iterator = self._rows()
        self._finalizer = weakref.finalize(self, _abandon, channel, cancel)

    @property
    def request_id(self) -> int:
        return self._channel.request_id

    @property
    def generation(self) -> int:
        return self._channel.generation

    def __iter__(self) -> Iterator[Row]:
        return self._iterator

    def __next__(self) -> Row:
        return next(self._iterator)

    def _rows(self) -> Iterator[Row]:
        get = self._channel.get
        while True:
            item = get()
            kind = item[0]
            if kind is ROWS:
                stream = item[1]
                for seq, payload in enumerate(item[3], item[2]):
                    yield Row(stream, seq, payload)
            elif kind is END:
                self._terminal = item[1]
                self._finalizer.detach()
                end_of_iteration(item[1], self._cancel_requested)
                return
            else:
                self._events.take(item)

    # -- results -------------------------------------------------------------------------------------------------

    def _ended(self) -> Terminal | None:
        # The request may have ended before the caller read everything; its terminal is known all the same.
        return self._terminal or self._channel.terminal

    @property
    def events_dropped(self) -> int:
        """Diagnostics (or progress past coalescing) this request's full event buffer had to drop."""
        return self._channel.events_dropped

    @property
    def done(self) -> bool:
        """True once the request has ended (whether or not every row was read)."""
        return self._ended() is not None

    @property
    def outcome(self) -> str | None:
        """The terminal outcome once the request has ended: ok, error, timeout, cancelled, crashed, memory,
        protocol or shutdown."""
        terminal = self._ended()
        return terminal.outcome if terminal else None

    @property
    def error(self) -> LeanWorkerError | None:
        terminal = self._ended()
        return terminal.error if terminal else None

    @property
    def committed(self) -> bool:
        """True only after the request ended in success: then, and only then, may rows be committed."""
        return committed(self._ended())

    @property
    def summary(self) -> StreamSummary | None:
        """Totals of a successful stream; None before the end or after a failure."""
        return stream_summary(self._ended())

    def collect(self) -> list[Row]:
        """Every remaining row, or the typed error of a failed request."""
        return list(self._iterator)

    def result(self) -> Any:
        """Drain the stream and return the command's terminal metadata (raise its error if it failed)."""
        for _ in self._iterator:
            pass
        terminal = self._terminal
        if terminal is None:  # the iterator was exhausted earlier
            raise RuntimeError("stream already consumed")
        return terminal_result(terminal)

    # -- cancellation --------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Ask the worker to stop this request. Iteration then ends with outcome ``cancelled``."""
        if self._terminal is None and not self._cancel_requested:
            self._cancel_requested = True
            self._cancel()

    def close(self) -> None:
        """Cancel if still running, drop unread rows, and wait until the request has ended."""
        if self._terminal is not None:
            return
        if self._channel.terminal is None:
            self._cancel_requested = True
            self._channel.abandon()
            self._cancel()
        terminal = self._channel.wait_terminal(self._settle_timeout)
        if terminal is not None:
            self._terminal = terminal
            self._finalizer.detach()

    def __enter__(self) -> RowStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
