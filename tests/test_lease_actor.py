"""The lease actor (docs/architecture.md, The actors and their messages): one per worker slot for the slot's life,
owning its lease's lifecycle over real workers."""

from __future__ import annotations

import gc
import queue
import sys
import threading
import warnings
from typing import Any

import pykka
import pytest

import leanworker as lw
from conftest import FAST, FAULTS, THROUGHPUT, wait_for
from leanworker.actors.pool.lease_actor import LeaseActor
from leanworker.actors.pool.messages import ReturnLease


def lease_actors() -> list[pykka.ActorRef[LeaseActor]]:
    return pykka.ActorRegistry.get_by_class(LeaseActor)


def test_one_lease_actor_per_slot_and_no_thread_per_grant() -> None:
    before = len(lease_actors())
    with lw.WorkerPool(lw.PoolConfig(max_workers=2, worker=FAST)) as pool:
        keys = [lw.SessionKey(THROUGHPUT), lw.SessionKey(THROUGHPUT, imports=("Other",))]
        leases = [pool.lease(key) for key in keys]
        for lease in leases:
            lease.release()
        assert len(lease_actors()) == before + 2
        threads = threading.active_count()
        for _ in range(50):
            with pool.lease(keys[0]) as lease:
                assert lease.call("echo", 1) == 1
        assert threading.active_count() == threads
    assert wait_for(lambda: len(lease_actors()) == before), "lease actors stop with their slots"


def test_a_queued_waiter_gets_the_lease_through_the_lease_actor_and_release_is_booked_when_it_returns() -> None:
    tracer = lw.Tracer()
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST, trace=tracer)) as pool:
        key = lw.SessionKey(THROUGHPUT)
        first = pool.lease(key)
        got: list[lw.Lease] = []
        waiter = threading.Thread(target=lambda: got.append(pool.lease(key, timeout=30)))
        waiter.start()
        assert wait_for(lambda: pool.snapshot().queue_depth == 1)
        first.release()  # someone waits: the release goes through the slot's lease actor
        waiter.join(30)
        assert got and got[0].valid and got[0].call("echo", 2) == 2
        snapshot = pool.snapshot()
        assert snapshot.leases == snapshot.busy == 1 and snapshot.queue_depth == 0
        got[0].release()
        assert pool.snapshot().leases == 0, "release() returns once the pool has booked it"
    granted = [e for e in tracer.events() if e.kind == "lease_granted"]
    assert [e.lease_id for e in granted] == [first.lease_id, got[0].lease_id]


def test_the_supervisors_notice_that_a_generation_ended_makes_the_lease_stale() -> None:
    tracer = lw.Tracer()
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST, trace=tracer)) as pool:
        lease = pool.lease(lw.SessionKey(FAULTS))
        try:
            lease.call("crash", {"how": "exit"})
        except lw.WorkerCrashed:
            pass
        assert wait_for(lambda: any(e.kind == "lease_stale" for e in tracer.events()))
        stale = next(e for e in tracer.events() if e.kind == "lease_stale")
        assert stale.lease_id == lease.lease_id and stale.fields["reason"] == "crash"
        assert not lease.valid
        lease.release()
        assert pool.snapshot().leases == 0


def test_a_lease_is_stale_as_soon_as_a_command_on_it_ends_by_its_workers_exit() -> None:
    """The slot's gate judges the lease's generation as the process exit ends the command, before the lease actor
    hears that the generation ended (slot_leases.py), and whether or not a next generation starts (here none does:
    no restart is allowed)."""
    config = lw.PoolConfig(max_workers=1, worker=FAST, restart=lw.RestartPolicy(max_restarts=0))
    with lw.WorkerPool(config) as pool:
        lease = pool.lease(lw.SessionKey(FAULTS))
        with pytest.raises(lw.WorkerCrashed):
            lease.call("crash", {"how": "exit"})
        assert not lease.valid
        with pytest.raises(lw.StaleLease, match="generation 1 has ended"):
            lease.call("echo", 1)
        lease.release()
        assert pool.snapshot().leases == 0


def test_a_released_lease_never_waits_on_its_slots_next_holder() -> None:
    """The leases of a slot share its lock (one command admitted at a time): a released one is refused, and its
    second release does nothing, without taking it, whatever the slot's next holder holds."""
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST)) as pool:
        key = lw.SessionKey(THROUGHPUT)
        old = pool.lease(key)
        old.release()
        with pool.lease(key) as new:
            outcomes: list[str] = []

            def use_old() -> None:
                try:
                    old.call("echo", 1)
                except lw.StaleLease:
                    outcomes.append("stale")
                old.release()
                outcomes.append("released")

            with new._slot.lock:  # as the next holder does while its command waits to be admitted
                user = threading.Thread(target=use_old)
                user.start()
                user.join(30)
            assert outcomes == ["stale", "released"]
            assert new.call("echo", 2) == 2


def test_a_lease_collected_unreleased_is_returned_through_its_slots_lease_actor_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease actor owns the lease's lifecycle, a release by the garbage collector included: the finalizer tells
    it (without a lock or a wait), and it returns the capacity to the pool once."""
    returned: list[int] = []
    plain = LeaseActor.on_receive

    def spy(self: LeaseActor, message: Any) -> Any:
        if isinstance(message, ReturnLease):
            returned.append(message.lease_id)
        return plain(self, message)

    monkeypatch.setattr(LeaseActor, "on_receive", spy)
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST)) as pool:
        key = lw.SessionKey(THROUGHPUT)
        lease = pool.lease(key)
        lease_id = lease.lease_id
        # An inbox whose put takes no Python-level lock: a finalizer may tell it from any thread, under any lock.
        assert all(isinstance(ref.actor_inbox, queue.SimpleQueue) for ref in lease_actors())
        assert lease.call("echo", 1) == 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del lease
            gc.collect()
        assert any(issubclass(w.category, ResourceWarning) for w in caught)
        assert wait_for(lambda: returned == [lease_id]), returned
        assert wait_for(lambda: pool.snapshot().leases == 0)
        with pool.lease(key, timeout=10) as again:  # the one slot's capacity came back
            assert again.call("echo", 2) == 2
    assert returned == [lease_id]


def test_a_lease_collected_after_its_pool_shut_down_is_dropped_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its slot's lease actor has stopped with the slot: the finalizer tells the pool actor, which has stopped too;
    nothing raises in the finalizer."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    pool = lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST))
    lease = pool.lease(lw.SessionKey(THROUGHPUT))
    pool.shutdown()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del lease
        gc.collect()
    assert [w.category for w in caught] == [ResourceWarning], [str(w.message) for w in caught]
    assert not unraisable, [u.exc_value for u in unraisable]
