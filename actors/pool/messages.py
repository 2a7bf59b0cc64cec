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
    lease_id: int


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
class ClosePool:
    reply: Future[None]
