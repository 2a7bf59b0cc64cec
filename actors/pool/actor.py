"""The PoolActor: worker slots, admission, the wait queue, the memory budget (``lw.WorkerPool``, the public face,
is in workerpool.py; the state and messages in state.py; what slots report, per-key cool-downs and the snapshot in
events.py; affinity in affinity.py).

Admission (docs/semantics.md states the same policy):

1. A waiter whose key matches an idle warm worker gets it (no second session open).
2. Otherwise the oldest waiter that can use capacity gets it: a new worker if ``max_workers`` and the memory budget
   allow; else an idle worker of another key is cycled for it (least recently used first).
3. Otherwise it waits, first come, first served, with one bounded exception: a later waiter may take an idle warm
   worker of its own key ahead of earlier waiters (cheap, no session open) instead of that worker being cycled
   for an earlier waiter, but no waiter is passed over more than ``BYPASS_LIMIT`` times; after that, idle workers
   are cycled for it first.

Processes are counted from the moment a worker is started until it is reaped, so ``max_workers`` is never
exceeded, not even while one worker is being replaced by another. A waiter that gives up (timeout) cancels its
future; the pool never grants to a cancelled future, so no lease is ever granted that nobody holds.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pykka

from leanworker.actors.core.config import PoolConfig, SessionKey
from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.results import ShutdownReport
from leanworker.actors.core.timers import Scheduler
from leanworker.actors.core.tracing import Tracer
from leanworker.actors.pool.affinity import SessionAffinity
from leanworker.actors.pool.budget import MemoryBudget
from leanworker.actors.pool.events import on_slot_event, on_slot_stopped, pool_snapshot
from leanworker.actors.pool.lease import Lease
from leanworker.actors.pool.state import (
    Abandon,
    Acquire,
    ClosePool,
    Recheck,
    Release,
    Slot,
    SlotEvent,
    SlotStopped,
    TakePoolSnapshot,
    Totals,
    Waiter,
    fail,
    key_label,
)
from leanworker.actors.slot import MemorySampler, RequestPort, RestartIntensity, Shutdown, SupervisorActor
from leanworker.errors import LeanWorkerError, MemoryBudgetExceeded, PoolClosed, RestartLimitExceeded

log = logging.getLogger("leanworker")

BYPASS_LIMIT = 4
_slot_ids = itertools.count(1)  # unique in the process, so that every slot has its own timeline lane


class Shared:
    """Hands the actor object to the facade, for the fast path (the actor object is built in the caller's thread)."""

    actor: PoolActor


class PoolActor(pykka.ThreadingActor):
    """Owns the worker slots, admission, the wait queue, the memory budget and snapshots."""

    use_daemon_thread = True

    def __init__(self, config: PoolConfig, scheduler: Scheduler, sampler: MemorySampler, shared: Shared) -> None:
        super().__init__()
        self.config = config
        self.scheduler = scheduler
        self.sampler = sampler
        self.tracer: Tracer | None = config.trace
        self.slots: dict[int, Slot] = {}
        self.waiters: deque[Waiter] = deque()
        self.leases: dict[int, int] = {}
        self.cooldowns: dict[SessionKey, tuple[float, LeanWorkerError]] = {}
        self.budget = MemoryBudget(config.max_total_rss_mib, config.worker_rss_estimate_mib)
        self.key_restarts: dict[SessionKey, RestartIntensity] = {}
        self.retired = Totals()
        self.restarts: Counter[str] = Counter()
        self.sessions_opened = 0
        self.affinity = SessionAffinity()
        self._recheck_at: float | None = None  # when a timer will look at the queue again
        self.closing: Future[None] | None = None
        self._lease_ids = itertools.count(1)
        # Guards the admission state (slots, waiters, leases) between the actor and callers' fast paths. Held only
        # for bookkeeping: nothing under it waits on a worker.
        self.lock = threading.RLock()
        shared.actor = self
        self._handlers: dict[type, Callable[[Any], Any]] = {
            Acquire: self._on_acquire, Release: self._on_release, Abandon: self._on_abandon,
            SlotEvent: lambda m: on_slot_event(self, m), SlotStopped: lambda m: on_slot_stopped(self, m),
            Recheck: self._on_recheck, ClosePool: self._on_close,
        }

    def on_receive(self, message: Any) -> Any:
        if self.tracer is not None:
            self.tracer.record("message", "pool", message=type(message).__name__)
        with self.lock:
            if isinstance(message, TakePoolSnapshot):
                return pool_snapshot(self)
            try:
                return self._handlers[type(message)](message)
            except Exception:  # in a tell, pykka would stop the actor: log the bug and keep admitting
                log.exception("pool: handling %s failed", type(message).__name__)
                return None

    # -- the fast path: callers' threads, under the lock, only when nobody waits --------------------------------------

    def try_grant_warm(self, key: SessionKey) -> Lease | None:
        """Grant an idle warm worker of ``key`` in the caller's thread, if the queue is empty and one exists.

        Everything else (starting, cycling, queueing, cool-downs) is the actor's: None sends the caller there.
        """
        with self.lock:
            if self.closing is not None or self.cooldowns or self._anyone_waits():
                return None
            slot = self._idle_slot(key)
            if slot is None:
                return None
            lease_id = self._take(slot)
            if self.tracer is not None:
                self._trace("lease_granted", slot, lease_id, waited_s=0.0, fast=True)
            return Lease(lease_id, slot.key, slot.port, slot.generation, self.release_lease)

    def release_lease(self, lease_id: int) -> None:
        """A lease's release, from any thread: in place when nobody waits and nothing is to decide, else by the actor."""
        with self.lock:
            slot_id = self.leases.get(lease_id)
            slot = self.slots.get(slot_id) if slot_id is not None else None
            if slot is not None and slot.state == "ready" and self.closing is None and not self._anyone_waits():
                del self.leases[lease_id]
                self._give_back(slot, lease_id)
                return
        self._tell_self(Release(lease_id))

    def _anyone_waits(self) -> bool:
        return bool(self.waiters) and any(not w.future.cancelled() for w in self.waiters)

    def _take(self, slot: Slot) -> int:
        lease_id = next(self._lease_ids)
        slot.lease_id = lease_id
        slot.last_used = time.monotonic()  # the key's activity too (_waited)
        self.leases[lease_id] = slot.slot_id
        return lease_id

    def _give_back(self, slot: Slot, lease_id: int) -> None:
        if self.tracer is not None:
            self._trace("lease_released", slot, lease_id)
        slot.lease_id = None
        slot.last_used = time.monotonic()

    def _trace(self, kind: str, slot: Slot | None = None, lease_id: int | None = None, **fields: Any) -> None:
        """Record on the pool's lane, or on ``slot``'s lane (its current generation) when one is given."""
        if self.tracer is not None:
            if slot is None:
                self.tracer.record(kind, "pool", lease_id=lease_id, **fields)
            else:
                self.tracer.record(kind, f"slot{slot.slot_id}", slot.port.gate.latest_generation or None,
                                   lease_id=lease_id, **fields)

    def _tell_self(self, message: Any) -> None:
        tell_if_alive(self.actor_ref, message)

    # -- requests from callers ---------------------------------------------------------------------------------------

    def _on_acquire(self, message: Acquire) -> None:
        waiter = message.waiter
        if self.closing is not None:
            fail(waiter, PoolClosed("the pool is shut down"))
            return
        cooldown = self.cooldowns.get(waiter.key)
        if cooldown is not None:
            until, error = cooldown
            remaining = until - time.monotonic()
            if remaining > 0:
                self._trace("admission_refused", reason="cooldown")
                fail(waiter, RestartLimitExceeded(f"{error} (cool-down: try again in {remaining:.1f} s)",
                                                   retry_after=remaining))
                return
            del self.cooldowns[waiter.key]
        self.waiters.append(waiter)
        self._trace("queued", waiter=waiter.waiter_id, key=key_label(waiter.key), depth=len(self.waiters))
        self._admit()

    def _on_release(self, message: Release) -> None:
        slot_id = self.leases.pop(message.lease_id, None)
        slot = self.slots.get(slot_id) if slot_id is not None else None
        if slot is None:
            self._trace("lease_released", lease_id=message.lease_id)
            return
        self._give_back(slot, message.lease_id)
        if slot.state == "exhausted":
            self._stop_slot(slot, "exhausted")
        self._admit()

    def _on_abandon(self, message: Abandon) -> None:
        self.waiters = deque(w for w in self.waiters if w.waiter_id != message.waiter_id)
        for slot in self.slots.values():
            if slot.reserved_for is not None and slot.reserved_for.waiter_id == message.waiter_id:
                slot.reserved_for = None
        self._admit()

    # -- admission ---------------------------------------------------------------------------------------------------

    def _admit(self) -> None:
        if self.closing is not None:
            return
        self.waiters = deque(w for w in self.waiters if not w.future.cancelled())
        while self._admit_one():
            pass

    def _admit_one(self) -> bool:
        """Serve at most one waiter; True when something changed (so the queue is looked at again)."""
        earlier: list[Waiter] = []
        now = time.monotonic()
        for waiter in self.waiters:
            slot = self._idle_slot(waiter.key)
            if waiter.bound:
                if slot is None:
                    continue
                self._unbind(waiter)  # a warm worker freed up first: take it, the starting one stays for later
            if slot is not None:
                # Only waiters that would evict count as passed over: one waiting for its own key's worker is not.
                needy = [w for w in earlier if self._may_evict_for(w, now)]
                if any(w.passed_over >= BYPASS_LIMIT for w in needy):
                    return False  # a starved waiter comes first: it will cycle this worker
                for w in needy:
                    w.passed_over += 1
                self.waiters.remove(waiter)
                self._grant(slot, waiter)
                return True
            if self._use_capacity(waiter, now):
                return True
            earlier.append(waiter)
        return False

    def _unbind(self, waiter: Waiter) -> None:
        waiter.bound = False
        for slot in self.slots.values():
            if slot.reserved_for is waiter:
                slot.reserved_for = None

    def _awaiting(self, waiter: Waiter) -> bool:
        """Capacity is being freed for ``waiter``: a worker stopping for it, or one reaped for it."""
        return waiter.reserved or any(s.freed_for is waiter for s in self.slots.values())

    def _free_capacity(self, waiter: Waiter) -> int:
        """Processes ``waiter`` may start: capacity not in use and not reserved for another waiter."""
        reserved = sum(1 for w in self.waiters if w.reserved and w is not waiter)
        return self.config.max_workers - len(self.slots) - reserved

    @staticmethod
    def _grantable(slot: Slot) -> bool:
        # The gate can close before the pool hears why (a request budget spent, a cycle begun): a closed gate
        # means the generation is ending, so the slot waits for its next "ready".
        gate = slot.port.gate
        return (slot.state == "ready" and slot.lease_id is None and slot.reserved_for is None and gate.is_open
                and gate.latest_generation == slot.generation)

    def _idle_slot(self, key: SessionKey) -> Slot | None:
        for slot in self.slots.values():
            if (slot.key is key or slot.key == key) and self._grantable(slot):
                return slot
        return None

    def _may_evict_for(self, waiter: Waiter, now: float) -> bool:
        states = {s.state for s in self.slots.values() if s.key == waiter.key}
        waited = self._waited(waiter, now)
        return self.affinity.may_evict_for(waiter.key, waited, bool(states & {"ready", "starting"}),
                                           "starting" in states)

    def _waited(self, waiter: Waiter, now: float) -> float:
        used = [s.last_used for s in self.slots.values() if s.key == waiter.key]
        return self.affinity.waited(waiter.key, waiter.enqueued_at, now, used)

    def _recheck_later(self, waiter: Waiter, now: float) -> None:
        """Look at the queue again when ``waiter`` may evict (one timer for the earliest such moment)."""
        if any(s.key == waiter.key and s.state == "starting" for s in self.slots.values()):
            return  # its key's worker is starting: its "ready" looks at the queue again
        delay = self.affinity.evictable_in(waiter.key, self._waited(waiter, now))
        if delay is None:
            return
        due = now + delay + 0.001
        if self._recheck_at is None or due < self._recheck_at:
            self._recheck_at = due
            self.scheduler.call_later(due - now, lambda: self._tell_self(Recheck()))

    def _on_recheck(self, message: Recheck) -> None:
        self._recheck_at = None
        self._admit()

    def _use_capacity(self, waiter: Waiter, now: float) -> bool:
        if self._free_capacity(waiter) > 0:
            if not self.budget.allows(waiter.key, self.slots.values()):
                return self._make_room_in_memory(waiter)
            waiter.reserved = False
            waiter.bound = True
            self._start_slot(waiter.key, waiter)
            return True
        if self._awaiting(waiter):
            return False
        if not self._may_evict_for(waiter, now):
            self._recheck_later(waiter, now)  # its own key's worker will be free (or it waits long enough to evict)
            return False
        wanted_later = {w.key for w in self.waiters if w is not waiter and not w.bound}
        victims = [s for s in self._idle_slots() if s.key not in wanted_later or waiter.passed_over >= BYPASS_LIMIT]
        if not victims:
            return False
        victim = min(victims, key=lambda s: s.last_used)
        self._trace("cycle_for_key", victim, key=key_label(waiter.key))
        victim.freed_for = waiter
        self._stop_slot(victim, "cycle_for_key")
        return True

    def _idle_slots(self) -> list[Slot]:
        return [s for s in self.slots.values() if self._grantable(s)]

    def _make_room_in_memory(self, waiter: Waiter) -> bool:
        idle = sorted(self._idle_slots(), key=lambda s: s.last_used)
        if idle:
            self._trace("evict_for_memory", idle[0])
            idle[0].freed_for = waiter
            self._stop_slot(idle[0], "evicted_for_memory")
            return True
        if any(s.state == "stopping" for s in self.slots.values()):
            return False  # memory is already being freed; look again when it is
        self.waiters.remove(waiter)
        total = self.budget.in_use(self.slots.values())
        self._trace("admission_refused", reason="memory_budget")
        fail(waiter, MemoryBudgetExceeded(
            f"starting a worker for {waiter.key.capability} would pass the pool's memory budget of "
            f"{self.config.max_total_rss_mib} MiB ({total:.0f} MiB in use or reserved, about "
            f"{self.budget.expected(waiter.key):.0f} MiB expected for this key; no idle worker to evict)"))
        return True

    def _grant(self, slot: Slot, waiter: Waiter) -> bool:
        if not waiter.future.set_running_or_notify_cancel():
            return False  # the caller gave up: nobody would release this lease
        lease_id = self._take(slot)
        self._trace("lease_granted", slot, lease_id, waited_s=round(time.monotonic() - waiter.enqueued_at, 6))
        waiter.future.set_result(Lease(lease_id, slot.key, slot.port, slot.generation, self.release_lease))
        return True

    def _start_slot(self, key: SessionKey, waiter: Waiter | None) -> None:
        slot_id = next(_slot_ids)
        pool = self.actor_ref

        def listener(event: str, payload: Any) -> None:
            tell_if_alive(pool, SlotEvent(slot_id, event, payload))

        supervisor = SupervisorActor.start(key, self.config.worker, self.config.restart, self.tracer,
                                           self.scheduler, self.sampler, f"slot{slot_id}", listener, PoolClosed)
        gate = supervisor.proxy().gate.get()
        slot = Slot(slot_id, key, supervisor, RequestPort(supervisor, gate, self.config.worker),
                     reserved_for=waiter)
        self.slots[slot_id] = slot
        self._trace("slot_start", slot, key=key_label(key))

    def _stop_slot(self, slot: Slot, reason: str) -> None:
        if slot.state == "stopping":
            return
        slot.state = "stopping"
        reply: Future[ShutdownReport] = Future()
        pool, slot_id = self.actor_ref, slot.slot_id
        reply.add_done_callback(lambda _: tell_if_alive(pool, SlotStopped(slot_id)))
        self._trace("slot_stop", slot, reason=reason)
        if not tell_if_alive(slot.supervisor, Shutdown(reply)):
            self._tell_self(SlotStopped(slot_id))

    # -- shutdown ------------------------------------------------------------------------------------------------

    def _on_close(self, message: ClosePool) -> None:
        if self.closing is not None:
            self.closing.add_done_callback(lambda _: message.reply.set_result(None))
            return
        self.closing = message.reply
        while self.waiters:
            fail(self.waiters.popleft(), PoolClosed("the pool was shut down while this lease waited"))
        if not self.slots:
            message.reply.set_result(None)
            return
        for slot in list(self.slots.values()):
            self._stop_slot(slot, "pool_shutdown")  # a slot already stopping reports SlotStopped on its own
