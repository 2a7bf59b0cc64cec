"""The pool actor's state and messages: waiters, slots, totals, and what callers and slots tell the actor."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pykka

from leanworker.actors.core.config import SessionKey
from leanworker.actors.pool.lease import Lease
from leanworker.actors.slot import RequestPort
from leanworker.errors import LeanWorkerError

# -- messages --------------------------------------------------------------------------------------------------------


@dataclass
class Waiter:
    waiter_id: int
    key: SessionKey
    future: Future[Lease]
    enqueued_at: float
    passed_over: int = 0
    bound: bool = False  # a worker is starting for it
    reserved: bool = False  # a worker stopped for it was reaped: that capacity is its own


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


@dataclass
class Slot:
    slot_id: int
    key: SessionKey
    supervisor: pykka.ActorRef[Any]
    port: RequestPort
    state: str = "starting"  # starting, ready, stopping
    generation: int = 0
    lease_id: int | None = None
    reserved_for: Waiter | None = None
    freed_for: Waiter | None = None  # stopped to make room for this waiter
    last_used: float = field(default_factory=time.monotonic)
    rss: float | None = None
    sampled: bool = False
    started_at: float = field(default_factory=time.monotonic)  # of its current generation, for the open time


class Totals:
    """Counters of slots that are gone, so that pool totals never go down."""

    def __init__(self) -> None:
        self.requests_ok = 0
        self.requests_failed = 0
        self.rows_delivered = 0
        self.backpressure_waits = 0
        self.stale_frames_dropped = 0

    def add_slot(self, slot: Slot) -> None:
        gate = slot.port.gate
        self.requests_ok += gate.requests_ok
        self.requests_failed += gate.requests_failed
        self.rows_delivered += gate.counters.rows_delivered
        self.backpressure_waits += gate.counters.backpressure_waits
        self.stale_frames_dropped += gate.counters.stale_frames_dropped


def key_label(key: SessionKey) -> str:
    return f"{key.capability}|{','.join(key.imports)}"



def fail(waiter: Waiter, error: LeanWorkerError) -> None:
    if waiter.future.set_running_or_notify_cancel():
        waiter.future.set_exception(error)
