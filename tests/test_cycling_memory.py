"""Cycling policies and memory ceilings: planned replacements, and kills of requests over the hard limit."""

from __future__ import annotations

import pytest

import leanworker as lw
from conftest import FAST, THROUGHPUT, faulted, wait_for
from leanworker.testing import Fault


def pids_of(worker: lw.Worker, calls: int) -> list[int]:
    return [worker.call("info")["pid"] for _ in range(calls)]


def test_max_requests_cycles_the_worker_after_that_many_requests() -> None:
    with lw.Worker(lw.SessionKey(THROUGHPUT), FAST, lw.RestartPolicy(max_requests=2)) as worker:
        pids = pids_of(worker, 5)
        assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
        snapshot = worker.snapshot()
        assert snapshot.restarts == {"max_requests": 2} and snapshot.sessions_opened == 3


def test_idle_cycle_after_replaces_an_idle_worker() -> None:
    with lw.Worker(lw.SessionKey(THROUGHPUT), FAST, lw.RestartPolicy(idle_cycle_after=0.2)) as worker:
        first = worker.call("info")["pid"]
        assert wait_for(lambda: worker.snapshot().restarts.get("idle", 0) >= 1, timeout=10)
        worker.wait_ready(30)
        assert worker.call("info")["pid"] != first


def test_an_explicit_cycle_replays_the_same_rows_on_a_fresh_worker() -> None:
    with lw.Worker(lw.SessionKey("leanworker.fixtures.mathlib_scale:capability"), FAST) as worker:
        before = [tuple(r) for r in worker.stream("index")]
        pid = worker.snapshot().pid
        worker.cycle()
        assert wait_for(lambda: worker.snapshot().generation == 2, timeout=10)
        worker.wait_ready(30)
        after = [tuple(r) for r in worker.stream("index")]
        assert after == before and worker.snapshot().pid != pid
        assert worker.snapshot().restarts == {"cycle": 1}


def test_planned_cycles_do_not_count_toward_restart_intensity() -> None:
    policy = lw.RestartPolicy(max_requests=1, max_restarts=1)
    with lw.Worker(lw.SessionKey(THROUGHPUT), FAST, policy) as worker:
        assert len(set(pids_of(worker, 4))) == 4
        assert worker.snapshot().state in ("idle", "starting", "stopping")


def test_the_soft_memory_ceiling_cycles_the_worker_once_it_is_idle() -> None:
    key = lw.SessionKey(THROUGHPUT, options=(("import_mib", 64),))
    with lw.Worker(key, FAST, lw.RestartPolicy(rss_soft_limit_mib=40)) as worker:
        assert wait_for(lambda: worker.snapshot().restarts.get("memory_soft", 0) >= 1, timeout=15)
        assert worker.snapshot().rss_mib is not None


def test_the_hard_memory_ceiling_kills_the_request_in_flight() -> None:
    key, _ = faulted(Fault("memory", nth=1, mib=300))
    with lw.Worker(key, FAST, lw.RestartPolicy(rss_hard_limit_mib=150)) as worker:
        stream = worker.stream("rows", {"count": 3})
        with pytest.raises(lw.MemoryLimitExceeded) as info:
            stream.collect()
        assert stream.outcome == "memory" and not stream.committed
        assert info.value.limit_mib == 150 and info.value.rss_mib is not None and info.value.rss_mib > 150
        worker.wait_ready(30)
        assert worker.call("echo", 1) == 1
        assert worker.snapshot().restarts == {"memory_hard": 1}


def test_memory_under_the_ceilings_changes_nothing() -> None:
    policy = lw.RestartPolicy(rss_soft_limit_mib=4000, rss_hard_limit_mib=8000)
    key, plan = faulted(Fault("memory", nth=1, mib=20, hold=0.8))
    with lw.Worker(key, FAST, policy) as worker:
        stream = worker.stream("rows", {"count": 0})
        assert stream.collect() == [] and stream.committed and [f.kind for f in plan.fired()] == ["memory"]
        assert worker.snapshot().restarts == {} and worker.snapshot().rss_mib is not None


def test_restart_intensity_counts_restarts_in_a_sliding_window() -> None:
    from leanworker.actors.slot.intensity import RestartIntensity

    intensity = RestartIntensity(max_restarts=2, window=10.0)
    assert intensity.record(0.0) is None and intensity.record(1.0) is None
    assert intensity.record(2.0) == 8.0  # a third in 10 s: try again when the first leaves the window
    assert intensity.record(11.5) is None  # 0.0 and 1.0 left it; 2.0 and 11.5 remain
