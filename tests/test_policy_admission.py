"""The pool's decisions as pure policies, without processes (docs/semantics.md, The pool: Admission, The queue,
Memory, Restart intensity per key). Each test is named after the rule it checks; the end-to-end tests over real
worker processes are in test_pool.py and test_pool_affinity.py."""

from __future__ import annotations

import itertools
from concurrent.futures import Future

import leanworker as lw
from leanworker.actors.pool.admission import BYPASS_LIMIT, Admission, Grant, Refuse, Start, StopFor
from leanworker.actors.pool.affinity import MIN_PATIENCE, SessionAffinity
from leanworker.actors.pool.budget import MemoryBudget
from leanworker.actors.pool.cooldowns import KeyCooldowns
from leanworker.actors.pool.records import Slot, Waiter
from leanworker.actors.slot.endings import exhausted_error

from fake_gate import Gate

A = lw.SessionKey("cap:a")
B = lw.SessionKey("cap:b")
C = lw.SessionKey("cap:c")


class Book:
    """An admission policy with slots and waiters made by hand."""

    def __init__(self, max_workers: int = 2, budget_mib: int | None = None, estimate_mib: int = 100) -> None:
        self.admission = Admission(max_workers, MemoryBudget(budget_mib, estimate_mib), SessionAffinity())
        self._ids = itertools.count(1)
        self.now = 100.0

    def slot(self, key: lw.SessionKey, state: str = "ready", last_used: float = 0.0, rss: float | None = None,
             leased: bool = False) -> Slot:
        slot = Slot(next(self._ids), key, Gate(), state=state, generation=1, last_used=last_used, rss=rss,
                    sampled=rss is not None)
        if leased:
            slot.lease_id = 1000 + slot.slot_id
            self.admission.leases[slot.lease_id] = slot.slot_id
        self.admission.slots[slot.slot_id] = slot
        return slot

    def waiter(self, key: lw.SessionKey, waited: float = 0.0) -> Waiter:
        waiter = Waiter(next(self._ids), key, Future(), self.now - waited)
        self.admission.enqueue(waiter)
        return waiter

    def step(self) -> Grant | Start | StopFor | Refuse | None:
        return self.admission.next_step(self.now)


def test_warm_reuse_an_idle_worker_of_the_same_key_is_granted_as_it_is() -> None:
    book = Book()
    slot = book.slot(A)
    waiter = book.waiter(A)
    assert book.step() == Grant(slot, waiter)
    assert not book.admission.waiters


def test_a_new_worker_starts_while_fewer_than_max_workers_processes_exist() -> None:
    book = Book(max_workers=2)
    book.slot(B, leased=True)
    waiter = book.waiter(A)
    assert book.step() == Start(waiter)
    assert waiter.bound and list(book.admission.waiters) == [waiter]


def test_processes_count_from_spawn_to_reap_so_max_workers_is_never_exceeded() -> None:
    book = Book(max_workers=2)
    book.slot(B, state="starting")
    book.slot(C, state="stopping")
    book.waiter(A)
    assert book.step() is None


def test_cycling_an_idle_worker_of_another_key_least_recently_used_first() -> None:
    book = Book(max_workers=2)
    book.slot(B, last_used=5.0)
    older = book.slot(C, last_used=1.0)
    waiter = book.waiter(A)
    assert book.step() == StopFor(older, waiter, "cycle_for_key")
    assert older.freed_for is waiter
    assert book.step() is None, "capacity being freed for a waiter is not freed twice"


def test_the_capacity_freed_by_cycling_is_reserved_for_the_waiter_it_was_freed_for() -> None:
    book = Book(max_workers=1)
    waiter_a = book.waiter(A)
    waiter_b = book.waiter(B)
    waiter_a.reserved = True  # its victim was reaped
    assert book.step() == Start(waiter_a)
    assert not waiter_b.bound


def test_session_affinity_a_waiter_whose_key_has_a_worker_starting_waits_for_it() -> None:
    book = Book(max_workers=2)
    book.slot(A, state="starting")
    book.slot(B)
    book.waiter(A, waited=60.0)
    assert book.step() is None


def test_session_affinity_a_waiter_whose_keys_workers_are_busy_waits_for_its_patience_then_evicts() -> None:
    book = Book(max_workers=2)
    book.admission.affinity.record_open(A, 2.0)
    book.slot(A, leased=True, last_used=book.now)
    idle_b = book.slot(B)
    waiter = book.waiter(A)
    assert book.step() is None
    assert book.admission.new_recheck() == book.now + 2.0 + 0.001, "a timer looks again when patience runs out"
    assert book.admission.new_recheck() is None, "one timer per moment"
    book.now += 2.5
    assert book.step() == StopFor(idle_b, waiter, "cycle_for_key")


def test_session_affinity_a_waiter_whose_key_has_no_live_worker_may_evict_at_once() -> None:
    affinity = SessionAffinity()
    assert affinity.may_evict_for(A, 0.0, own_key_alive=False, own_key_starting=False)
    assert not affinity.may_evict_for(A, 10.0, own_key_alive=True, own_key_starting=True)
    assert not affinity.may_evict_for(A, 10.0, own_key_alive=True, own_key_starting=False), "no open measured"
    affinity.record_open(A, 0.0)
    assert affinity.patience(A) == MIN_PATIENCE
    assert affinity.may_evict_for(A, MIN_PATIENCE, own_key_alive=True, own_key_starting=False)


def test_a_bound_waiter_takes_an_idle_warm_worker_that_frees_up_first() -> None:
    book = Book(max_workers=3)
    starting = book.slot(A, state="starting")
    waiter = book.waiter(A)
    waiter.bound = True
    starting.reserved_for = waiter
    assert book.step() is None
    warm = book.slot(A)
    assert book.step() == Grant(warm, waiter)
    assert starting.reserved_for is None and not waiter.bound


def test_the_queue_a_younger_waiter_may_take_its_keys_warm_worker_but_at_most_bypass_limit_times() -> None:
    book = Book(max_workers=1)
    book.slot(A, leased=True)  # A's worker is busy: the waiter for B may evict it when it is idle
    older = book.waiter(B)
    for _ in range(BYPASS_LIMIT):
        slot = next(iter(book.admission.slots.values()))
        book.admission.give_back(slot.lease_id or 0, book.now)
        younger = book.waiter(A)
        assert book.step() == Grant(slot, younger), "the younger waiter takes its own key's warm worker"
        book.admission.take(slot, 2000 + older.passed_over, book.now)
    assert older.passed_over == BYPASS_LIMIT
    slot = next(iter(book.admission.slots.values()))
    book.admission.give_back(slot.lease_id or 0, book.now)
    book.waiter(A)
    assert book.step() == StopFor(slot, older, "cycle_for_key"), "past the bound, the starved waiter comes first"


def test_a_waiter_that_gave_up_is_never_granted() -> None:
    book = Book()
    book.slot(A)
    waiter = book.waiter(A)
    assert waiter.future.cancel()
    assert book.step() is None
    assert not book.admission.waiters


class CountedFuture(Future[lw.Lease]):
    """A future that counts the looks at whether it was cancelled (each takes its lock)."""

    looks = 0

    def cancelled(self) -> bool:
        CountedFuture.looks += 1
        return super().cancelled()


def test_the_queue_is_looked_over_for_waiters_that_gave_up_only_after_one_did() -> None:
    """The queue holds waiters that gave up only until the next look after they did; a look with none costs no
    look at each waiter's future (that was O(N) per pool event, O(N^2) to serve a queue of N)."""
    book = Book(max_workers=2)
    book.slot(A, leased=True)
    book.slot(A, leased=True)
    waiters = [Waiter(n, A, CountedFuture(), book.now) for n in range(1000)]
    for waiter in waiters:
        book.admission.enqueue(waiter)
    CountedFuture.looks = 0
    for _ in range(100):
        assert book.step() is None
    assert CountedFuture.looks == 0
    assert waiters[500].future.cancel()
    assert book.step() is None
    assert waiters[500] not in book.admission.waiters and len(book.admission.waiters) == 999
    looks = CountedFuture.looks
    assert book.step() is None and CountedFuture.looks == looks


def test_leases_capacity_returns_exactly_once() -> None:
    book = Book()
    slot = book.slot(A)
    book.admission.take(slot, 7, book.now)
    assert book.admission.give_back(7, book.now) is slot
    assert book.admission.give_back(7, book.now) is None
    assert slot.lease_id is None and not book.admission.leases


def test_memory_the_budget_evicts_idle_workers_least_recently_used_first_then_refuses() -> None:
    book = Book(max_workers=4, budget_mib=250)
    busy = book.slot(B, leased=True, rss=100.0)
    idle = book.slot(C, rss=100.0, last_used=1.0)
    waiter = book.waiter(A)
    assert book.step() == StopFor(idle, waiter, "evicted_for_memory")
    idle.state = "stopping"
    assert book.step() is None, "memory is being freed: wait for the reap"
    del book.admission.slots[idle.slot_id]
    step = book.step()
    assert step == Start(waiter), "100 in use + 100 expected fits in 250"
    other = book.waiter(C)
    book.slot(A, state="starting", rss=10.0)  # reserves its expectation (100) while it starts
    refused = book.step()
    assert isinstance(refused, Refuse) and refused.waiter is other
    assert refused.in_use_mib == busy.rss + 100.0


def test_memory_a_pool_with_no_worker_alive_may_always_start_one() -> None:
    assert MemoryBudget(10, 500).allows(A, [])


def test_memory_while_any_sample_is_unavailable_no_budget_decision_is_taken() -> None:
    book = Book(max_workers=4, budget_mib=150)
    book.slot(B, leased=True, rss=140.0)
    unread = book.slot(C, leased=True)
    unread.sampled, unread.rss = True, None  # sampled, but the value could not be read
    waiter = book.waiter(A)
    assert book.step() == Start(waiter)


def test_memory_a_starting_worker_reserves_its_keys_expectation() -> None:
    budget = MemoryBudget(300, 100)
    budget.observe(A, 180.0)
    starting = Slot(1, A, Gate(), state="starting", rss=20.0, sampled=True)
    assert budget.held(starting) == 180.0
    assert budget.expected(B) == 180.0, "an unseen key is expected to hold the most seen for any key"
    assert not budget.allows(B, [starting])


def test_restart_intensity_per_key_past_max_restarts_the_key_cools_down() -> None:
    cooldowns = KeyCooldowns(lw.RestartPolicy(max_restarts=2, restart_window=10.0))
    assert cooldowns.restarted(A, 0.0) is None
    assert cooldowns.restarted(A, 1.0) is None
    error = cooldowns.restarted(A, 2.0)
    assert isinstance(error, lw.RestartLimitExceeded) and error.retry_after == 8.0
    assert cooldowns.restarted(B, 2.0) is None, "other keys are not affected"
    cooldowns.cool_down(A, 8.0, error, 2.0)
    refusal = cooldowns.refusal(A, 5.0)
    assert isinstance(refusal, lw.RestartLimitExceeded) and refusal.retry_after == 5.0
    assert cooldowns.refusal(B, 5.0) is None
    assert cooldowns.refusal(A, 10.5) is None and not cooldowns, "an expired cool-down is forgotten"


def test_restart_intensity_per_key_a_refusal_says_its_own_seconds_left_not_those_the_exhausted_slot_said() -> None:
    cooldowns = KeyCooldowns(lw.RestartPolicy(max_restarts=1, restart_window=20.0))
    cooldowns.cool_down(A, 17.0, exhausted_error("slot1", 2, 20.0, 1, 17.0), 3.0)
    refusal = cooldowns.refusal(A, 6.0)
    assert isinstance(refusal, lw.RestartLimitExceeded) and refusal.retry_after == 14.0
    assert str(refusal) == "worker slot1 restarted 2 times in 20 s (limit 1) (cool-down: try again in 14.0 s)"
