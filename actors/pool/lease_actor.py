"""The LeaseActor: one per worker slot, for the slot's whole life, so no thread is started per grant. It owns the
lifecycle of the slot's lease (docs/architecture.md, The actors and their messages):

- **grant**: the pool actor decides which waiter gets the slot and tells the lease actor (``GrantTo``); the lease
  actor hands the waiter its ``Lease``, or, if the waiter gave up meanwhile, returns the lease at once;
- **release, exactly once**: a release with nothing to decide is booked in the caller's thread (book.py, the warm
  path); any other release or context exit comes here (``ReturnLease``), and the lease actor returns the capacity
  to the pool (``Release``) once per lease. A lease collected unreleased comes here too: its handle keeps this
  actor's ref, and its finalizer tells it ``ReturnLease`` without a lock (this actor's inbox takes none, so a
  finalizer may put into it from any thread, even one inside a put or get of it); only when this actor has stopped
  with its slot does the finalizer tell the pool actor ``Release`` itself (lease.py, book.py);
- **the supervisor's notice that a generation ended** (``GenerationEnded``): the lease granted on it is stale from
  then on. The slot's admission gate made it so as the generation's process exited (the handle compares its
  generation with the gate's live one on every command, slot_leases.py); the lease actor records and traces it.

The caller's ``Lease`` handle keeps the direct data path: its commands go to the slot's admission gate, never
through this actor.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

import pykka

from leanworker.actors.core.mailbox import reentrant_inbox, tell_if_alive
from leanworker.actors.pool.book import PoolBook
from leanworker.actors.pool.messages import GenerationEnded, GrantTo, Release, ReturnLease
from leanworker.errors import PoolClosed

log = logging.getLogger("leanworker")


class LeaseActor(pykka.ThreadingActor):
    """The lease lifecycle of one worker slot (see the module docstring)."""

    use_daemon_thread = True
    _create_actor_inbox = staticmethod(reentrant_inbox)  # a lease's finalizer may tell it (core/mailbox.py)

    def __init__(self, slot_id: int, book: PoolBook, pool: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.slot_id = slot_id
        self.book = book
        self.pool = pool
        self.last_returned = 0  # a slot's leases are granted one after another, so a lower id is a repeat

    def on_receive(self, message: Any) -> Any:
        try:
            if isinstance(message, GrantTo):
                self._grant(message)
            elif isinstance(message, ReturnLease):
                self._return(message.lease_id, message.done)
            elif isinstance(message, GenerationEnded):
                self._generation_ended(message)
        except Exception:  # in a tell, pykka would stop the actor: log the bug and keep the slot's leases going
            log.exception("lease actor of slot%d: handling %s failed", self.slot_id, type(message).__name__)
        return None

    def _grant(self, message: GrantTo) -> None:
        waiter = message.waiter
        if not waiter.future.set_running_or_notify_cancel():
            self._return(message.lease_id)  # the caller gave up: nobody would release this lease
            return
        lease = self.book.handle(self.slot_id, message.lease_id, message.generation, waiter.enqueued_at)
        if lease is None:
            waiter.future.set_exception(PoolClosed("the pool was shut down while this lease was granted"))
        else:
            waiter.hand(lease)

    def _return(self, lease_id: int, done: Future[None] | None = None) -> None:
        if lease_id <= self.last_returned:
            if done is not None:
                done.set_result(None)
            return  # exactly once
        self.last_returned = lease_id
        if not tell_if_alive(self.pool, Release(lease_id, done)) and done is not None:
            done.set_result(None)  # the pool is gone: nothing to book

    def _generation_ended(self, message: GenerationEnded) -> None:
        lease_id = self.book.lease_id_on(self.slot_id, message.generation)
        if lease_id is not None and lease_id > self.last_returned:
            self.book.trace_generation("lease_stale", self.slot_id, message.generation, lease_id,
                                       reason=message.reason)
