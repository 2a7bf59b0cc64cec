"""The pool's snapshot on the pure function that builds it, without processes (docs/semantics.md, The pool:
Snapshots): its counts agree (``workers == idle + busy``, ``leases == busy <= workers``, ``workers + starting +
stopping <= max_workers``) whatever admission decided, and its counters include workers that have since stopped. The
end-to-end tests over real worker processes are test_pool_stateful.py and test_error_texts.py."""

from __future__ import annotations

import itertools
from concurrent.futures import Future
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

import leanworker as lw
from leanworker.actors.pool.admission import Admission, Grant, Refuse, Start, StopFor
from leanworker.actors.pool.affinity import SessionAffinity
from leanworker.actors.pool.budget import MemoryBudget
from leanworker.actors.pool.records import Slot, Waiter
from leanworker.actors.pool.snapshot import Totals, pool_snapshot

from fake_gate import Gate

KEYS = (lw.SessionKey("cap:a"), lw.SessionKey("cap:b"), lw.SessionKey("cap:c"))


def slot(slot_id: int, key: lw.SessionKey, state: str, lease_id: int | None = None, gate: Gate | None = None) -> Slot:
    gate = gate if gate is not None else Gate()
    return Slot(slot_id, key, gate, handle=SimpleNamespace(port=SimpleNamespace(gate=gate)),
                state=state, generation=1, lease_id=lease_id, sampled=True, rss=50.0)


def snapshot(admission: Admission, retired: Totals | None = None,
             restarts: dict[str, int] | None = None) -> lw.PoolSnapshot:
    return pool_snapshot(admission, retired or Totals(), restarts or {}, 0, {})


def check_counts(snap: lw.PoolSnapshot) -> None:
    assert snap.workers == snap.idle + snap.busy, snap
    assert snap.leases == snap.busy <= snap.workers, snap
    assert snap.workers + snap.starting + snap.stopping <= snap.max_workers, snap


def test_snapshots_counts_agree_a_leased_worker_is_busy_even_while_it_restarts() -> None:
    admission = Admission(6, MemoryBudget(None, 100), SessionAffinity())
    a, b, c = KEYS
    for made in (slot(1, a, "ready"), slot(2, a, "ready", lease_id=10), slot(3, b, "starting", lease_id=11),
                 slot(4, b, "starting"), slot(5, c, "stopping"), slot(6, c, "exhausted")):
        admission.slots[made.slot_id] = made
        if made.lease_id is not None:
            admission.leases[made.lease_id] = made.slot_id
    snap = snapshot(admission)
    assert (snap.workers, snap.idle, snap.busy, snap.leases) == (3, 1, 2, 2)
    assert (snap.starting, snap.stopping, snap.max_workers) == (1, 2, 6)
    check_counts(snap)


def test_snapshots_counters_include_workers_that_have_since_stopped() -> None:
    admission = Admission(2, MemoryBudget(None, 100), SessionAffinity())
    gone_gate, live_gate = Gate(requests_ok=3, requests_failed=1), Gate(requests_ok=2)
    gone_gate.counters.rows_delivered, live_gate.counters.rows_delivered = 30, 7
    gone_gate.counters.backpressure_waits, gone_gate.counters.stale_frames_dropped = 4, 5
    gone, live = slot(1, KEYS[0], "stopping", gate=gone_gate), slot(2, KEYS[1], "ready", gate=live_gate)
    admission.slots.update({1: gone, 2: live})
    retired, restarts = Totals(), {"crash": 1}
    before = snapshot(admission, retired, restarts)
    del admission.slots[1]  # reaped: the pool actor retires its figures
    retired.add_slot(gone)
    after = snapshot(admission, retired, restarts)
    figures = ("requests_ok", "requests_failed", "rows_delivered", "backpressure_waits", "stale_frames_dropped")
    assert [getattr(after, name) for name in figures] == [getattr(before, name) for name in figures] == [5, 1, 37, 4, 5]
    assert after.workers == 1 and after.stopping == 0
    restarts["crash"] += 1
    assert after.restarts == {"crash": 1}, "a snapshot is a copy: later restarts do not change it"


class Pool:
    """The pool actor's bookkeeping around admission, as the actor does it, with no worker behind a slot."""

    def __init__(self, max_workers: int) -> None:
        self.admission = Admission(max_workers, MemoryBudget(None, 100), SessionAffinity())
        self.retired = Totals()
        self.ids = itertools.count(1)
        self.now = 0.0

    def admit(self) -> None:
        while (step := self.admission.next_step(self.now)) is not None:
            if isinstance(step, Grant):
                self.admission.take(step.slot, next(self.ids), self.now)
                step.waiter.future.set_running_or_notify_cancel()
            elif isinstance(step, Start):
                made = slot(next(self.ids), step.waiter.key, "starting")
                made.generation, made.reserved_for = 0, step.waiter
                self.admission.slots[made.slot_id] = made
            elif isinstance(step, StopFor):
                step.slot.state = "stopping"
                step.slot.freed_for = step.waiter
            elif isinstance(step, Refuse):  # no memory budget here: never decided
                raise AssertionError(step)

    def want(self, key: lw.SessionKey) -> None:
        self.admission.enqueue(Waiter(next(self.ids), key, Future(), self.now))

    def give_up(self, index: int) -> None:
        waiters = list(self.admission.waiters)
        if waiters:
            waiter = waiters[index % len(waiters)]
            waiter.future.cancel()
            self.admission.forget_waiter(waiter.waiter_id)

    def ready(self, index: int) -> None:
        starting = [s for s in self.admission.slots.values() if s.state == "starting"]
        if not starting:
            return
        made = starting[index % len(starting)]
        made.generation = made.gate.latest_generation
        made.state = "ready"
        waiter, made.reserved_for = made.reserved_for, None
        if waiter is not None:
            waiter.bound = False
            if made.lease_id is None and made.grantable and self.admission.leave_queue(waiter):
                self.admission.take(made, next(self.ids), self.now)

    def restart(self, index: int) -> None:
        ready = [s for s in self.admission.slots.values() if s.state == "ready"]
        if ready:
            ready[index % len(ready)].state = "starting"

    def release(self, index: int) -> None:
        leases = sorted(self.admission.leases)
        if leases:
            freed = self.admission.give_back(leases[index % len(leases)], self.now)
            if freed is not None and freed.state == "exhausted":
                freed.state = "stopping"

    def exhaust(self, index: int) -> None:
        live = [s for s in self.admission.slots.values() if s.state != "stopping"]
        if live:
            made = live[index % len(live)]
            made.reserved_for = None
            made.state = "stopping" if made.lease_id is None else "exhausted"

    def reap(self, index: int) -> None:
        stopping = [s for s in self.admission.slots.values() if s.state == "stopping"]
        if stopping:
            gone = self.admission.slots.pop(stopping[index % len(stopping)].slot_id)
            if gone.freed_for is not None and gone.freed_for in self.admission.waiters:
                gone.freed_for.reserved = True
            self.retired.add_slot(gone)


ACTIONS = ("want", "give_up", "ready", "restart", "release", "exhaust", "reap")


@settings(max_examples=150, deadline=None)
@given(max_workers=st.integers(1, 4),
       steps=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 7)), max_size=60))
def test_snapshots_counts_agree_after_whatever_admission_decides(max_workers: int,
                                                                steps: list[tuple[str, int]]) -> None:
    pool = Pool(max_workers)
    for action, index in steps:
        if action == "want":
            pool.want(KEYS[index % len(KEYS)])
        else:
            getattr(pool, action)(index)
        pool.now += 1.0
        pool.admit()
        check_counts(snapshot(pool.admission, pool.retired))
