"""``leanworker.testing`` end to end: a plan's faults fire inside real worker processes of a capability that knows
nothing of them, each ends in its typed outcome, and the parent's record of what it sent survives the worker
(issue 22; docs/testing.md). The decisions alone: test_policy_faults.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import leanworker as lw
from conftest import FAST, MATHLIB, THROUGHPUT, pid_gone
from leanworker.actors.core import intercept
from leanworker.testing import Fault, FaultPlan

KEY = lw.SessionKey(THROUGHPUT)
QUICK = lw.WorkerConfig(startup_timeout=10.0, request_timeout=10.0, cancel_grace=0.5, shutdown_timeout=2.0,
                        kill_wait=3.0)


@pytest.fixture(autouse=True)
def plans_uninstalled() -> Iterator[None]:
    yield
    for interceptor in intercept.installed():
        intercept.uninstall(interceptor)


def worker_with(*rules: Fault, restart: lw.RestartPolicy = lw.RestartPolicy()) -> tuple[lw.Worker, FaultPlan]:
    plan = FaultPlan(rules)
    return lw.Worker(plan.wrap(KEY), QUICK, restart), plan


def test_a_wrapped_worker_serves_its_capability_unchanged() -> None:
    plan = FaultPlan([Fault("crash", nth=99)])
    with lw.Worker(KEY, QUICK) as plain, lw.Worker(plan.wrap(KEY), QUICK) as wrapped:
        assert wrapped.metadata().name == plain.metadata().name == "leanworker.fixtures.throughput"
        assert wrapped.metadata().commands == plain.metadata().commands
        assert wrapped.call("echo", {"a": [1, b"x"]}) == plain.call("echo", {"a": [1, b"x"]})
        assert wrapped.stream("rows", {"count": 300}).collect() == plain.stream("rows", {"count": 300}).collect()
        assert {c.name for c in wrapped.doctor().checks} == {c.name for c in plain.doctor().checks}
    assert plan.fired() == []


@pytest.mark.parametrize(("how", "exit_code", "signal"), [("exit", 3, None), ("signal", None, 9), ("abort", None, 6)])
def test_a_crash_after_k_rows_ends_the_stream_crashed_with_those_rows_tentative(
        how: str, exit_code: int | None, signal: int | None) -> None:
    worker, plan = worker_with(Fault("crash", command="rows", nth=2, after_rows=3, how=how))
    with worker:
        assert worker.call("rows", {"count": 5}) == {"count": 5, "payload_bytes": 0}, "request 1: no fault"
        pid = worker.snapshot().pid
        stream = worker.stream("rows", {"count": 10})
        seen = []
        with pytest.raises(lw.WorkerCrashed) as crashed:
            for row in stream:
                seen.append(row.payload["i"])
        assert seen == [0, 1, 2] and not stream.committed
        assert (crashed.value.exit_code, crashed.value.signal) == (exit_code, signal)
        assert "leanworker.testing: injected crash" in crashed.value.stderr_tail
        worker.wait_ready(30)
        assert worker.call("echo", "after") == "after" and worker.snapshot().restarts == {"crash": 1}
    [fired] = plan.fired()
    assert (fired.kind, fired.command, fired.key, fired.nth, fired.pid) == ("crash", "rows", KEY, 2, pid)
    assert pid_gone(pid), "the process really exited"


def test_a_fault_after_more_rows_than_the_command_emits_fires_as_it_returns() -> None:
    worker, plan = worker_with(Fault("crash", after_rows=50))
    with worker, pytest.raises(lw.WorkerCrashed):
        worker.stream("rows", {"count": 4}).collect()


def test_a_hang_ends_at_the_request_timeout_and_the_worker_is_replaced() -> None:
    worker, plan = worker_with(Fault("hang", nth=1, ignore_cancel=True))
    with worker:
        pid = worker.snapshot().pid
        with pytest.raises(lw.RequestTimeout):
            worker.call("echo", 1, timeout=0.5)
        worker.wait_ready(30)
        assert worker.call("echo", 2) == 2 and worker.snapshot().pid != pid
        assert worker.snapshot().restarts == {"timeout": 1}
    assert [f.kind for f in plan.fired()] == ["hang"]


def test_a_hang_that_honours_cancel_ends_cancelled_and_the_worker_stays_warm() -> None:
    worker, plan = worker_with(Fault("hang", nth=1, after_rows=2))
    with worker:
        pid = worker.snapshot().pid
        stream = worker.stream("rows", {"count": 5})
        assert [next(stream).payload["i"] for _ in range(2)] == [0, 1]
        stream.cancel()
        assert list(stream) == [] and stream.outcome == "cancelled"
        assert worker.call("echo", "warm") == "warm" and worker.snapshot().pid == pid
        assert worker.snapshot().restarts == {}


def test_memory_grown_in_the_worker_passes_the_hard_limit() -> None:
    worker, plan = worker_with(Fault("memory", nth=1, mib=320), restart=lw.RestartPolicy(rss_hard_limit_mib=160))
    with worker:
        with pytest.raises(lw.MemoryLimitExceeded) as memory:
            worker.call("echo", 1)
        assert memory.value.rss_mib is not None and memory.value.rss_mib > 160
        worker.wait_ready(30)
        assert worker.call("echo", 2) == 2 and worker.snapshot().restarts == {"memory_hard": 1}


def test_garbage_on_the_protocol_pipe_is_a_protocol_error_and_a_fresh_worker() -> None:
    worker, plan = worker_with(Fault("garbage", nth=1))
    with worker:
        with pytest.raises(lw.ProtocolError):
            worker.call("echo", 1)
        worker.wait_ready(30)
        assert worker.call("echo", 2) == 2 and worker.snapshot().restarts == {"protocol": 1}


def test_slow_answers_late_and_well() -> None:
    worker, plan = worker_with(Fault("slow", nth=1, seconds=0.3))
    with worker:
        started = time.monotonic()
        assert worker.call("echo", "late") == "late"
        assert time.monotonic() - started >= 0.3
        with pytest.raises(lw.RequestTimeout):
            plan.add(Fault("slow", nth=2, seconds=30))
            worker.call("echo", "too late", timeout=0.5)


def test_a_failed_session_open_is_the_command_error_of_the_worker_start() -> None:
    plan = FaultPlan([Fault("session_fail", nth=1, message="no such import")])
    with pytest.raises(lw.CommandError) as failed:
        lw.Worker(plan.wrap(KEY), QUICK)
    assert (failed.value.code, failed.value.message) == ("injected_session_fail", "no such import")
    with lw.Worker(plan.wrap(KEY), QUICK) as worker:  # open 2
        assert worker.call("echo", 1) == 1
    assert [(f.kind, f.command, f.nth) for f in plan.fired()] == [("session_fail", None, 1)]


def test_decisions_are_the_same_whatever_the_number_of_workers() -> None:
    def fired_numbers(workers: int) -> list[int]:
        plan = FaultPlan([Fault("slow", probability=0.3, seconds=0.0)], seed=5)
        key = plan.wrap(KEY)
        config = lw.PoolConfig(max_workers=workers, worker=QUICK)
        with lw.WorkerPool(config) as pool:
            def caller() -> None:
                for i in range(12):
                    with pool.lease(key) as lease:
                        lease.call("echo", i)
            threads = [threading.Thread(target=caller) for _ in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert len({f.pid for f in plan.fired()}) <= workers
        return sorted(f.nth for f in plan.fired() if f.nth <= 12)

    assert fired_numbers(1) == fired_numbers(3) != []


def test_everywhere_a_plain_worker_and_a_plain_pool_get_the_plans_faults() -> None:
    plan = FaultPlan([Fault("crash", nth=1)])
    with plan.everywhere():
        with lw.Worker(lw.SessionKey(MATHLIB), FAST) as worker, pytest.raises(lw.WorkerCrashed):
            worker.call("version")
        with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST)) as pool:
            with pool.lease(KEY) as lease, pytest.raises(lw.WorkerCrashed):
                lease.call("echo", 1)
    with lw.Worker(lw.SessionKey(MATHLIB), FAST) as worker:
        assert worker.call("version") is not None, "uninstalled: no more faults"
    assert [(f.key.capability, f.nth) for f in plan.fired()] == [(MATHLIB, 1), (THROUGHPUT, 1)]
