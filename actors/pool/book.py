"""The pool's book: its admission state (slots, queue, leases) under one lock, shared by the pool actor (which
decides) and callers' threads (the warm path, when nothing is to decide).

A caller whose key has an idle warm worker while nobody waits gets it in its own thread, and a release with nobody
waiting is booked in place: no actor message on the warm path. Everything else goes to the pool actor. The lock is
held only for bookkeeping: nothing under it waits on a worker.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import Future
from collections.abc import Callable
from typing import Any

import pykka

from leanworker.actors.core import locks
from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.stats import Histogram
from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.pool.admission import Admission
from leanworker.actors.pool.cooldowns import KeyCooldowns
from leanworker.actors.pool.lease import Lease, wait_booked
from leanworker.actors.pool.messages import ReturnLease
from leanworker.actors.pool.records import Slot

ReleaseToActor = Callable[[int, "Future[None] | None"], bool]


class PoolBook:
    """Admission state, cool-downs and lease ids, and the warm path over them (see the module docstring)."""

    def __init__(self, admission: Admission, cooldowns: KeyCooldowns, tracer: TraceSink | None) -> None:
        self._queue_wait = Histogram()  # every grant's wait in admission but the warm grants' below
        self._warm_grants = 0  # grants in the caller's thread (each waited 0), not yet in the histogram
        self.lock = locks.rlock("pool")
        self.admission = admission
        self.cooldowns = cooldowns
        self.tracer = tracer
        self.closing = False
        self._lease_ids = itertools.count(1)
        self._release_to_actor: ReleaseToActor | None = None

    def queue_wait(self) -> Histogram:
        """Every grant's wait in admission (0 for a warm grant), a copy (call with the lock held). A warm grant is
        only counted as it is made (a histogram's observation costs more, on the warm path) and folded in here."""
        if self._warm_grants:
            self._queue_wait.observe(0.0, self._warm_grants)
            self._warm_grants = 0
        return self._queue_wait.copy()

    def attach(self, release_to_actor: ReleaseToActor) -> None:
        """Where releases go that need a decision (the pool actor's inbox)."""
        self._release_to_actor = release_to_actor

    def try_grant_warm(self, key: SessionKey) -> Lease | None:
        """Grant an idle warm worker of ``key`` in the caller's thread, if the queue is empty and one exists.

        Everything else (starting, cycling, queueing, cool-downs) is the actor's: None sends the caller there.
        """
        with self.lock:
            admission = self.admission
            if self.closing or self.cooldowns.until or (admission.waiters and admission.anyone_waits()):
                return None
            slot = admission.idle_slot(key)
            if slot is None:
                return None
            lease_id = next(self._lease_ids)
            admission.take(slot, lease_id, time.monotonic())
            self._warm_grants += 1
            if self.tracer is not None:
                self.trace("lease_granted", slot, lease_id, waited_s=0.0, fast=True)
            assert slot.handle is not None
            return Lease(lease_id, slot.generation, slot.handle.leases)

    def take(self, slot: Slot) -> int:
        """Book ``slot`` as leased under a new lease id (call with the lock held); its handle comes later."""
        lease_id = next(self._lease_ids)
        self.admission.take(slot, lease_id, time.monotonic())
        return lease_id

    def handle(self, slot_id: int, lease_id: int, generation: int, enqueued_at: float) -> Lease | None:
        """The caller's handle of a lease booked with :meth:`take` (the slot's lease actor hands it over); None when
        the slot is gone meanwhile (the pool shut down)."""
        with self.lock:
            slot = self.admission.slots.get(slot_id)
            if slot is None:
                return None
            waited_s = round(time.monotonic() - enqueued_at, 6)
            self._queue_wait.observe(waited_s)
            if self.tracer is not None:
                self.trace("lease_granted", slot, lease_id, waited_s=waited_s)
            assert slot.handle is not None
            return Lease(lease_id, generation, slot.handle.leases)

    def lease_id_on(self, slot_id: int, generation: int) -> int | None:
        """The id of the lease of slot ``slot_id`` granted on ``generation``, if one is held."""
        with self.lock:
            slot = self.admission.slots.get(slot_id)
            if slot is None or slot.lease_id is None or slot.generation != generation:
                return None
            return slot.lease_id

    def release(self, lease_id: int, wait: bool = True, lease_actor: pykka.ActorRef[Any] | None = None) -> None:
        """A lease's release, from any thread: booked in place when nobody waits and nothing is to decide, else by
        the slot's lease actor (or the pool actor, when the slot is gone), which this waits for unless ``wait`` is
        false (a release by the garbage collector, which may run in any thread, an actor's too: then it is a
        message to ``lease_actor``, the slot's, or to the pool actor if that one has stopped with its slot)."""
        if not wait:  # the garbage collector may run under any lock: only a message, never a lock
            if lease_actor is not None and tell_if_alive(lease_actor, ReturnLease(lease_id)):
                return  # the lease actor returns it to the pool, once
            assert self._release_to_actor is not None
            self._release_to_actor(lease_id, None)
            return
        done = self.return_lease(lease_id)
        if done is not None:
            wait_booked(done)

    def return_lease(self, lease_id: int) -> Future[None] | None:
        """Begin returning lease ``lease_id`` without waiting (for a caller that must never block: an event loop).
        None when it is booked already (in place) or needs no waiting (the pool is closing or gone); else a future
        the actor that books it resolves."""
        with self.lock:
            admission = self.admission
            slot = admission.leased_slot(lease_id)
            if (slot is not None and slot.state == "ready" and not self.closing
                    and not (admission.waiters and admission.anyone_waits())):
                admission.give_back(lease_id, time.monotonic())  # as give_back(), inline: the warm path
                if self.tracer is not None:
                    self.trace("lease_released", slot, lease_id)
                return None
            lease_actor = slot.handle.lease_actor if slot is not None and slot.handle is not None else None
            closing = self.closing
        done: Future[None] | None = None if closing else Future()  # a closing pool books it anyway
        if lease_actor is None or not tell_if_alive(lease_actor, ReturnLease(lease_id, done)):
            assert self._release_to_actor is not None
            if not self._release_to_actor(lease_id, done):
                return None  # the pool is gone: nothing to book
        return done

    def give_back(self, lease_id: int) -> Slot | None:
        """Book the end of lease ``lease_id`` (exactly once; call with the lock held). Its slot, if any."""
        slot = self.admission.give_back(lease_id, time.monotonic())
        if self.tracer is not None:
            self.trace("lease_released", slot, lease_id)
        return slot

    def trace_generation(self, kind: str, slot_id: int, generation: int, lease_id: int | None = None,
                         **fields: Any) -> None:
        """Record on ``slot_id``'s lane, for its generation ``generation``."""
        if self.tracer is not None:
            self.tracer.record(kind, f"slot{slot_id}", generation, lease_id=lease_id, **fields)

    def trace(self, kind: str, slot: Slot | None = None, lease_id: int | None = None, **fields: Any) -> None:
        """Record on the pool's lane, or on ``slot``'s lane (its current generation) when one is given."""
        if self.tracer is not None:
            if slot is None:
                self.tracer.record(kind, "pool", lease_id=lease_id, **fields)
            else:
                self.tracer.record(kind, f"slot{slot.slot_id}", slot.gate.latest_generation or None,
                                   lease_id=lease_id, **fields)
