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
