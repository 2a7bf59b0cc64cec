"""What callers and slots tell the pool actor. Plain frozen dataclasses; the actor dispatches on their type."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from leanworker.actors.pool.records import Waiter


@dataclass(frozen=True)
class Acquire:
    waiter: Waiter


@dataclass(frozen=True)
class Release:
    """The capacity of lease ``lease_id`` goes back; ``done`` is resolved once the pool has booked it."""

    lease_id: int
    done: Future[None] | None = None


@dataclass(frozen=True)
class Recheck:
    """Look at the queue again (a waiter's patience for its own key's worker ran out)."""


@dataclass(frozen=True)
class Abandon:
    waiter_id: int


@dataclass(frozen=True)
class SlotEvent:
    slot_id: int
    event: str
    payload: Any


@dataclass(frozen=True)
class SlotStopped:
    slot_id: int


@dataclass(frozen=True)
class TakePoolSnapshot:
    pass


@dataclass(frozen=True)
class TakePoolStats:
    pass


@dataclass(frozen=True)
class ClosePool:
    reply: Future[None]


# -- to and from a slot's lease actor ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantTo:
    """Pool -> lease actor: hand ``waiter`` the slot's lease ``lease_id``, granted on ``generation``."""

    waiter: Waiter
    lease_id: int
    generation: int


@dataclass(frozen=True)
class ReturnLease:
    """Lease handle -> lease actor: the holder released ``lease_id`` and the pool has something to decide;
    ``done`` is resolved once the pool has booked it (so a snapshot taken after ``release()`` shows it)."""

    lease_id: int
    done: Future[None] | None = None


@dataclass(frozen=True)
class GenerationEnded:
    """Supervisor -> lease actor: ``generation`` of the slot ended (``reason``); a lease granted on it is stale."""

    generation: int
    reason: str
