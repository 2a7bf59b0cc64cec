"""Tracing records every actor message and lifecycle event with time, actor, generation and request id."""

from __future__ import annotations

import pytest

import leanworker as lw
from conftest import FAST, faulted
from leanworker.testing import Fault


def test_a_traced_run_records_the_lifecycle_in_order(tracer: lw.Tracer) -> None:
    key, _ = faulted(Fault("crash", nth=2, after_rows=2), Fault("hang", nth=3))
    with lw.Worker(key, FAST, trace=tracer) as worker:
        worker.call("echo", 1)
        with pytest.raises(lw.WorkerCrashed):
            worker.stream("rows", {"count": 5}).collect()
        worker.wait_ready(30)
        with pytest.raises(lw.RequestTimeout):
            worker.call("info", timeout=0.3)
        worker.wait_ready(30)
    events = tracer.events()
    kinds = [e.kind for e in events]
    for kind in ("spawn", "hello", "ready", "request_admitted", "done", "rows", "kill", "reap", "exited",
                 "generation_start", "shutdown", "message"):
        assert kind in kinds, f"no {kind!r} event"
    times = [e.time for e in events]
    assert times == sorted(times)
    admitted = [e for e in events if e.kind == "request_admitted"]
    assert [e.fields["command"] for e in admitted] == ["echo", "rows", "info"]
    assert all(e.request_id is not None for e in admitted)
    assert {e.generation for e in events if e.kind == "spawn"} == {1, 2, 3}
    assert any(e.kind == "message" and e.fields["message"] == "RequestDone" for e in events)


def test_tracing_is_off_by_default(mathlib_worker: lw.Worker) -> None:
    assert mathlib_worker.trace is None
    assert mathlib_worker.call("version")["simulated"] is True


class RaisingSink:
    """A trace sink with a bug: it raises on every event (a span processor's or exporter's failure, say)."""

    def __init__(self) -> None:
        self.calls = 0

    def record(self, kind: str, actor: str, generation: int | None = None, request_id: int | None = None,
               lease_id: int | None = None, **fields: object) -> None:
        self.calls += 1
        raise RuntimeError("a bug in a trace sink")


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "beside_a_ring"])
def test_a_trace_sink_that_raises_is_logged_once_and_never_fails_the_pool(
        alone: bool, caplog: pytest.LogCaptureFixture) -> None:
    sink, ring = RaisingSink(), lw.Tracer()
    key, _ = faulted(Fault("crash", nth=2))
    config = lw.PoolConfig(max_workers=1, worker=FAST, queue_wait_timeout=20.0,
                           trace=sink if alone else [sink, ring])
    with caplog.at_level("ERROR", logger="leanworker.tracing"):
        with lw.WorkerPool(config) as pool:
            with pool.lease(key) as lease:
                assert lease.call("echo", 1) == 1
                with pytest.raises(lw.WorkerCrashed):
                    lease.stream("rows", {"count": 5}).collect()
            with pool.lease(key) as lease:  # the replacement started, its session open traced
                assert len(lease.stream("rows", {"count": 50}).collect()) == 50
            assert pool.snapshot().restarts == {"crash": 1}
    assert sink.calls > 10, "the sink was called for every event"
    failures = [r for r in caplog.records if r.name == "leanworker.tracing"]
    assert len(failures) == 1 and "a bug in a trace sink" in (failures[0].exc_text or "")
    if not alone:
        assert {"request_admitted", "done", "restart", "ready"} <= set(ring.kinds()), "the other sink saw it all"
