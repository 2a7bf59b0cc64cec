"""``OpenTelemetryTracer``: leanworker's trace events as OpenTelemetry spans.

It is a trace sink like ``lw.Tracer`` (``record(kind, actor, generation, request_id, lease_id, **fields)``), so it
goes wherever a tracer goes: ``PoolConfig(trace=OpenTelemetryTracer())``, or ``trace=[lw.Tracer(), ...]`` beside
the timeline's ring. From the runtime's events it makes three kinds of span (docs/tracing.md, OpenTelemetry):

- ``leanworker.request``: from a request's admission to its terminal; attributes ``leanworker.command``,
  ``leanworker.outcome``, ``leanworker.generation``, ``leanworker.rows`` (for a failure: the rows that arrived
  before it, never committed), ``leanworker.session_key``, ``process.pid`` and, for a failure, ``error.type``;
- ``leanworker.session_open``: a worker generation from its start to its open session (``leanworker.session_key``,
  ``leanworker.generation``, ``process.pid``);
- ``leanworker.restart``: from the end of a generation that must be replaced to its successor being ready
  (``leanworker.reason``, ``leanworker.planned``).

Parenting: a request span is a child of the OpenTelemetry context current where the request was admitted, which is
the caller's thread or task (the runtime records ``request_admitted`` there, or, when the supervisor admits a
request for its caller, in a copy of the caller's context). A session open is a child of the
context of the caller whose lease request started the worker (``lease_requested`` is recorded in the caller's
thread); a restart, and the session open of the generation that replaces a worker, are children of the context of
the last request on that worker. So a service's trace of one HTTP request shows the Lean work it caused. A
``pool.run`` (threaded or asyncio) runs its batches in copies of the caller's context, so its requests and session
opens are children of the span current where the run was made.

What it keeps is bounded by what is in flight: a queued caller's context until its wait ends
(``lease_wait_ended``), a slot's state until the slot stops, a request's span until its terminal (or its slot
stops).

Spans are ended from the runtime's threads (a worker's reader thread, its supervisor): use a batching span
processor (``BatchSpanProcessor``) in production, so that exporting never holds up a worker's reader.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from leanworker import __version__
from leanworker.actors.core import locks
from leanworker.actors.core.tracing import slot_of

MAX_WAITERS = 10_000  # callers' contexts kept for lease requests not yet matched to a worker start

Context = otel_context.Context


@dataclass
class _Slot:
    """What the tracer knows of one worker slot (a pool's ``slotN``, or a lone ``workerN``)."""

    key: str | None = None
    origin: Context | None = None  # the context of the caller that started it
    last_request: Context | None = None  # the context the slot's last request was admitted in
    pids: dict[int, int] = field(default_factory=dict)  # generation -> pid
    opening: dict[int, Span] = field(default_factory=dict)  # generation -> its session_open span
    restart: Span | None = None  # a restart in progress


class OpenTelemetryTracer:
    """Makes OpenTelemetry spans of a pool's or worker's trace events (see the module docstring).

    ``tracer_provider``: the provider to get a tracer from (default: the global one, ``trace.get_tracer_provider()``).
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer("leanworker", __version__)
        self._lock = locks.lock("trace_sink")
        self._slots: dict[str, _Slot] = {}
        self._waiters: OrderedDict[int, Context] = OrderedDict()
        self._requests: dict[tuple[str, int | None, int | None], Span] = {}
        self._handlers: dict[str, Callable[[str, int | None, int | None, dict[str, Any]], None]] = {
            "lease_requested": self._lease_requested,
            "lease_wait_ended": self._lease_wait_ended,
            "slot_start": self._slot_start,
            "generation_start": self._generation_start,
            "spawn": self._pid,
            "hello": self._pid,
            "ready": self._ready,
            "generation_end": self._generation_end,
            "restart": self._restart,
            "slot_stopped": self._slot_gone,
            "exhausted": self._exhausted,
            "request_admitted": self._admitted,
            "done": self._ended,
            "request_failed": self._ended,
        }

    def record(self, kind: str, actor: str, generation: int | None = None, request_id: int | None = None,
               lease_id: int | None = None, **fields: Any) -> None:
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(slot_of(actor), generation, request_id, fields)

    # -- the events that make spans ------------------------------------------------------------------------------

    def _lease_requested(self, slot: str, generation: int | None, request_id: int | None,
                         fields: dict[str, Any]) -> None:
        with self._lock:
            self._waiters[fields["waiter"]] = otel_context.get_current()
            while len(self._waiters) > MAX_WAITERS:
                self._waiters.popitem(last=False)

    def _lease_wait_ended(self, slot: str, generation: int | None, request_id: int | None,
                          fields: dict[str, Any]) -> None:
        """A queued caller's wait ended (granted, failed or withdrawn): its context is needed no more. Kept, it
        would keep the caller's span alive long after its end."""
        waiter = fields.get("waiter")
        if isinstance(waiter, int):
            with self._lock:
                self._waiters.pop(waiter, None)

    def _slot_start(self, slot: str, generation: int | None, request_id: int | None, fields: dict[str, Any]) -> None:
        with self._lock:
            state = self._slot(slot)
            state.key = fields.get("key")
            waiter = fields.get("waiter")
            state.origin = self._waiters.pop(waiter, None) if waiter is not None else None

    def _generation_start(self, slot: str, generation: int | None, request_id: int | None,
                          fields: dict[str, Any]) -> None:
        if generation is None:
            return
        with self._lock:
            state = self._slot(slot)
            restart = state.restart
            parent = trace.set_span_in_context(restart) if restart is not None else state.origin
            key = state.key
        span = self._tracer.start_span("leanworker.session_open", context=parent, kind=SpanKind.INTERNAL,
                                       attributes=_attributes(key=key, generation=generation))
        with self._lock:
            self._slot(slot).opening[generation] = span

    def _pid(self, slot: str, generation: int | None, request_id: int | None, fields: dict[str, Any]) -> None:
        pid = fields.get("pid")
        if generation is None or not isinstance(pid, int):
            return
        with self._lock:
            state = self._slot(slot)
            state.pids[generation] = pid
            span = state.opening.get(generation)
        if span is not None:
            span.set_attribute("process.pid", pid)

    def _ready(self, slot: str, generation: int | None, request_id: int | None, fields: dict[str, Any]) -> None:
        with self._lock:
            state = self._slot(slot)
            opening = state.opening.pop(generation, None) if generation is not None else None
            restart, state.restart = state.restart, None
        if opening is not None:
            opening.end()
        if restart is not None:
            restart.end()

    def _generation_end(self, slot: str, generation: int | None, request_id: int | None,
                        fields: dict[str, Any]) -> None:
        """A generation is ending; one that never became ready failed its start-up."""
        with self._lock:
            opening = self._slot(slot).opening.pop(generation, None) if generation is not None else None
        if opening is not None:
            opening.set_status(Status(StatusCode.ERROR, f"start-up failed: {fields.get('reason')}"))
            opening.set_attribute("error.type", str(fields.get("reason", "startup")))
            opening.end()

    def _restart(self, slot: str, generation: int | None, request_id: int | None, fields: dict[str, Any]) -> None:
        with self._lock:
            state = self._slot(slot)
            parent = state.last_request or state.origin
            earlier, state.restart = state.restart, None
            state.pids.pop(generation or 0, None)
        if earlier is not None:
            earlier.end()
        span = self._tracer.start_span("leanworker.restart", context=parent, kind=SpanKind.INTERNAL,
                                       attributes={"leanworker.reason": str(fields.get("reason")),
                                                   "leanworker.planned": bool(fields.get("planned")),
                                                   "leanworker.generation": generation or 0})
        with self._lock:
            self._slot(slot).restart = span

    def _slot_gone(self, slot: str, generation: int | None, request_id: int | None, fields: dict[str, Any]) -> None:
        """The slot stopped (or is exhausted): nothing it began will finish."""
        with self._lock:
            state = self._slots.pop(slot, None)
            requests = [key for key in self._requests if key[0] == slot]
            unended = [self._requests.pop(key) for key in requests]  # their terminal was never recorded
        if state is None and not unended:
            return
        spans = [*unended]
        if state is not None:
            spans += [*state.opening.values(), *([state.restart] if state.restart is not None else [])]
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, "the worker slot stopped"))
            span.end()

    def _exhausted(self, slot: str, generation: int | None, request_id: int | None, fields: dict[str, Any]) -> None:
        """Restart intensity passed: the restart in progress will not finish."""
        with self._lock:
            state = self._slot(slot)
            restart, state.restart = state.restart, None
        if restart is not None:
            restart.set_status(Status(StatusCode.ERROR, "restart intensity exhausted"))
            restart.end()

    def _admitted(self, slot: str, generation: int | None, request_id: int | None, fields: dict[str, Any]) -> None:
        parent = otel_context.get_current()  # the caller's: this event is recorded in its thread or task
        with self._lock:
            state = self._slot(slot)
            state.last_request = parent
            key, pid = state.key, state.pids.get(generation or 0)
        attributes = _attributes(key=key, generation=generation, pid=pid)
        attributes["leanworker.command"] = str(fields.get("command"))
        span = self._tracer.start_span("leanworker.request", context=parent, kind=SpanKind.CLIENT,
                                       attributes=attributes)
        with self._lock:
            self._requests[(slot, generation, request_id)] = span

    def _ended(self, slot: str, generation: int | None, request_id: int | None, fields: dict[str, Any]) -> None:
        with self._lock:
            span = self._requests.pop((slot, generation, request_id), None)
        if span is None:
            return  # a handshake step, or a terminal already seen
        outcome = str(fields.get("outcome"))
        span.set_attribute("leanworker.outcome", outcome)
        rows = fields.get("rows")
        if isinstance(rows, int):
            span.set_attribute("leanworker.rows", rows)
        if outcome != "ok":
            span.set_attribute("error.type", str(fields.get("error") or outcome))
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()

    def _slot(self, slot: str) -> _Slot:
        state = self._slots.get(slot)
        if state is None:
            state = self._slots[slot] = _Slot()
        return state


def _attributes(key: str | None, generation: int | None, pid: int | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"leanworker.generation": generation or 0}
    if key is not None:
        attributes["leanworker.session_key"] = key
    if pid is not None:
        attributes["process.pid"] = pid
    return attributes
