"""The parent's connection to one generation of a slot's worker: the one object that knows which generation a
request, a frame or a reader belongs to.

It holds the generation's number, its request ids (each mapped to its request's channel), the write end of the
worker's stdin (set at spawn) and the read side of its stdout (set once the hello is in). Frames for ids it does
not hold are stale: counted and dropped. When the generation ends, :meth:`close` takes every channel out, so no
later frame of it can reach a request; and :meth:`reads_for` lets a caller read only its own generation's answers.
"""

from __future__ import annotations

from leanworker.actors.core import locks
from leanworker.actors.core.intercept import RequestHook
from leanworker.actors.slot.channel import RequestChannel
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.pipe import PipeWriter
from leanworker.actors.slot.readside import ReadSide


class Connection:
    """One generation's request ids, pipe writer and read side (see the module docstring)."""

    __slots__ = ("generation", "counters", "pipe", "reads", "requests", "closed", "_channels", "_lock")

    def __init__(self, generation: int, counters: Counters) -> None:
        self.generation = generation
        self.counters = counters
        self.pipe: PipeWriter | None = None  # set at spawn
        self.reads: ReadSide | None = None  # set once the hello is in: a caller may read its own answer
        self.requests: RequestHook | None = None  # an interceptor's hook, set before the session opens
        self.closed = False
        self._channels: dict[int, RequestChannel] = {}
        self._lock = locks.lock("connection")

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

    def reads_for(self, channel: RequestChannel) -> ReadSide | None:
        """The read side a caller may use to read ``channel``'s answer itself: a call of this generation."""
        if channel.streaming or channel.generation != self.generation:
            return None
        return self.reads
