"""``SlotLeases``: what every lease of one worker slot shares, made once when the slot is launched (pool/actor.py).

A grant then makes a handle of three fields, its id, its generation and this (lease.py), instead of copying the
slot's port, key, lease actor and release functions into every handle. Two rules of a lease rest on the slot, not
on the handle:

- **Generation fencing**: the slot's admission gate judges a lease's generation (``GateState.live_generation``: the
  newest generation started, until its process exits), so a lease needs no notice of its own when a generation ends
  (the slot's lease actor still hears it, and traces it).
- **One command admitted at a time**: ``lock`` is the slot's, not the handle's. A slot has one unreleased lease at a
  time (its capacity returns once, and only after the handle is marked released), and a released handle never takes
  the lock, so one lock serves every lease granted on the slot.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import pykka

from leanworker.actors.core import locks
from leanworker.actors.core.config import SessionKey
from leanworker.actors.slot import RequestPort

ReturnFunction = Callable[[int], "Future[None] | None"]


class ReleaseFunction(Protocol):
    """Returns lease ``lease_id`` (the pool's book); without ``wait``, by a message only, through ``lease_actor``
    (the slot's) when one is given."""

    def __call__(self, lease_id: int, wait: bool = True, lease_actor: pykka.ActorRef[Any] | None = None) -> None: ...


class SlotLeases:
    """What the leases of one slot share: its key, the port their commands go through, the gate state that fences
    their generation, the slot's lease actor and lock, and how a lease goes back to the pool."""

    __slots__ = ("key", "port", "fence", "owner_pid", "lease_actor", "lock", "release", "give_back")

    def __init__(self, key: SessionKey, port: RequestPort, lease_actor: pykka.ActorRef[Any] | None,
                 release: ReleaseFunction, give_back: ReturnFunction) -> None:
        self.key = key
        self.port = port
        self.fence = port.gate.state  # read without the gate's lock: its live_generation is one int
        self.owner_pid = port.owner_pid
        self.lease_actor = lease_actor  # a lease collected unreleased is returned through it
        self.lock = locks.lock("lease")  # held while a command is admitted, and by release()
        self.release = release  # from any thread, waiting or not (a finalizer's does not)
        self.give_back = give_back  # release()'s, without a wait: None when booked in place
