"""OpenTelemetry spans (``leanworker.telemetry.OpenTelemetryTracer``), captured with the SDK's in-memory exporter:
one span per request, session open and restart, each under the caller's current span, beside ``lw.Tracer``."""

from __future__ import annotations

import asyncio
import gc
import weakref
from concurrent.futures import Future
from typing import Any

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, MATHLIB, THROUGHPUT

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
    restarts = named(spans, "leanworker.restart")
    assert len(restarts) == 1
    restart: Any = restarts[0]
    assert restart.attributes["leanworker.reason"] == "crash"
    assert restart.parent is not None and restart.parent.span_id == crash_id
    # the rows key's open under the first request's span; the faults key's (its slot cycled for it) under the
    # second's; the replacement after the crash under the restart
    assert [o.parent.span_id if o.parent else None for o in opens] == [outer_id, crash_id, restart.context.span_id]
    assert [o.attributes["leanworker.generation"] if o.attributes else None for o in opens] == [1, 1, 2]


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


def test_a_failed_request_span_says_how_many_rows_arrived_before_the_failure() -> None:
    tracer_provider, exporter = provider()
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST, trace=OpenTelemetryTracer(tracer_provider))) as pool:
        with pool.lease(FAULTY) as lease:
            stream = lease.stream("crash", {"after_rows": 5, "how": "signal"})
            with pytest.raises(lw.WorkerCrashed):
                stream.collect()
    crash: Any = named(exporter.get_finished_spans(), "leanworker.request")[0]
    assert crash.attributes["leanworker.outcome"] == "crashed" and crash.attributes["error.type"] == "WorkerCrashed"
    assert crash.attributes["leanworker.rows"] == 5


def plan(count: int) -> list[lw.PlannedBatch]:
    key = lw.SessionKey(MATHLIB, imports=("Mathlib",))
    return [lw.PlannedBatch(key, (f"M{i}.A", f"M{i}.B"), f"batch{i}") for i in range(count)]


def test_a_runs_requests_and_session_opens_are_children_of_the_span_where_run_was_called() -> None:
    tracer_provider, exporter = provider()
    app = tracer_provider.get_tracer("app")
    config = lw.PoolConfig(max_workers=2, worker=FAST, trace=OpenTelemetryTracer(tracer_provider))
    with lw.WorkerPool(config) as pool:
        with app.start_as_current_span("threaded run") as threaded:
            results = list(pool.run(plan(4), "index"))
        assert all(r.committed for r in results)

    async def main() -> Any:
        async with lw.AsyncWorkerPool(config) as pool:
            with app.start_as_current_span("async run") as span:
                async with pool.run(plan(4), "index") as run:
                    async for result in run:
                        assert result.committed
            return span

    in_async = asyncio.run(main())
    spans = exporter.get_finished_spans()
    for caller in (threaded, in_async):
        caller_id = caller.get_span_context().span_id
        requests = [s for s in named(spans, "leanworker.request") if s.parent and s.parent.span_id == caller_id]
        opens = [s for s in named(spans, "leanworker.session_open") if s.parent and s.parent.span_id == caller_id]
        assert len(requests) == 4, caller.name
        assert 1 <= len(opens) <= 2, caller.name
    assert all(s.parent is not None for s in named(spans, "leanworker.request"))


def test_a_callers_span_is_not_kept_alive_once_its_lease_wait_is_over() -> None:
    """The tracer keeps a queued caller's context only until its wait ends (granted, withdrawn or failed), and a
    slot's last request's context (the parent of its next restart): bounded by the pool, not by its history."""
    tracer_provider, _ = provider()
    app = tracer_provider.get_tracer("app")
    config = lw.PoolConfig(max_workers=1, worker=FAST, trace=OpenTelemetryTracer(tracer_provider))
    spans: list[weakref.ref[Any]] = []

    async def wait_for_one(pool: lw.AsyncWorkerPool, i: int, give_up: bool) -> None:
        with app.start_as_current_span(f"waiter{i}") as span:
            spans.append(weakref.ref(span))
            if give_up:
                with pytest.raises(lw.QueueTimeout):
                    await pool.lease(ROWS, timeout=0.05)
                return
            async with pool.lease(ROWS) as lease:
                await lease.call("echo", i)

    async def main() -> None:
        async with lw.AsyncWorkerPool(config) as pool:
            async with pool.lease(ROWS) as lease:  # every other caller queues
                await lease.call("echo")
                tasks = [asyncio.create_task(wait_for_one(pool, i, give_up=i % 3 == 0)) for i in range(12)]
                await asyncio.sleep(0.3)
            await asyncio.gather(*tasks)
            gc.collect()
            alive = [i for i, ref in enumerate(spans) if ref() is not None]
            # only the slot's last request's context is kept (a restart's parent): one per slot, at most
            assert len(spans) == 12 and len(alive) <= 1, alive

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_request_the_supervisor_admits_for_its_caller_is_still_a_child_of_the_callers_span() -> None:
    """The slow path: a call while the worker restarts waits for the next generation and is admitted by the
    supervisor, in its own thread; the span is the caller's child all the same (threaded, and without blocking)."""
    tracer_provider, exporter = provider()
    app = tracer_provider.get_tracer("app")
    with lw.Worker(FAULTY, FAST, trace=OpenTelemetryTracer(tracer_provider)) as worker:
        with app.start_as_current_span("caller") as caller:
            with pytest.raises(lw.WorkerCrashed):
                worker.call("crash", {"how": "signal"})
            assert worker.call("echo", 1) == 1  # the replacement is starting: admitted by the supervisor
        with app.start_as_current_span("loop's caller") as nowait_caller:
            worker.cycle()  # the next generation starts: the gate admits nothing until it is ready
            answer = worker._port.admit_nowait("echo", 2, streaming=False)  # as an AsyncLease admits
            assert isinstance(answer, Future)
            channel = answer.result(20)
            assert channel.wait_terminal(20) is not None
    requests = named(exporter.get_finished_spans(), "leanworker.request")
    assert [r.attributes["leanworker.command"] if r.attributes else None for r in requests] == ["crash", "echo", "echo"]
    assert [r.parent.span_id if r.parent else None for r in requests] == [
        caller.get_span_context().span_id, caller.get_span_context().span_id,
        nowait_caller.get_span_context().span_id]
