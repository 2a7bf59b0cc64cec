"""The written lock order (docs/architecture.md, The lock order) is checked while the whole suite runs: every lock
of the runtime is made by ``leanworker.actors.core.locks`` and, with ``LEANWORKER_LOCK_CHECK=1`` (tests/conftest.py
sets it), records each inversion; an autouse fixture fails the test during which one happened. These tests check
the checker."""

from __future__ import annotations

import threading

import pykka
import pytest

import leanworker as lw
from conftest import THROUGHPUT
from leanworker.actors.core import locks, mailbox


def test_the_suite_runs_with_checked_locks() -> None:
    assert locks.checking
    with lw.Worker(lw.SessionKey(THROUGHPUT)) as worker:
        assert worker.call("echo", 1) == 1
    assert isinstance(locks.lock("gate"), locks.OrderedLock)


def test_taking_an_outer_lock_while_holding_an_inner_one_is_an_inversion() -> None:
    gate, channel = locks.lock("gate"), locks.lock("channel")
    with gate, channel:
        pass
    assert not locks.violations
    with channel, gate:
        pass
    assert len(locks.violations) == 1 and "took 'gate' while holding 'channel'" in locks.violations[0]
    locks.violations.clear()


def test_two_locks_of_the_same_name_held_together_are_an_inversion_but_reentry_is_not() -> None:
    first, second = locks.lock("channel"), locks.lock("channel")
    with first, second:
        pass
    assert len(locks.violations) == 1
    locks.violations.clear()
    pool = locks.rlock("pool")
    with pool, pool:
        pass
    assert not locks.violations


def test_a_lock_taken_without_waiting_is_not_checked_and_each_thread_has_its_own_stack() -> None:
    gate, read_side = locks.lock("gate"), locks.lock("read_side")
    with gate:
        assert read_side.acquire(blocking=False)
        read_side.release()
        other = threading.Thread(target=lambda: read_side.acquire() and read_side.release())
        other.start()
        other.join()
    assert not locks.violations


def test_a_condition_wait_keeps_the_held_locks_true() -> None:
    channel = locks.condition("channel")
    with channel:
        channel.wait(0.01)
        with locks.lock("counters"):
            pass
    assert not locks.violations
    with pytest.raises(ValueError, match="not in the written lock order"):
        locks.lock("nameless")


def test_waiting_for_an_actors_answer_under_a_lock_held_only_for_bookkeeping_is_a_violation() -> None:
    assert mailbox.reentrant_inbox is not None  # imported: pykka's futures check the locks held while checking
    answered: pykka.ThreadingFuture[int] = pykka.ThreadingFuture()
    answered.set(1)
    with locks.lock("lease"):  # a lease's command may wait for the supervisor to admit it
        assert answered.get() == 1
    assert not locks.violations
    with locks.rlock("pool"):
        answered.get()  # checked whether or not the answer is in already: a regression shows whatever the timing
    assert len(locks.violations) == 1 and "waits for an actor's answer while holding 'pool'" in locks.violations[0]
    locks.violations.clear()
    with locks.rlock("pool"):  # starting an actor waits for its thread to run
        started = pykka.ThreadingActor.start()
    started.stop()
    assert len(locks.violations) == 1 and "ThreadingActor's thread to start while holding 'pool'" in locks.violations[0]
    locks.violations.clear()


def test_the_pool_starts_and_leases_slots_without_waiting_for_an_actor_under_its_lock() -> None:
    """The pool's lock is held only for bookkeeping: a slot is booked under it, with its gate, and its actors are
    started after it is released, so nothing asks the new supervisor for its gate or waits for a thread to run under
    it (the autouse fixture fails any test that waits so; this one starts, stops and starts slots)."""
    keys = [lw.SessionKey(THROUGHPUT, imports=(name,)) for name in ("A", "B", "C")]
    with lw.WorkerPool(lw.PoolConfig(max_workers=2)) as pool:
        for key in keys:  # the third key cycles a worker for its own: a stop and a start under the lock
            with pool.lease(key, timeout=30) as lease:
                assert lease.call("echo", key.imports[0]) == key.imports[0]
    assert not locks.violations


def test_the_worker_hosts_locks_are_in_the_order_and_an_inversion_in_a_worker_ends_it() -> None:
    import os
    import subprocess
    import sys

    from leanworker.host.serve import Host

    read_fd, write_fd = os.pipe()
    try:
        host = Host(read_fd, write_fd)
        assert isinstance(host.read_lock, locks.OrderedLock) and host.read_lock.name == "host_read"
        host.writer.close()
    finally:
        os.close(read_fd)
        os.close(write_fd)
    code = ("from leanworker.actors.core import locks\n"
            "locks.fail_fast = True\n"
            "inner, outer = locks.lock('host_writer'), locks.lock('host_read')\n"
            "with inner, outer: pass\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                          env={**os.environ, locks.LOCK_CHECK_ENV: "1"})
    assert done.returncode == 70 and "took 'host_read' while holding 'host_writer'" in done.stderr
