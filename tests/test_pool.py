"""The pool: warm reuse, admission, the queue policy, affine leases, memory budget, cool-down, snapshots."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator

import psutil
import pytest

import leanworker as lw
from conftest import FAST, THROUGHPUT, faulted, wait_for
from leanworker.testing import Fault
from unreleased import warned

A = lw.SessionKey(THROUGHPUT, imports=("A",))
B = lw.SessionKey(THROUGHPUT, imports=("B",))
C = lw.SessionKey(THROUGHPUT, imports=("C",))
D = lw.SessionKey(THROUGHPUT, imports=("D",))


def pool_config(**overrides: object) -> lw.PoolConfig:
    settings: dict[str, object] = {"max_workers": 2, "queue_wait_timeout": 20.0, "worker": FAST,
                                   "memory_sample_interval": 0.1}
    settings.update(overrides)
    return lw.PoolConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def pool() -> Iterator[lw.WorkerPool]:
    with lw.WorkerPool(pool_config()) as p:
        yield p


def test_every_grant_counts_in_the_queue_wait_histogram_a_warm_one_as_a_zero_wait(pool: lw.WorkerPool) -> None:
    for n in range(4):  # the first waits for its worker to start; the three after it are granted warm
        with pool.lease(A) as lease:
            assert lease.call("echo", n) == n
    waits = pool.stats().queue_wait
    assert waits.count == 4 and waits.counts[0] >= 3
    with pool.lease(A):  # counted again after a read of the stats (the warm grants are folded in as they are read)
        pass
    again = pool.stats().queue_wait
    assert again.count == 5 and again.counts[0] == waits.counts[0] + 1 and again.total == waits.total


def consistent(snapshot: lw.PoolSnapshot) -> None:
    assert snapshot.workers == snapshot.idle + snapshot.busy
    assert snapshot.leases == snapshot.busy <= snapshot.workers
    assert snapshot.workers + snapshot.starting + snapshot.stopping <= snapshot.max_workers


def test_warm_reuse_opens_the_session_once_for_many_leases(pool: lw.WorkerPool) -> None:
    pids = set()
    for _ in range(10):
        with pool.lease(A) as lease:
            info = lease.call("info")
            pids.add(info["pid"])
    assert len(pids) == 1 and info["sessions_opened"] == 1 and info["requests_served"] == 10
    snapshot = pool.snapshot()
    assert snapshot.sessions_opened == 1 and snapshot.requests_ok == 10
    consistent(snapshot)


def test_two_keys_on_a_one_worker_pool_cycle_the_worker() -> None:
    with lw.WorkerPool(pool_config(max_workers=1)) as pool:
        with pool.lease(A) as lease:
            first = lease.call("info")["pid"]
        with pool.lease(B) as lease:
            second = lease.call("info")["pid"]
        with pool.lease(A) as lease:
            third = lease.call("info")["pid"]
        assert len({first, second, third}) == 3
        assert pool.snapshot().sessions_opened == 3


def test_capacity_is_never_exceeded_under_eight_threads_on_three_keys() -> None:
    me = psutil.Process()
    worst = {"processes": 0}
    stop = threading.Event()
    errors: list[BaseException] = []

    def alive(process: psutil.Process) -> bool:
        try:
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def watch() -> None:
        while not stop.is_set():
            count = sum(1 for p in me.children() if alive(p))
            worst["processes"] = max(worst["processes"], count)
            time.sleep(0.002)

    with lw.WorkerPool(pool_config(max_workers=2)) as pool:
        def hammer(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for _ in range(12):
                    with pool.lease(rng.choice([A, B, C]), timeout=60) as lease:
                        assert lease.call("echo", seed) == seed
                    consistent(pool.snapshot())
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        stop.set()
        watcher.join()
        snapshot = pool.snapshot()
    assert not errors, errors
    assert worst["processes"] <= 2, f"{worst['processes']} worker processes at once on a 2-worker pool"
    assert snapshot.requests_ok == 96 and snapshot.leases == 0


def test_a_queued_waiter_times_out_with_queue_timeout(pool: lw.WorkerPool) -> None:
    held = [pool.lease(A), pool.lease(B)]
    start = time.monotonic()
    with pytest.raises(lw.QueueTimeout):
        pool.lease(C, timeout=0.3)
    assert time.monotonic() - start >= 0.3
    assert wait_for(lambda: pool.snapshot().queue_depth == 0)
    for lease in held:
        lease.release()


def test_a_waiter_that_gave_up_never_receives_a_lease(pool: lw.WorkerPool) -> None:
    held = [pool.lease(A), pool.lease(B)]
    with pytest.raises(lw.QueueTimeout):
        pool.lease(A, timeout=0.2)
    held[0].release()  # A's worker is free now; the abandoned waiter must not take it
    assert wait_for(lambda: pool.snapshot().idle == 1)
    snapshot = pool.snapshot()
    assert snapshot.leases == 1 and snapshot.queue_depth == 0
    with pool.lease(A, timeout=5) as lease:
        assert lease.call("echo", 1) == 1
    held[1].release()



class Interrupted(Exception):
    """What this test's SIGINT handler raises (in the main thread, as Python runs every signal handler)."""


def raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted


class HoldGrants:
    """A trace sink that, once armed, holds the pool's thread at the next grant (between the pool's taking the
    waiter's claim and its handing over the lease) until ``go`` is set."""

    def __init__(self) -> None:
        self.armed = False
        self.holding = threading.Event()
        self.go = threading.Event()

    def record(self, kind: str, actor: str, generation: int | None = None, request_id: int | None = None,
               lease_id: int | None = None, **fields: object) -> None:
        if kind == "lease_granted" and self.armed:
            self.armed = False
            self.holding.set()
            self.go.wait(60)


def in_frame(thread_id: int, name: str) -> bool:
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_code.co_name == name:
            return True
        frame = frame.f_back
    return False


def test_a_second_interrupt_while_a_crossing_grant_is_handed_over_still_releases_that_lease() -> None:
    """Ctrl-C leaves a lease wait just as the pool grants it (the claim can no longer be withdrawn), and a second
    Ctrl-C comes while the waiter waits for that lease to release it: the interrupt is raised, and the lease is
    released as it is handed over, not held until the collector finds it (the exception's traceback keeps it here)."""
    grants = HoldGrants()
    main = threading.get_ident()
    previous = signal.signal(signal.SIGINT, raise_interrupted)
    try:
        with lw.WorkerPool(pool_config(max_workers=1, trace=grants)) as pool:
            holder = pool.lease(A)

            def press_twice() -> None:
                assert wait_for(lambda: pool.snapshot().queue_depth == 1, timeout=30)
                grants.armed = True
                holder.release()  # granted to the waiter: the pool's thread is held inside that grant
                assert grants.holding.wait(30)
                signal.pthread_kill(main, signal.SIGINT)
                assert wait_for(lambda: in_frame(main, "_release_granted"), timeout=30)
                signal.pthread_kill(main, signal.SIGINT)

            presser = threading.Thread(target=press_twice, daemon=True)
            presser.start()
            with pytest.raises(Interrupted) as caught:
                pool.lease(A, timeout=30)
            presser.join(30)
            grants.go.set()
            with pool.lease(A, timeout=10) as lease:  # the crossing grant's lease went back to the pool
                assert lease.call("echo", 1) == 1
            assert isinstance(caught.value, Interrupted)
    finally:
        grants.go.set()
        signal.signal(signal.SIGINT, previous)


def test_the_queue_is_first_come_first_served() -> None:
    with lw.WorkerPool(pool_config(max_workers=1)) as pool:
        holder = pool.lease(D)
        order: list[str] = []
        threads = []
        # No waiter's key is warm when its turn comes, so no bypass applies: pure arrival order.
        for name, key in (("first", B), ("second", C), ("third", A)):
            def wait(name: str = name, key: lw.SessionKey = key) -> None:
                with pool.lease(key, timeout=60) as lease:
                    order.append(name)
                    lease.call("echo", 1)
            thread = threading.Thread(target=wait)
            thread.start()
            threads.append(thread)
            assert wait_for(lambda: pool.snapshot().queue_depth == len(threads))
        holder.release()
        for thread in threads:
            thread.join(60)
    assert order == ["first", "second", "third"]


def test_a_warm_match_may_bypass_the_head_but_only_a_bounded_number_of_times() -> None:
    from leanworker.actors.pool.admission import BYPASS_LIMIT

    with lw.WorkerPool(pool_config(max_workers=2)) as pool:
        a_holder, b_holder = pool.lease(A), pool.lease(B)
        head_done = threading.Event()

        def head() -> None:
            with pool.lease(C, timeout=60):
                head_done.set()

        thread = threading.Thread(target=head)
        thread.start()
        assert wait_for(lambda: pool.snapshot().queue_depth == 1)
        bypasses = 0
        holder = b_holder
        for _ in range(BYPASS_LIMIT + 3):
            # A waiter for B queues behind the head; B's worker is freed: B is warm, so it goes to the later waiter
            got: list[lw.Lease] = []
            waiter = threading.Thread(target=lambda: got.append(pool.lease(B, timeout=60)))
            waiter.start()
            assert wait_for(lambda: pool.snapshot().queue_depth == 2 or head_done.is_set())
            holder.release()
            waiter.join(60)
            if head_done.is_set():
                break
            bypasses += 1
            holder = got[0]
        thread.join(60)
        assert head_done.is_set() and bypasses == BYPASS_LIMIT
        for lease in (a_holder, holder, *([got[0]] if got else [])):
            lease.release()


def test_release_is_idempotent_and_returns_capacity_once(pool: lw.WorkerPool) -> None:
    lease = pool.lease(A)
    assert lease.valid
    lease.release()
    lease.release()
    assert not lease.valid
    with pytest.raises(lw.StaleLease, match="released"):
        lease.call("echo", 1)
    assert wait_for(lambda: pool.snapshot().leases == 0)
    both = [pool.lease(A), pool.lease(B)]
    assert pool.snapshot().leases == 2
    for held in both:
        held.release()


def test_an_unreleased_lease_collected_by_gc_returns_capacity_with_a_resource_warning() -> None:
    with lw.WorkerPool(pool_config(max_workers=1)) as pool:
        lease = pool.lease(A)
        lease.call("echo", 1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del lease
            assert wait_for(lambda: warned(caught))  # collected whenever it comes (unreleased.py)
        with pool.lease(B, timeout=10) as other:
            assert other.call("echo", 2) == 2


def test_a_lease_of_a_restarted_worker_is_stale() -> None:
    key, _ = faulted(Fault("crash", nth=1))
    with lw.WorkerPool(pool_config(max_workers=1)) as pool:
        _stale_after_restart(pool, key)


def _stale_after_restart(pool: lw.WorkerPool, key: lw.SessionKey) -> None:
    lease = pool.lease(key)
    with pytest.raises(lw.WorkerCrashed):
        lease.call("echo", "crashes")
    assert wait_for(lambda: not lease.valid)
    with pytest.raises(lw.StaleLease, match="generation 1 has ended"):
        lease.call("echo", 1)
    lease.release()
    with pool.lease(key, timeout=20) as fresh:
        assert fresh.generation == 2 and fresh.call("echo", "new") == "new"
    assert pool.snapshot().restarts == {"crash": 1}


def test_a_crash_of_one_worker_does_not_disturb_a_stream_on_another(pool: lw.WorkerPool) -> None:
    with pool.lease(A) as streaming, pool.lease(faulted(Fault("crash", how="signal"))[0]) as crashing:
        stream = streaming.stream("rows", {"count": 50_000, "payload_bytes": 8})
        seen = 0
        for row in stream:
            seen += 1
            if seen == 1000:
                with pytest.raises(lw.WorkerCrashed):
                    crashing.call("echo", "crashes")
        assert seen == 50_000 and stream.committed


def test_the_memory_budget_evicts_idle_workers_then_refuses() -> None:
    big = lambda name: lw.SessionKey(THROUGHPUT, imports=(name,), options=(("import_mib", 150),))  # noqa: E731
    config = pool_config(max_workers=3, max_total_rss_mib=250)
    with lw.WorkerPool(config) as pool:
        with pool.lease(big("X")) as lease:
            lease.call("echo", 1)
        assert wait_for(lambda: (pool.snapshot().total_rss_mib or 0) > 150, timeout=10)
        held = pool.lease(big("Y"), timeout=20)  # X is idle: it is evicted to make room
        snapshot = pool.snapshot()
        assert snapshot.workers == 1 and snapshot.busy == 1
        assert wait_for(lambda: (pool.snapshot().total_rss_mib or 0) > 150, timeout=10)
        with pytest.raises(lw.MemoryBudgetExceeded, match="memory budget of 250 MiB"):
            pool.lease(big("Z"), timeout=20)  # nothing idle to evict
        held.release()


def test_a_key_that_keeps_dying_is_cooled_down_while_other_keys_work() -> None:
    config = pool_config(restart=lw.RestartPolicy(max_restarts=1, restart_window=30.0))
    key, _ = faulted(Fault("crash"))  # every request of the key
    with lw.WorkerPool(config) as pool:
        with pool.lease(key) as lease:
            with pytest.raises(lw.WorkerCrashed):
                lease.call("echo", 1)
        with pool.lease(key, timeout=20) as lease:
            with pytest.raises(lw.WorkerCrashed):
                lease.call("echo", 2)
        assert wait_for(lambda: pool.snapshot().cooldowns != {})
        with pytest.raises(lw.RestartLimitExceeded, match="try again in") as info:
            pool.lease(key, timeout=5)
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 30
        said = str(info.value)  # one time, the refusal's own (not also the one the first refusal said)
        assert said.endswith(f"(cool-down: try again in {info.value.retry_after:.1f} s)") and "tried" not in said, said
        with pool.lease(A, timeout=20) as other:
            assert other.call("echo", "fine") == "fine"


def test_shutdown_with_work_in_flight_fails_it_typed_and_reaps_everything() -> None:
    pool = lw.WorkerPool(pool_config(max_workers=1))
    lease = pool.lease(faulted(Fault("hang"))[0])
    stream = lease.stream("rows", {"count": 1})
    queued_error: list[BaseException] = []
    waiter = threading.Thread(target=lambda: _catch(lambda: pool.lease(A, timeout=30), queued_error))
    waiter.start()
    assert wait_for(lambda: pool.snapshot().queue_depth == 1)
    pool.shutdown()
    waiter.join(30)
    assert isinstance(queued_error[0], lw.PoolClosed)
    with pytest.raises(lw.PoolClosed):
        stream.collect()
    assert stream.outcome == "shutdown"
    with pytest.raises((lw.PoolClosed, lw.StaleLease)):
        lease.call("echo", 1)
    lease.release()
    with pytest.raises(lw.PoolClosed):
        pool.lease(A)


def _catch(function, sink: list[BaseException]) -> None:  # type: ignore[no-untyped-def]
    try:
        function()
    except BaseException as exc:
        sink.append(exc)


def test_no_threads_file_descriptors_or_processes_leak_over_500_lease_cycles() -> None:
    with lw.WorkerPool(pool_config(max_workers=2)) as pool:
        for key in (A, B):  # both workers up before the baseline
            with pool.lease(key) as lease:
                lease.call("echo", 0)
        threads_before = threading.active_count()
        fds_before = len(os.listdir("/proc/self/fd"))
        children_before = len(psutil.Process().children())  # the workers (each guardian's `sleep` comes and goes)
        for i in range(500):
            with pool.lease(A if i % 5 else B) as lease:
                assert lease.call("echo", i) == i
        assert wait_for(lambda: threading.active_count() <= threads_before, timeout=10)
        # the memory sampler opens /proc files for a moment every 0.1 s: wait for a moment between samples
        assert wait_for(lambda: len(os.listdir("/proc/self/fd")) <= fds_before, timeout=10)
        assert len(psutil.Process().children()) == children_before == 2
        snapshot = pool.snapshot()
        assert snapshot.requests_ok == 502 and snapshot.leases == 0 and snapshot.sessions_opened == 2


def test_the_snapshot_reports_memory_per_worker() -> None:
    with lw.WorkerPool(pool_config()) as pool:
        with pool.lease(A), pool.lease(B):
            assert wait_for(lambda: pool.snapshot().worker_rss_mib is not None, timeout=10)
            snapshot = pool.snapshot()
            assert snapshot.worker_rss_mib is not None and len(snapshot.worker_rss_mib) == 2
            assert snapshot.total_rss_mib == pytest.approx(sum(snapshot.worker_rss_mib), abs=0.2)
            consistent(snapshot)


def test_per_worker_memory_ceilings_apply_inside_the_pool() -> None:
    config = pool_config(max_workers=1, restart=lw.RestartPolicy(rss_hard_limit_mib=150))
    key, _ = faulted(Fault("memory", nth=1, mib=300))
    with lw.WorkerPool(config) as pool:
        with pool.lease(key) as lease:
            stream = lease.stream("rows", {"count": 1})
            with pytest.raises(lw.MemoryLimitExceeded):
                stream.collect()
            assert stream.outcome == "memory" and not stream.committed
        with pool.lease(key, timeout=20) as lease:
            assert lease.call("echo", 1) == 1
        assert pool.snapshot().restarts == {"memory_hard": 1}


def test_concurrent_cold_starts_reserve_memory_and_cannot_overrun_the_budget() -> None:
    keys = [lw.SessionKey(THROUGHPUT, imports=(f"K{i}",), options=(("import_mib", 300), ("import_ms", 300)))
            for i in range(4)]
    config = pool_config(max_workers=4, max_total_rss_mib=500, worker_rss_estimate_mib=300)
    with lw.WorkerPool(config) as pool:
        results: list[object] = [None] * 4
        barrier = threading.Barrier(4)

        def take(index: int) -> None:
            barrier.wait()
            try:
                results[index] = pool.lease(keys[index], timeout=20)
            except lw.LeanWorkerError as exc:
                results[index] = exc

        threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        leases = [r for r in results if isinstance(r, lw.Lease)]
        refused = [r for r in results if isinstance(r, lw.MemoryBudgetExceeded)]
        assert len(leases) == 1 and len(refused) == 3, results
        assert wait_for(lambda: (pool.snapshot().total_rss_mib or 0) > 300, timeout=10)
        assert (pool.snapshot().total_rss_mib or 0) < 500
        for lease in leases:
            lease.release()


def test_a_warm_lease_is_granted_in_the_callers_thread_when_nobody_waits(tracer: lw.Tracer) -> None:
    with lw.WorkerPool(pool_config(max_workers=1, trace=tracer)) as pool:
        for i in range(3):
            with pool.lease(A) as lease:
                assert lease.call("echo", i) == i
        assert pool.snapshot().leases == 0 and pool.snapshot().idle == 1
    grants = [event.fields.get("fast", False) for event in tracer.events() if event.kind == "lease_granted"]
    assert grants == [False, True, True]  # the first starts a worker (the actor); the warm ones need no actor hop
