"""The data plane of one request: a bounded buffer between a worker's reader thread and the caller's thread.

Rows never pass through actor mailboxes. The reader thread puts decoded frames here; when ``capacity`` rows or
``capacity_bytes`` bytes (of frames) are buffered it blocks, the pipe fills and the worker blocks: backpressure end
to end, parent memory bounded in bytes. Diagnostics and progress never block the worker and are bounded too: past
``EVENT_LIMIT`` unread events or ``EVENT_BUFFER_BYTES`` bytes, progress is coalesced to the latest value per phase
and diagnostics are dropped and counted. A channel takes exactly one terminal: :meth:`RequestChannel.finish` is first-wins, so a ``done`` racing a
timeout cannot give two outcomes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leanworker.actors.core import locks
from leanworker.actors.core.interruptible import condition_wait_for, wait_slice
from leanworker.actors.slot.counters import Counters
from leanworker.errors import LeanWorkerError, ProtocolError
from leanworker.protocol import messages
from leanworker.protocol.messages import OUTCOME_CANCELLED, OUTCOME_ERROR, OUTCOME_OK

# Terminal outcomes (docs/semantics.md, Requests and outcomes): the three a worker's done may say, and the rest.
OK = OUTCOME_OK
ERROR = OUTCOME_ERROR
CANCELLED = OUTCOME_CANCELLED
TIMEOUT = "timeout"
CRASHED = "crashed"
MEMORY = "memory"
PROTOCOL = "protocol"
SHUTDOWN = "shutdown"

EVENT_LIMIT = 1024
EVENT_BUFFER_BYTES = 4 * 1024 * 1024
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024

# Kinds of item in a channel: those of the frame each came from (rows, diag, progress), and its end.
ROWS = messages.ROWS
DIAG = messages.DIAG
PROGRESS = messages.PROGRESS
END = "end"


@dataclass(frozen=True)
class Terminal:
    """How a request ended. ``error`` is set for every outcome but ``ok``."""

    outcome: str
    result: Any = None
    error: LeanWorkerError | None = None
    counts: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0


class RequestChannel:
    """One request's buffer of rows, diagnostics and progress, ending in one :class:`Terminal`."""

    __slots__ = ("request_id", "generation", "command", "streaming", "capacity", "capacity_bytes", "counters",
                 "_cond", "_items", "_buffered", "_buffered_bytes", "_event_count", "_event_bytes", "_progress",
                 "_terminal", "_abandoned", "received", "_next_seq", "timers", "events_dropped", "timeout",
                 "_wake", "admitted_at", "due")

    def __init__(self, request_id: int, generation: int, command: str, streaming: bool, capacity: int,
                 counters: Counters, capacity_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        self.request_id = request_id
        self.generation = generation
        self.command = command
        self.streaming = streaming
        self.capacity = capacity
        self.capacity_bytes = capacity_bytes
        self.counters = counters
        self._cond = locks.condition("channel")
        self._items: deque[tuple[Any, ...]] = deque()
        self._buffered = 0
        self._buffered_bytes = 0
        self._event_count = 0
        self._event_bytes = 0
        self._progress: dict[str, list[Any]] = {}  # phase -> [Progress, frame size] of its newest unread event
        self._terminal: Terminal | None = None
        self._abandoned = False
        self.received: dict[str, int] = {}
        self._next_seq: dict[str, int] = {}
        self.timers: list[Any] = []  # timer handles of this request (its cancel grace)
        self.events_dropped = 0
        self.timeout: float | None = None  # the request's deadline in seconds, for messages
        self._wake: Callable[[], None] | None = None  # a poll()ing consumer's, called once by the next producer
        self.admitted_at: float | None = None  # time.monotonic() at admission; set by the gate (not for handshakes)
        self.due: float | None = None  # time.monotonic() past which the request has timed out (None: no timeout)

    # -- producer side (a reader thread, or the supervisor for terminals) -------------------------------------------

    def _full(self) -> bool:
        return self._buffered >= self.capacity or self._buffered_bytes >= self.capacity_bytes

    def put_rows(self, stream: str, seq: int, payloads: list[Any], nbytes: int = 0) -> bool:
        """Buffer a ``rows`` frame of ``nbytes`` bytes, waiting while the buffer is full. False if dropped.

        The buffer takes a frame whenever it is below both bounds, so it holds at most ``capacity_bytes`` plus one
        frame.
        """
        with self._cond:
            if not self.streaming:
                raise ProtocolError(f"rows on {stream!r} for request {self.request_id}, which asked for no rows")
            expected = self._next_seq.get(stream, 0)
            if seq != expected:
                raise ProtocolError(f"rows on {stream!r} start at seq {seq}, expected {expected}: rows were lost")
            self._next_seq[stream] = seq + len(payloads)
            self.received[stream] = self.received.get(stream, 0) + len(payloads)
            if self._full() and self._terminal is None and not self._abandoned:
                self.counters.add("backpressure_waits")
                while self._full() and self._terminal is None and not self._abandoned:
                    self._cond.wait()
            if self._terminal is not None or self._abandoned:
                return False
            self._items.append((ROWS, stream, seq, payloads, nbytes))
            self._buffered += len(payloads)
            self._buffered_bytes += nbytes
            self._cond.notify_all()
            if self._wake is not None:
                self._woken()
            return True

    def rows_received(self) -> int:
        """Rows that arrived for this request so far, on every stream (delivered or not; tentative until success)."""
        with self._cond:
            return sum(self.received.values())

    def put_event(self, kind: str, value: Any, nbytes: int = 0) -> bool:
        """Buffer a diagnostic or progress event without ever blocking. False if it was not buffered.

        Past the event bounds, a progress event replaces the latest unread value of its phase (coalesced), and any
        other event is dropped and counted in ``events_dropped``.
        """
        with self._cond:
            if self._terminal is not None or self._abandoned:
                return False
            if self._event_count >= EVENT_LIMIT or self._event_bytes + nbytes > EVENT_BUFFER_BYTES:
                cell = self._progress.get(value.phase) if kind is PROGRESS else None
                if cell is not None and self._event_bytes - cell[1] + nbytes <= EVENT_BUFFER_BYTES:
                    self._event_bytes += nbytes - cell[1]
                    cell[0], cell[1] = value, nbytes
                else:
                    self.events_dropped += 1
                    self.counters.add("events_dropped")
                return True
            self._event_count += 1
            self._event_bytes += nbytes
            if kind is PROGRESS:
                cell = [value, nbytes]
                self._progress[value.phase] = cell
                self._items.append((PROGRESS, cell))
            else:
                self._items.append((kind, value, nbytes))
            self._cond.notify_all()
            if self._wake is not None:
                self._woken()
            return True

    def finish(self, terminal: Terminal) -> bool:
        """Set the terminal if none is set yet. Returns whether this call decided the outcome."""
        with self._cond:
            if self._terminal is not None:
                return False
            self._terminal = terminal
            self._cond.notify_all()
            if self._wake is not None:
                self._woken()
            if self.admitted_at is not None:  # a request (not a handshake step): counted once, by its first terminal
                self.counters.request_ended(self.command, terminal.outcome, time.monotonic() - self.admitted_at)
            return True

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()

    @property
    def terminal(self) -> Terminal | None:
        return self._terminal

    # -- consumer side (the caller's thread) ------------------------------------------------------------------------

    def get(self) -> tuple[Any, ...]:
        """Next item: ``(ROWS, stream, seq, payloads, nbytes)``, ``(DIAG, d)``, ``(PROGRESS, p)`` or ``(END, t)``.

        Items buffered before the terminal are delivered first, so a successful stream loses nothing.
        """
        with self._cond:
            while True:
                item = self._take()
                if item is not None:
                    return item
                self._cond.wait(wait_slice(None))  # the main thread looks again now and then (core/interruptible.py)

    def poll(self, wake: Callable[[], None]) -> tuple[Any, ...] | None:
        """The next item as :meth:`get` gives it, without waiting. None when there is none yet: ``wake()`` is then
        called once, by the thread that buffers the next item or sets the terminal (it must be quick and must not
        raise). A later poll replaces a wake function not yet called."""
        with self._cond:
            item = self._take()
            self._wake = wake if item is None else None
            return item

    def _take(self) -> tuple[Any, ...] | None:
        if self._items:
            item = self._items.popleft()
            kind = item[0]
            if kind is ROWS:
                was_full = self._full()
                self._buffered -= len(item[3])
                self._buffered_bytes -= item[4]
                self.counters.add("rows_delivered", len(item[3]))
                if was_full and not self._full():
                    self._cond.notify_all()
                return item
            self._event_count -= 1
            if kind is PROGRESS:
                progress, nbytes = item[1]
                if self._progress.get(progress.phase) is item[1]:
                    del self._progress[progress.phase]
                self._event_bytes -= nbytes
                return (PROGRESS, progress)
            self._event_bytes -= item[2]
            return (kind, item[1])
        if self._terminal is not None:
            return (END, self._terminal)
        return None

    def _woken(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    def abandon(self) -> None:
        """The caller stops reading: drop buffered and future rows, unblock the reader."""
        with self._cond:
            self._abandoned = True
            self._items.clear()
            self._progress.clear()
            self._buffered = self._buffered_bytes = self._event_count = self._event_bytes = 0
            self._cond.notify_all()

    def wait_terminal(self, timeout: float | None) -> Terminal | None:
        with self._cond:
            condition_wait_for(self._cond, lambda: self._terminal is not None, timeout)
            return self._terminal
