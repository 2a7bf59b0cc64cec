"""``leanworker.testing`` end to end: a plan's faults fire inside real worker processes of a capability that knows
nothing of them, and the parent decides and records them the same way however many workers run (issue 22;
docs/testing.md). The decisions alone: test_policy_faults.py. The runtime's own fault tests use the kit for each
kind's typed outcome: crash and hang in test_worker_outcomes.py, memory in test_cycling_memory.py and test_pool.py,
garbage in test_worker_faults.py and test_caller_reads.py, a crash retried by a run in test_plan_run.py."""

from __future__ import annotations

import threading
import time
import pytest

import leanworker as lw
from conftest import FAST, MATHLIB, THROUGHPUT
from leanworker.testing import Fault, FaultPlan
from leanworker.testing.firing import meminfo_mib

KEY = lw.SessionKey(THROUGHPUT)
QUICK = lw.WorkerConfig(startup_timeout=10.0, request_timeout=10.0, cancel_grace=0.5, shutdown_timeout=2.0,
                        kill_wait=3.0)


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


def test_a_fault_after_more_rows_than_the_command_emits_fires_as_it_returns() -> None:
    worker, plan = worker_with(Fault("crash", after_rows=50))
    with worker, pytest.raises(lw.WorkerCrashed):
        worker.stream("rows", {"count": 4}).collect()


def test_slow_answers_late_and_well() -> None:
    worker, plan = worker_with(Fault("slow", nth=1, seconds=0.3))
    with worker:
        started = time.monotonic()
        assert worker.call("echo", "late") == "late"
        assert time.monotonic() - started >= 0.3
        with pytest.raises(lw.RequestTimeout):
            plan.add(Fault("slow", nth=2, seconds=30))
            worker.call("echo", "too late", timeout=0.5)


def test_a_memory_fault_stops_growing_before_it_takes_the_machines_last_memory() -> None:
    # mib=10**9 (a typo) without a hard limit grew until the OOM killer chose a victim among everything running here
    memory = meminfo_mib()
    if memory is None:
        pytest.skip("no /proc/meminfo: the guard lets a memory fault grow")
    keep = max(0, memory[0] - 64)  # leave it 64 MiB to take, whatever the machine has
    net = lw.RestartPolicy(rss_hard_limit_mib=3072)  # ends the test, typed, if the guard failed
    worker, plan = worker_with(Fault("memory", nth=1, mib=10**9, hold=0, keep_free_mib=keep), restart=net)
    with worker:
        assert worker.call("echo", "after the growth") == "after the growth"
    assert [(f.kind, f.params["mib"]) for f in plan.fired()] == [("memory", 10**9)]


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
