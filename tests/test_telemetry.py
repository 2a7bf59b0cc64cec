"""OpenTelemetry spans (``leanworker.telemetry.OpenTelemetryTracer``), captured with the SDK's in-memory exporter:
one span per request, session open and restart, each under the caller's current span, beside ``lw.Tracer``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, THROUGHPUT

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from leanworker.telemetry import OpenTelemetryTracer  # noqa: E402

ROWS = lw.SessionKey(THROUGHPUT, imports=("Demo",))
FAULTY = lw.SessionKey(FAULTS)


def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider, exporter


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def test_request_session_open_and_restart_spans_are_children_of_the_callers_span() -> None:
    tracer_provider, exporter = provider()
    app = tracer_provider.get_tracer("app")
    ring = lw.Tracer()
    config = lw.PoolConfig(max_workers=1, worker=FAST, trace=[ring, OpenTelemetryTracer(tracer_provider)])
    with lw.WorkerPool(config) as pool:
        with app.start_as_current_span("http request") as outer:
            with pool.lease(ROWS) as lease:
                lease.call("echo", 1)
                assert len(lease.stream("rows", {"count": 300}).collect()) == 300
        with app.start_as_current_span("crashing request") as crashing:
            with pool.lease(FAULTY) as lease:
                with pytest.raises(lw.WorkerCrashed):
                    lease.call("crash", {"how": "signal"})
            with pool.lease(FAULTY) as lease:
                assert lease.call("echo", 2) == 2
    spans = exporter.get_finished_spans()
    assert ring.events(), "the ring tracer beside it recorded too"
    requests = named(spans, "leanworker.request")
    echo, rows, crash, after = requests
    outer_id, crash_id = outer.get_span_context().span_id, crashing.get_span_context().span_id
    assert echo.parent is not None and echo.parent.span_id == outer_id
    assert rows.parent is not None and rows.parent.span_id == outer_id
    assert echo.context.trace_id == outer.get_span_context().trace_id
    attributes: Any = rows.attributes
    assert attributes["leanworker.command"] == "rows" and attributes["leanworker.outcome"] == "ok"
    assert attributes["leanworker.rows"] == 300 and attributes["leanworker.generation"] == 1
    assert attributes["leanworker.session_key"].endswith("|Demo") and attributes["process.pid"] > 0
    crash_attributes: Any = crash.attributes
    assert crash_attributes["leanworker.outcome"] == "crashed"
    assert crash_attributes["error.type"] == "WorkerCrashed"
    assert crash.parent is not None and crash.parent.span_id == crash_id
    assert after.attributes is not None and after.attributes["leanworker.generation"] == 2
    opens = named(spans, "leanworker.session_open")
    assert [o.parent.span_id if o.parent else None for o in opens] == [outer_id, crash_id, None][:len(opens)] \
        or len(opens) == 3
    first_open = opens[0]
    assert first_open.parent is not None and first_open.parent.span_id == outer_id
    restarts = named(spans, "leanworker.restart")
    assert len(restarts) == 1
    restart: Any = restarts[0]
    assert restart.attributes["leanworker.reason"] == "crash"
    assert restart.parent is not None and restart.parent.span_id == crash_id
    replacement = [o for o in opens if o.parent is not None and o.parent.span_id == restart.context.span_id]
    assert len(replacement) == 1, "the replacement's session open is part of the restart"


def test_a_request_sent_from_an_asyncio_task_is_a_child_of_the_tasks_span() -> None:
    tracer_provider, exporter = provider()
    app = tracer_provider.get_tracer("app")
    config = lw.PoolConfig(max_workers=2, worker=FAST, trace=OpenTelemetryTracer(tracer_provider))

    async def handle(pool: lw.AsyncWorkerPool, name: str) -> int:
        with app.start_as_current_span(name):
            async with pool.lease(ROWS) as lease:
                await asyncio.sleep(0.01)
                result: int = await lease.call("echo", 1)
                return result

    async def main() -> dict[str, int]:
        async with lw.AsyncWorkerPool(config) as pool:
            await asyncio.gather(*(handle(pool, f"task{i}") for i in range(4)))
        return {}

    asyncio.run(main())
    spans = exporter.get_finished_spans()
    tasks = {s.context.span_id: s.name for s in spans if s.name.startswith("task")}
    requests = named(spans, "leanworker.request")
    assert len(requests) == 4
    assert sorted(tasks[r.parent.span_id] for r in requests if r.parent is not None) == \
        ["task0", "task1", "task2", "task3"]


def test_tracing_with_a_sequence_keeps_the_ring_and_the_spans_in_step() -> None:
    tracer_provider, exporter = provider()
    ring = lw.Tracer()
    with lw.Worker(ROWS, FAST, trace=(ring, OpenTelemetryTracer(tracer_provider))) as worker:
        worker.call("echo", 1)
    admitted = [e for e in ring.events() if e.kind == "request_admitted"]
    assert len(admitted) == 1 and len(named(exporter.get_finished_spans(), "leanworker.request")) == 1
    assert len(named(exporter.get_finished_spans(), "leanworker.session_open")) == 1
    with pytest.raises(TypeError):
        lw.PoolConfig(trace=[object()])  # type: ignore[list-item]
    threading.enumerate()
