"""What the pool knows of each worker slot and each waiter: plain records that the admission policy reads and
marks, and the actor keeps (no threads, no processes)."""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from leanworker.actors.core.config import SessionKey
from leanworker.actors.pool.slot_leases import SlotLeases
from leanworker.actors.slot import RequestPort
from leanworker.errors import LeanWorkerError

if TYPE_CHECKING:
    from leanworker.actors.pool.lease import Lease


class GateView(Protocol):
    """What admission reads of a slot's admission gate: open for requests, and its newest generation."""

    @property
    def is_open(self) -> bool: ...

    @property
    def latest_generation(self) -> int: ...

    def open_on(self, generation: int) -> bool:
        """Open for requests, on ``generation`` (its newest): ``is_open and latest_generation == generation``."""


@dataclass
class Waiter:
    """A caller queued for a lease of ``key``."""

    waiter_id: int
    key: SessionKey
    future: Future[Lease]
    enqueued_at: float
    passed_over: int = 0
    bound: bool = False  # a worker is starting for it
    reserved: bool = False  # a worker stopped for it was reaped: that capacity is its own

    def fail(self, error: LeanWorkerError) -> None:
        """End the wait with ``error`` (unless the caller gave up already)."""
        if self.future.set_running_or_notify_cancel():
            self.future.set_exception(error)

    def hand(self, lease: Lease) -> None:
        """End the wait with ``lease`` (after ``set_running_or_notify_cancel``), keeping no reference to it here: a
        message that carried this waiter may outlive the grant, and a lease must be collectable once its holder
        drops it (an unreleased lease is returned by the garbage collector)."""
        future, self.future = self.future, _HANDED_OVER
        future.set_result(lease)


@dataclass(frozen=True)
class SlotHandle:
    """How the pool reaches a slot: its supervisor actor, the port its leases send requests through, the lease
    actor that owns its lease's lifecycle, and what every lease granted on it shares."""

    supervisor: pykka.ActorRef[Any]
    port: RequestPort
    lease_actor: pykka.ActorRef[Any]
    leases: SlotLeases


@dataclass
class Slot:
    """One worker slot as the pool sees it; ``handle`` is None where a policy is driven without processes, and from
    the slot's booking (under the pool's lock) until the pool actor has started its actors (outside it)."""

    slot_id: int
    key: SessionKey
    gate: GateView
    handle: SlotHandle | None = None
    state: str = "starting"  # starting, ready, stopping, exhausted
    generation: int = 0
    lease_id: int | None = None
    reserved_for: Waiter | None = None
    freed_for: Waiter | None = None  # stopped to make room for this waiter
    last_used: float = field(default_factory=time.monotonic)
    rss: float | None = None
    sampled: bool = False
    started_at: float = field(default_factory=time.monotonic)  # of its current generation, for the open time
    position: int = 0  # 0 .. max_workers-1, unique among live slots: a stable, bounded label for metrics

    @property
    def grantable(self) -> bool:
        """Ready, unleased, not promised to a waiter, and its current generation open for requests.

        The gate can close before the pool hears why (a request budget spent, a cycle begun): a closed gate means
        the generation is ending, so the slot waits for its next "ready".
        """
        return (self.state == "ready" and self.lease_id is None and self.reserved_for is None
                and self.gate.open_on(self.generation))


_HANDED_OVER: Future[Any] = Future()
_HANDED_OVER.cancel()  # what a waiter's future is once its lease is handed over


def key_label(key: SessionKey) -> str:
    return f"{key.capability}|{','.join(key.imports)}"
