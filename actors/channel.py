"""The data plane of one request: a bounded buffer between a worker's reader thread and the caller's thread.

Rows never pass through actor mailboxes. The reader thread puts decoded frames here; when ``capacity`` rows are
buffered it blocks, the pipe fills and the worker blocks: backpressure end to end. A channel takes exactly one
terminal: :meth:`RequestChannel.finish` is first-wins, so a ``done`` racing a timeout cannot give two outcomes.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from leanworker.errors import LeanWorkerError, ProtocolError

# Terminal outcomes (DESIGN.md rule 1).
OK = "ok"
ERROR = "error"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
CRASHED = "crashed"
MEMORY = "memory"
PROTOCOL = "protocol"
SHUTDOWN = "shutdown"

ROWS = "rows"
DIAG = "diag"
PROGRESS = "progress"
END = "end"


@dataclass(frozen=True)
class Terminal:
    """How a request ended. ``error`` is set for every outcome but ``ok``."""

    outcome: str
    result: Any = None
    error: LeanWorkerError | None = None
    counts: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0


class Counters:
    """Per-slot counters updated from several threads."""

    __slots__ = ("_lock", "rows_delivered", "backpressure_waits", "stale_frames_dropped")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows_delivered = 0
        self.backpressure_waits = 0
        self.stale_frames_dropped = 0

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)


class RequestChannel:
    """One request's buffer of rows, diagnostics and progress, ending in one :class:`Terminal`."""

    __slots__ = ("request_id", "generation", "command", "streaming", "capacity", "counters", "_cond", "_items",
                 "_buffered", "_terminal", "_abandoned", "received", "_next_seq", "timers")

    def __init__(self, request_id: int, generation: int, command: str, streaming: bool, capacity: int,
                 counters: Counters) -> None:
        self.request_id = request_id
        self.generation = generation
        self.command = command
        self.streaming = streaming
        self.capacity = capacity
        self.counters = counters
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[tuple[Any, ...]] = deque()
        self._buffered = 0
        self._terminal: Terminal | None = None
        self._abandoned = False
        self.received: dict[str, int] = {}
        self._next_seq: dict[str, int] = {}
        self.timers: list[Any] = []  # deadline and cancel-grace timer handles of this request

    # -- producer side (a reader thread, or the supervisor for terminals) -------------------------------------------

    def put_rows(self, stream: str, seq: int, payloads: list[Any]) -> bool:
        """Buffer a ``rows`` frame, waiting while the buffer is full. False if the rows were dropped."""
        with self._cond:
            expected = self._next_seq.get(stream, 0)
            if seq != expected:
                raise ProtocolError(f"rows on {stream!r} start at seq {seq}, expected {expected}: rows were lost")
            self._next_seq[stream] = seq + len(payloads)
            self.received[stream] = self.received.get(stream, 0) + len(payloads)
            if self._buffered >= self.capacity and self._terminal is None and not self._abandoned:
                self.counters.add("backpressure_waits")
                while self._buffered >= self.capacity and self._terminal is None and not self._abandoned:
                    self._cond.wait()
            if self._terminal is not None or self._abandoned:
                return False
            self._items.append((ROWS, stream, seq, payloads))
            self._buffered += len(payloads)
            self._cond.notify_all()
            return True

    def put_event(self, kind: str, value: Any) -> bool:
        """Buffer a diagnostic or progress event (never blocks: they are few)."""
        with self._cond:
            if self._terminal is not None or self._abandoned:
                return False
            self._items.append((kind, value))
            self._cond.notify_all()
            return True

    def finish(self, terminal: Terminal) -> bool:
        """Set the terminal if none is set yet. Returns whether this call decided the outcome."""
        with self._cond:
            if self._terminal is not None:
                return False
            self._terminal = terminal
            self._cond.notify_all()
            return True

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()

    @property
    def terminal(self) -> Terminal | None:
        return self._terminal

    # -- consumer side (the caller's thread) ------------------------------------------------------------------------

    def get(self) -> tuple[Any, ...]:
        """Next item: ``(ROWS, stream, seq, payloads)``, ``(DIAG, d)``, ``(PROGRESS, p)`` or ``(END, terminal)``.

        Items buffered before the terminal are delivered first, so a successful stream loses nothing.
        """
        with self._cond:
            while True:
                if self._items:
                    item = self._items.popleft()
                    if item[0] is ROWS:
                        was_full = self._buffered >= self.capacity
                        self._buffered -= len(item[3])
                        self.counters.add("rows_delivered", len(item[3]))
                        if was_full and self._buffered < self.capacity:
                            self._cond.notify_all()
                    return item
                if self._terminal is not None:
                    return (END, self._terminal)
                self._cond.wait()

    def abandon(self) -> None:
        """The caller stops reading: drop buffered and future rows, unblock the reader."""
        with self._cond:
            self._abandoned = True
            self._items.clear()
            self._buffered = 0
            self._cond.notify_all()

    def wait_terminal(self, timeout: float | None) -> Terminal | None:
        with self._cond:
            self._cond.wait_for(lambda: self._terminal is not None, timeout)
            return self._terminal


class Router:
    """Maps request ids of one generation to their channels. Frames for unknown ids are stale: counted, dropped."""

    __slots__ = ("generation", "counters", "_channels", "_lock", "closed")

    def __init__(self, generation: int, counters: Counters) -> None:
        self.generation = generation
        self.counters = counters
        self._channels: dict[int, RequestChannel] = {}
        self._lock = threading.Lock()
        self.closed = False

    def register(self, channel: RequestChannel) -> None:
        with self._lock:
            self._channels[channel.request_id] = channel

    def get(self, request_id: int) -> RequestChannel | None:
        return self._channels.get(request_id)

    def pop(self, request_id: int) -> RequestChannel | None:
        with self._lock:
            return self._channels.pop(request_id, None)

    def close(self) -> list[RequestChannel]:
        """End the generation: every later frame is stale. Returns channels still open."""
        with self._lock:
            self.closed = True
            channels = list(self._channels.values())
            self._channels.clear()
            return channels

    def stale(self, count: int = 1) -> None:
        self.counters.add("stale_frames_dropped", count)
