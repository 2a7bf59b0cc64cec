"""The built-in trace sink: an in-memory ring of the most recent :class:`TraceEvent` records (``lw.Tracer``), the
one the timeline and the trace files read (tracing.py, docs/tracing.md). Recording an event is one ``deque.append``
(thread-safe in CPython), so a sink the runtime calls from its threads, under its locks, costs no lock of its own."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One recorded event. ``time`` is ``time.monotonic()`` seconds."""

    time: float
    kind: str
    actor: str
    generation: int | None = None
    request_id: int | None = None
    lease_id: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class Tracer:
    """An in-memory ring of the most recent ``capacity`` events."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._events: deque[TraceEvent] = deque(maxlen=capacity)
        self.started = time.monotonic()

    def record(
        self,
        kind: str,
        actor: str,
        generation: int | None = None,
        request_id: int | None = None,
        lease_id: int | None = None,
        **fields: Any,
    ) -> None:
        self._events.append(TraceEvent(time.monotonic(), kind, actor, generation, request_id, lease_id, fields))

    def events(self) -> list[TraceEvent]:
        """A copy of the recorded events, oldest first."""
        return list(self._events)

    def kinds(self) -> list[str]:
        return [event.kind for event in self._events]

    def clear(self) -> None:
        self._events.clear()
