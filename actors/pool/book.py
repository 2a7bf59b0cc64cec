"""The pool's book: its admission state (slots, queue, leases) under one lock, shared by the pool actor (which
decides) and callers' threads (the warm path, when nothing is to decide).

A caller whose key has an idle warm worker while nobody waits gets it in its own thread, and a release with nobody
waiting is booked in place: no actor message on the warm path. Everything else goes to the pool actor. The lock is
held only for bookkeeping: nothing under it waits on a worker.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from leanworker.actors.core import locks
from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.tracing import Tracer
from leanworker.actors.pool.admission import Admission
from leanworker.actors.pool.cooldowns import KeyCooldowns
from leanworker.actors.pool.lease import Lease
from leanworker.actors.pool.records import Slot

ReleaseToActor = Callable[[int], object]


class PoolBook:
    """Admission state, cool-downs and lease ids, and the warm path over them (see the module docstring)."""

    def __init__(self, admission: Admission, cooldowns: KeyCooldowns, tracer: Tracer | None) -> None:
        self.lock = locks.rlock("pool")
        self.admission = admission
        self.cooldowns = cooldowns
        self.tracer = tracer
        self.closing = False
        self._lease_ids = itertools.count(1)
        self._release_to_actor: ReleaseToActor | None = None

    def attach(self, release_to_actor: ReleaseToActor) -> None:
        """Where releases go that need a decision (the pool actor's inbox)."""
        self._release_to_actor = release_to_actor

    def try_grant_warm(self, key: SessionKey) -> Lease | None:
        """Grant an idle warm worker of ``key`` in the caller's thread, if the queue is empty and one exists.

        Everything else (starting, cycling, queueing, cool-downs) is the actor's: None sends the caller there.
        """
        with self.lock:
            admission = self.admission
            if self.closing or self.cooldowns or admission.anyone_waits():
                return None
            slot = admission.idle_slot(key)
            if slot is None:
                return None
            return self.lease(slot, waited_s=0.0, fast=True)

    def lease(self, slot: Slot, waited_s: float, fast: bool = False) -> Lease:
        """Lease ``slot`` (call with the lock held)."""
        lease_id = next(self._lease_ids)
        self.admission.take(slot, lease_id, time.monotonic())
        if self.tracer is not None:
            fields: dict[str, Any] = {"fast": True} if fast else {}
            self.trace("lease_granted", slot, lease_id, waited_s=waited_s, **fields)
        assert slot.handle is not None
        return Lease(lease_id, slot.key, slot.handle.port, slot.generation, self.release)

    def release(self, lease_id: int) -> None:
        """A lease's release, from any thread: booked in place when nobody waits and nothing is to decide, else by
        the actor."""
        with self.lock:
            slot = self.admission.leased_slot(lease_id)
            if slot is not None and slot.state == "ready" and not self.closing and not self.admission.anyone_waits():
                self.give_back(lease_id)
                return
        assert self._release_to_actor is not None
        self._release_to_actor(lease_id)

    def give_back(self, lease_id: int) -> Slot | None:
        """Book the end of lease ``lease_id`` (exactly once; call with the lock held). Its slot, if any."""
        slot = self.admission.give_back(lease_id, time.monotonic())
        if self.tracer is not None:
            self.trace("lease_released", slot, lease_id)
        return slot

    def trace(self, kind: str, slot: Slot | None = None, lease_id: int | None = None, **fields: Any) -> None:
        """Record on the pool's lane, or on ``slot``'s lane (its current generation) when one is given."""
        if self.tracer is not None:
            if slot is None:
                self.tracer.record(kind, "pool", lease_id=lease_id, **fields)
            else:
                self.tracer.record(kind, f"slot{slot.slot_id}", slot.gate.latest_generation or None,
                                   lease_id=lease_id, **fields)
