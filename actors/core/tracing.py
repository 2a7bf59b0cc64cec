"""Tracing: every actor message and lifecycle event, with a monotonic time, actor, generation and ids, recorded to
trace sinks (the built-in ring, trace_ring.py, or any object with a ``record`` method) and exported as JSON lines or
Chrome trace event JSON (docs/tracing.md).

Off by default: the runtime holds ``None`` instead of a tracer and checks that before building an event, so tracing
off costs one attribute test per event site. This module holds what the runtime records to (:class:`TraceSink`,
several sinks as one :class:`TracerGroup`, and what a ``trace=`` argument becomes) and the trace files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from leanworker.actors.core import locks
from leanworker.actors.core.trace_ring import TraceEvent, Tracer

log = logging.getLogger("leanworker.tracing")


@runtime_checkable
class TraceSink(Protocol):
    """What the runtime records to: ``lw.Tracer`` (the ring the timeline reads),
    ``leanworker.telemetry.OpenTelemetryTracer`` (spans), or any object with this method. ``record`` is called from
    the runtime's threads, sometimes under its locks: it must be quick, thread-safe, and take none of them."""

    def record(self, kind: str, actor: str, generation: int | None = None, request_id: int | None = None,
               lease_id: int | None = None, **fields: Any) -> None: ...


class TracerGroup:
    """Several trace sinks as one: each event goes to every sink, in their order.

    A sink that raises never reaches the runtime (a reader thread, an actor, the caller's admission): its error is
    logged once, with its traceback, and counted in ``failures``; the other sinks, and the runtime, go on.
    """

    def __init__(self, sinks: Sequence[TraceSink]) -> None:
        self.sinks = tuple(sinks)
        self.failures = [0] * len(self.sinks)  # by sink; counted under a lock taken only when one fails
        self._lock = locks.lock("trace_sink")

    def record(self, kind: str, actor: str, generation: int | None = None, request_id: int | None = None,
               lease_id: int | None = None, **fields: Any) -> None:
        for index, sink in enumerate(self.sinks):
            try:
                sink.record(kind, actor, generation, request_id, lease_id, **fields)
            except Exception:
                self._failed(index, kind)

    def _failed(self, index: int, kind: str) -> None:
        with self._lock:
            self.failures[index] += 1
            first = self.failures[index] == 1
        if first:
            log.exception("trace sink %r failed on a %r event; the runtime goes on without it for that event "
                          "(its later failures are counted, not logged)", self.sinks[index], kind)


def as_sink(trace: TraceSink | Sequence[TraceSink] | None) -> TraceSink | None:
    """One sink for what a ``trace=`` argument accepts: None, one tracer, or a sequence of them."""
    if trace is None or isinstance(trace, TraceSink):
        return trace
    if isinstance(trace, Sequence):
        sinks = tuple(trace)
        bad = [s for s in sinks if not isinstance(s, TraceSink)]
        if bad:
            raise TypeError(f"trace= takes tracers (objects with a record() method), got {bad[0]!r}")
        if not sinks:
            return None
        return sinks[0] if len(sinks) == 1 else TracerGroup(sinks)
    raise TypeError(f"trace= takes a tracer, a sequence of tracers, or None, got {trace!r}")


def runtime_sink(trace: TraceSink | Sequence[TraceSink] | None) -> TraceSink | None:
    """What the runtime records to for a ``trace=`` argument: as :func:`as_sink`, with any sink other than the
    built-in ring (``Tracer``) behind a :class:`TracerGroup`, so that a sink that raises (a span processor's bug, an
    exporter's) is logged and never becomes a worker's or the pool's failure."""
    sink = as_sink(trace)
    if sink is None or isinstance(sink, (Tracer, TracerGroup)):
        return sink
    return TracerGroup((sink,))


# -- export ----------------------------------------------------------------------------------------------------------

_SPAN_ENDS = frozenset({"done", "request_failed"})


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def event_to_json(event: TraceEvent, origin: float = 0.0) -> dict[str, Any]:
    """One event as a JSON object; ``t`` is seconds since ``origin``."""
    return {"t": round(event.time - origin, 9), "kind": event.kind, "actor": event.actor,
            "generation": event.generation, "request_id": event.request_id, "lease_id": event.lease_id,
            "fields": _plain(event.fields)}


def write_jsonl(events: list[TraceEvent], path: str | os.PathLike[str]) -> None:
    """One JSON object a line, oldest first, times in seconds since the first event."""
    origin = events[0].time if events else 0.0
    with open(path, "w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event_to_json(event, origin)) + "\n")


def slot_of(actor: str) -> str:
    """The worker slot an actor belongs to: ``slot3/child.2`` -> ``slot3``."""
    return actor.split("/", 1)[0]


def lane_of(event: TraceEvent) -> str:
    """The timeline lane: one per worker slot and generation (``slot3 g2``), plus one for the pool."""
    slot = slot_of(event.actor)
    if event.generation is None:
        return slot
    return f"{slot} g{event.generation}"


def to_chrome(events: list[TraceEvent]) -> dict[str, Any]:
    """Chrome trace event JSON (opens in Perfetto or chrome://tracing).

    Every recorded event becomes an instant event (``ph: "i"``) on its lane (one thread per slot and
    generation); each request also becomes a complete event (``ph: "X"``) from admission to its terminal.
    """
    origin = events[0].time if events else 0.0
    lanes: dict[str, int] = {}
    out: list[dict[str, Any]] = []

    def tid(lane: str) -> int:
        if lane not in lanes:
            lanes[lane] = len(lanes) + 1
            out.append({"ph": "M", "name": "thread_name", "pid": 1, "tid": lanes[lane], "args": {"name": lane}})
        return lanes[lane]

    open_requests: dict[tuple[str, int], tuple[TraceEvent, str]] = {}
    for event in events:
        lane = lane_of(event)
        ts = round((event.time - origin) * 1e6, 3)
        out.append({"ph": "i", "s": "t", "name": event.kind, "cat": "leanworker", "pid": 1, "tid": tid(lane),
                    "ts": ts, "args": {"actor": event.actor, "generation": event.generation,
                                       "request_id": event.request_id, "lease_id": event.lease_id,
                                       **_plain(event.fields)}})
        if event.request_id is None:
            continue
        key = (slot_of(event.actor), event.request_id)
        if event.kind == "request_admitted":
            open_requests[key] = (event, lane)
        elif event.kind in _SPAN_ENDS and key in open_requests:
            start, start_lane = open_requests.pop(key)
            begin = round((start.time - origin) * 1e6, 3)
            out.append({"ph": "X", "name": str(start.fields.get("command", "request")), "cat": "request",
                        "pid": 1, "tid": tid(start_lane), "ts": begin, "dur": round(ts - begin, 3),
                        "args": {"request_id": event.request_id, "outcome": event.fields.get("outcome")}})
    return {"traceEvents": out, "displayTimeUnit": "ms", "otherData": {"producer": "leanworker"}}


def write_chrome(events: list[TraceEvent], path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(to_chrome(events), out)


def write_trace(events: list[TraceEvent], path: str | os.PathLike[str]) -> None:
    """``.jsonl`` files get JSON lines; anything else gets Chrome trace JSON."""
    if str(path).endswith(".jsonl"):
        write_jsonl(events, path)
    else:
        write_chrome(events, path)


class NotATrace(ValueError):
    """A file is not a leanworker trace (JSON lines or Chrome trace JSON written by this module)."""


def read_trace(path: str | os.PathLike[str]) -> list[TraceEvent]:
    """Read a trace written by :func:`write_jsonl` or :func:`write_chrome` back into events.

    Raises ``OSError`` when the file cannot be read and :class:`NotATrace` when it is not a leanworker trace.
    """
    text = open(path, encoding="utf-8").read()
    stripped = text.lstrip()
    events: list[TraceEvent] = []
    try:
        if stripped.startswith("{") and '"traceEvents"' in stripped[:200]:
            for item in json.loads(text)["traceEvents"]:
                if item.get("ph") != "i":
                    continue
                args = dict(item.get("args", {}))
                actor = args.pop("actor", "?")
                generation = args.pop("generation", None)
                request_id = args.pop("request_id", None)
                lease_id = args.pop("lease_id", None)
                events.append(TraceEvent(item["ts"] / 1e6, item["name"], actor, generation, request_id, lease_id,
                                         args))
            return events
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                item = json.loads(line)
                events.append(TraceEvent(item["t"], item["kind"], item["actor"], item.get("generation"),
                                         item.get("request_id"), item.get("lease_id"), item.get("fields", {})))
    except ValueError as exc:
        raise NotATrace(f"{os.fspath(path)} is not JSON: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise NotATrace(f"{os.fspath(path)} is JSON but not a leanworker trace (missing {exc})") from None
    return events
