"""Admission: which waiter gets which worker, as a pure policy the pool actor consults (docs/semantics.md,
Admission and The queue; tests drive it without processes).

1. A waiter whose key matches an idle warm worker gets it (no second session open).
2. Otherwise the oldest waiter that can use capacity gets it: a new worker if ``max_workers`` and the memory budget
   allow; else an idle worker of another key is cycled for it (least recently used first).
3. Otherwise it waits, first come, first served, with one bounded exception: a later waiter may take an idle warm
   worker of its own key ahead of earlier waiters (cheap, no session open) instead of that worker being cycled
   for an earlier waiter, but no waiter is passed over more than ``BYPASS_LIMIT`` times; after that, idle workers
   are cycled for it first.

Processes are counted from the moment a worker is started until it is reaped, so ``max_workers`` is never
exceeded, not even while one worker is being replaced by another. The policy holds the slots, the queue and the
leases granted; :meth:`Admission.next_step` says what to do next, and the actor does it (grant, start, stop).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from leanworker.actors.core.config import SessionKey
from leanworker.actors.pool.affinity import SessionAffinity
from leanworker.actors.pool.budget import MemoryBudget
from leanworker.actors.pool.records import Slot, Waiter

BYPASS_LIMIT = 4


@dataclass(frozen=True)
class Grant:
    """Lease ``slot`` (idle, warm, of its key) to ``waiter``, who is out of the queue."""

    slot: Slot
    waiter: Waiter


@dataclass(frozen=True)
class Start:
    """Start a worker of ``waiter``'s key for it (it stays queued, bound to that worker)."""

    waiter: Waiter


@dataclass(frozen=True)
class StopFor:
    """Stop idle ``slot`` so that its capacity goes to ``waiter``: ``reason`` is cycle_for_key or evicted_for_memory."""

    slot: Slot
    waiter: Waiter
    reason: str


@dataclass(frozen=True)
class Refuse:
    """``waiter`` cannot be served within the memory budget and no idle worker is left to evict; it is out."""

    waiter: Waiter
    in_use_mib: float
    expected_mib: float


Step = Grant | Start | StopFor | Refuse


class Admission:
    """The pool's slots, wait queue and leases, and the admission rule over them."""

    def __init__(self, max_workers: int, budget: MemoryBudget, affinity: SessionAffinity,
                 bypass_limit: int = BYPASS_LIMIT) -> None:
        self.max_workers = max_workers
        self.budget = budget
        self.affinity = affinity
        self.bypass_limit = bypass_limit
        self.slots: dict[int, Slot] = {}
        self.waiters: deque[Waiter] = deque()
        self.leases: dict[int, int] = {}  # lease id -> slot id
        self.recheck_at: float | None = None  # the earliest moment a waiter may evict (cleared by the recheck)
        self._recheck_due: float | None = None  # a new, earlier recheck_at that no timer waits for yet
        # One mark per waiter that gave up (its future cancelled, in the caller's thread): the queue is pruned only
        # then, not at every look (each Future.cancelled() takes that future's lock: O(N) locks a look, O(N^2) to
        # serve a queue of N). Only this deque is captured by the futures' callbacks, not the policy.
        self._gave_up: deque[int] = deque()

    # -- the queue and leases --------------------------------------------------------------------------------------

    def anyone_waits(self) -> bool:
        return bool(self.waiters) and any(not w.future.cancelled() for w in self.waiters)

    def queue_depth(self) -> int:
        return sum(1 for w in self.waiters if not w.future.cancelled())

    def enqueue(self, waiter: Waiter) -> None:
        self.waiters.append(waiter)
        waiter.future.add_done_callback(partial(_mark_if_cancelled, self._gave_up))

    def forget_waiter(self, waiter_id: int) -> None:
        """A waiter gave up: out of the queue, and no slot stays promised to it."""
        self.waiters = deque(w for w in self.waiters if w.waiter_id != waiter_id)
        for slot in self.slots.values():
            if slot.reserved_for is not None and slot.reserved_for.waiter_id == waiter_id:
                slot.reserved_for = None

    def leave_queue(self, waiter: Waiter) -> bool:
        """Take ``waiter`` out of the queue; False if it was not in it."""
        if waiter in self.waiters:
            self.waiters.remove(waiter)
            return True
        return False

    def take(self, slot: Slot, lease_id: int, now: float) -> None:
        """``slot`` is leased as ``lease_id``."""
        slot.lease_id = lease_id
        slot.last_used = now  # the key's activity too (affinity.waited)
        self.leases[lease_id] = slot.slot_id

    def give_back(self, lease_id: int, now: float) -> Slot | None:
        """Lease ``lease_id`` ends (exactly once: a second call finds nothing). Its slot, if it still exists."""
        slot_id = self.leases.pop(lease_id, None)
        slot = self.slots.get(slot_id) if slot_id is not None else None
        if slot is not None:
            slot.lease_id = None
            slot.last_used = now
        return slot

    def leased_slot(self, lease_id: int) -> Slot | None:
        slot_id = self.leases.get(lease_id)
        return self.slots.get(slot_id) if slot_id is not None else None

    # -- slots ---------------------------------------------------------------------------------------------------

    def idle_slot(self, key: SessionKey) -> Slot | None:
        for slot in self.slots.values():
            if (slot.key is key or slot.key == key) and slot.grantable:
                return slot
        return None

    def idle_slots(self) -> list[Slot]:
        return [s for s in self.slots.values() if s.grantable]

    def slots_of(self, key: SessionKey) -> Iterator[Slot]:
        return (s for s in self.slots.values() if s.key == key)

    # -- the rule ------------------------------------------------------------------------------------------------

    def next_step(self, now: float) -> Step | None:
        """What to do for at most one waiter; None when nothing can be done now (the queue is looked at again on
        the next event, or at ``recheck_at``)."""
        if self._gave_up:  # a waiter gave up since the last look: out of the queue now (a mark made meanwhile: next look)
            self._gave_up.clear()
            self.waiters = deque(w for w in self.waiters if not w.future.cancelled())
        if not self.idle_slots():
            free = self.max_workers - len(self.slots)
            if free <= 0 or free - max(0, self._reserved() - 1) <= 0:
                return None  # nothing to grant, nothing to stop, no capacity for anyone: O(1) per waiter beyond here
        # Counted over the queue as it is now, once, when a waiter first needs them: until then this look changes no
        # waiter's ``reserved`` or ``bound`` (an unbind is followed by a grant), so the counts are the same.
        counts: tuple[int, Counter[SessionKey]] | None = None
        earlier: list[Waiter] = []
        for waiter in self.waiters:
            slot = self.idle_slot(waiter.key)
            if waiter.bound:
                if slot is None:
                    continue
                self._unbind(waiter)  # a warm worker freed up first: take it, the starting one stays for later
            if slot is not None:
                # Only waiters that would evict count as passed over: one waiting for its own key's worker is not.
                needy = [w for w in earlier if self.may_evict_for(w, now)]
                if any(w.passed_over >= self.bypass_limit for w in needy):
                    return None  # a starved waiter comes first: it will cycle this worker
                for w in needy:
                    w.passed_over += 1
                self.waiters.remove(waiter)
                return Grant(slot, waiter)
            if counts is None:
                # keys still wanted by unbound waiters
                counts = self._reserved(), Counter(w.key for w in self.waiters if not w.bound)
            step = self._use_capacity(waiter, now, *counts)
            if step is not None:
                return step
            earlier.append(waiter)
        return None

    def _reserved(self) -> int:
        """The waiters holding a reservation (capacity freed for them)."""
        return sum(1 for w in self.waiters if w.reserved)

    def may_evict_for(self, waiter: Waiter, now: float) -> bool:
        states = {s.state for s in self.slots_of(waiter.key)}
        return self.affinity.may_evict_for(waiter.key, self._waited(waiter, now), bool(states & {"ready", "starting"}),
                                           "starting" in states)

    def _waited(self, waiter: Waiter, now: float) -> float:
        used = [s.last_used for s in self.slots_of(waiter.key)]
        return self.affinity.waited(waiter.key, waiter.enqueued_at, now, used)

    def _unbind(self, waiter: Waiter) -> None:
        waiter.bound = False
        for slot in self.slots.values():
            if slot.reserved_for is waiter:
                slot.reserved_for = None

    def _awaiting(self, waiter: Waiter) -> bool:
        """Capacity is being freed for ``waiter``: a worker stopping for it, or one reaped for it."""
        return waiter.reserved or any(s.freed_for is waiter for s in self.slots.values())

    def _free_capacity(self, waiter: Waiter, reserved: int) -> int:
        """Processes ``waiter`` may start: capacity not in use and not reserved for another waiter (``reserved``:
        the waiters holding a reservation)."""
        return self.max_workers - len(self.slots) - (reserved - 1 if waiter.reserved else reserved)

    def _use_capacity(self, waiter: Waiter, now: float, reserved: int, wanted: Counter[SessionKey]) -> Step | None:
        """``waiter`` (unbound, no idle worker of its key) takes capacity if it can. ``wanted``: how many unbound
        waiters want each key, this one included."""
        if self._free_capacity(waiter, reserved) > 0:
            if not self.budget.allows(waiter.key, self.slots.values()):
                return self._make_room_in_memory(waiter)
            waiter.reserved = False
            waiter.bound = True
            return Start(waiter)
        if self._awaiting(waiter):
            return None
        if not self.may_evict_for(waiter, now):
            self._recheck_later(waiter, now)  # its own key's worker will be free (or it waits long enough to evict)
            return None
        def wanted_later(key: SessionKey) -> bool:  # by another unbound waiter
            return wanted[key] - (key == waiter.key) > 0

        victims = [s for s in self.idle_slots()
                   if not wanted_later(s.key) or waiter.passed_over >= self.bypass_limit]
        if not victims:
            return None
        victim = min(victims, key=lambda s: s.last_used)
        victim.freed_for = waiter
        return StopFor(victim, waiter, "cycle_for_key")

    def _make_room_in_memory(self, waiter: Waiter) -> Step | None:
        idle = sorted(self.idle_slots(), key=lambda s: s.last_used)
        if idle:
            idle[0].freed_for = waiter
            return StopFor(idle[0], waiter, "evicted_for_memory")
        if any(s.state == "stopping" for s in self.slots.values()):
            return None  # memory is already being freed; look again when it is
        self.waiters.remove(waiter)
        return Refuse(waiter, self.budget.in_use(self.slots.values()), self.budget.expected(waiter.key))

    def _recheck_later(self, waiter: Waiter, now: float) -> None:
        """Note when ``waiter`` may evict (the earliest such moment): the actor looks at the queue again then."""
        if any(s.state == "starting" for s in self.slots_of(waiter.key)):
            return  # its key's worker is starting: its "ready" looks at the queue again
        delay = self.affinity.evictable_in(waiter.key, self._waited(waiter, now))
        if delay is None:
            return
        due = now + delay + 0.001
        if self.recheck_at is None or due < self.recheck_at:
            self.recheck_at = self._recheck_due = due

    def new_recheck(self) -> float | None:
        """A moment to look at the queue again that no timer covers yet (once), or None."""
        due, self._recheck_due = self._recheck_due, None
        return due

    def rechecked(self) -> None:
        """The timer for :attr:`recheck_at` fired."""
        self.recheck_at = None


def _mark_if_cancelled(gave_up: deque[int], future: Future[Any]) -> None:
    """A waiter's future is done: mark a give-up (a cancel, in the caller's thread) for the next look."""
    if future.cancelled():
        gave_up.append(1)
