"""The PoolActor: owns the worker slots, admission, the wait queue, the memory budget, per-key cool-downs and
snapshots. Its decisions are pure policies it consults (admission.py, budget.py, affinity.py, cooldowns.py); it
does the messaging: grants, starting and stopping slots, failing waiters. ``lw.WorkerPool`` (workerpool.py) is the
public face; callers' warm path shares the book (book.py) with it.

A waiter that gives up (timeout) cancels its future; the pool never grants to a cancelled future, so no lease is
ever granted that nobody holds.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pykka

from leanworker.actors.core.config import PoolConfig, SessionKey
from leanworker.actors.core.mailbox import reentrant_inbox, stop_if_alive, tell_if_alive
from leanworker.actors.core.results import ShutdownReport
from leanworker.actors.core.stats import Histogram, PoolStats, RequestStats
from leanworker.actors.core.timers import Scheduler
from leanworker.actors.pool.admission import Grant, Refuse, Start, Step, StopFor
from leanworker.actors.pool.book import PoolBook
from leanworker.actors.pool.lease_actor import LeaseActor
from leanworker.actors.pool.messages import (
    Abandon,
    Acquire,
    ClosePool,
    GenerationEnded,
    GrantTo,
    Recheck,
    Release,
    SlotEvent,
    SlotStopped,
    TakePoolSnapshot,
    TakePoolStats,
)
from leanworker.actors.pool.records import Slot, SlotHandle, Waiter, key_label
from leanworker.actors.pool.slot_leases import SlotLeases
from leanworker.actors.pool.snapshot import Totals, pool_snapshot
from leanworker.actors.slot import AdmissionGate, MemorySampler, Shutdown, SupervisorActor
from leanworker.errors import LeanWorkerError, MemoryBudgetExceeded, PoolClosed, RestartLimitExceeded

log = logging.getLogger("leanworker")

_slot_ids = itertools.count(1)  # unique in the process, so that every slot has its own timeline lane


class PoolActor(pykka.ThreadingActor):
    """Owns the worker slots, admission, the wait queue, the memory budget and snapshots."""

    use_daemon_thread = True
    _create_actor_inbox = staticmethod(reentrant_inbox)  # a lease's finalizer may tell it (core/mailbox.py)

    def __init__(self, config: PoolConfig, scheduler: Scheduler, sampler: MemorySampler, book: PoolBook) -> None:
        super().__init__()
        self.config = config
        self.scheduler = scheduler
        self.sampler = sampler
        self.book = book
        self.admission = book.admission
        self.cooldowns = book.cooldowns
        self.retired = Totals()
        self.retired_requests = RequestStats()  # requests of slots that are gone
        self.session_open = Histogram()
        self.restarts: Counter[str] = Counter()
        self.sessions_opened = 0
        self.closing: Future[None] | None = None
        self._booked: list[tuple[Slot, AdmissionGate]] = []  # slots booked under the lock, their actors not started
        self._handlers: dict[type, Callable[[Any], Any]] = {
            Acquire: self._on_acquire, Release: self._on_release, Abandon: self._on_abandon,
            SlotEvent: self._on_slot_event, SlotStopped: self._on_slot_stopped, Recheck: self._on_recheck,
            ClosePool: self._on_close, TakePoolSnapshot: self._on_snapshot, TakePoolStats: self._on_stats,
        }

    def on_receive(self, message: Any) -> Any:
        if self.book.tracer is not None:
            self.book.tracer.record("message", "pool", message=type(message).__name__)
        try:
            with self.book.lock:
                if isinstance(message, (TakePoolSnapshot, TakePoolStats)):
                    return self._handlers[type(message)](message)  # asked: an error goes to the caller
                try:
                    return self._handlers[type(message)](message)
                except Exception:  # in a tell, pykka would stop the actor: log the bug and keep admitting
                    log.exception("pool: handling %s failed", type(message).__name__)
                    return None
        finally:
            self._launch_booked()

    def _tell_self(self, message: Any) -> None:
        tell_if_alive(self.actor_ref, message)

    # -- requests from callers ---------------------------------------------------------------------------------------

    def _on_acquire(self, message: Acquire) -> None:
        waiter = message.waiter
        if self.closing is not None:
            waiter.fail(PoolClosed("the pool is shut down"))
            return
        refusal = self.cooldowns.refusal(waiter.key, time.monotonic())
        if refusal is not None:
            self.book.trace("admission_refused", reason="cooldown")
            waiter.fail(refusal)
            return
        self.admission.enqueue(waiter)
        self.book.trace("queued", waiter=waiter.waiter_id, key=key_label(waiter.key),
                        depth=len(self.admission.waiters))
        self._admit()

    def _on_release(self, message: Release) -> None:
        try:
            slot = self.book.give_back(message.lease_id)
            if slot is None:
                return  # its slot is gone already
            if slot.state == "exhausted":
                self._stop_slot(slot, "exhausted")
            self._admit()
        finally:
            if message.done is not None:
                message.done.set_result(None)

    def _on_abandon(self, message: Abandon) -> None:
        self.admission.forget_waiter(message.waiter_id)
        self._admit()

    def _on_recheck(self, message: Recheck) -> None:
        self.admission.rechecked()
        self._admit()

    def _on_stats(self, message: TakePoolStats) -> PoolStats:
        requests = self.retired_requests.copy()
        slots = list(self.admission.slots.values())
        for slot in slots:
            if slot.handle is not None:
                requests.merge(slot.handle.port.gate.counters.request_stats())
        memory = {s.position: (s.rss if s.sampled else None) for s in slots if s.state != "stopping"}
        return PoolStats(requests, self.book.queue_wait(), self.session_open.copy(), memory,
                         self.config.memory_metric)

    def _on_snapshot(self, message: TakePoolSnapshot) -> Any:
        now = time.monotonic()
        return pool_snapshot(self.admission, self.retired, self.restarts, self.sessions_opened,
                             self.cooldowns.remaining(now))

    # -- admission: the policy decides, the actor acts -----------------------------------------------------------------

    def _admit(self) -> None:
        if self.closing is not None:
            return
        while True:
            step = self.admission.next_step(time.monotonic())
            if step is None:
                break
            self._do(step)
        due = self.admission.new_recheck()
        if due is not None:
            self.scheduler.tell_later(max(0.0, due - time.monotonic()), self.actor_ref, Recheck())

    def _do(self, step: Step) -> None:
        if isinstance(step, Grant):
            self._grant(step.slot, step.waiter)
        elif isinstance(step, Start):
            self._start_slot(step.waiter.key, step.waiter)
        elif isinstance(step, StopFor):
            if step.reason == "cycle_for_key":
                self.book.trace("cycle_for_key", step.slot, key=key_label(step.waiter.key))
            else:
                self.book.trace("evict_for_memory", step.slot)
            self._stop_slot(step.slot, step.reason)
        elif isinstance(step, Refuse):
            self.book.trace("admission_refused", reason="memory_budget")
            step.waiter.fail(MemoryBudgetExceeded(
                f"starting a worker for {step.waiter.key.capability} would pass the pool's memory budget of "
                f"{self.config.max_total_rss_mib} MiB ({step.in_use_mib:.0f} MiB in use or reserved, about "
                f"{step.expected_mib:.0f} MiB expected for this key; no idle worker to evict)"))

    def _grant(self, slot: Slot, waiter: Waiter) -> None:
        """Book ``slot`` as leased to ``waiter``; its lease actor hands the lease over (or returns it, if the waiter
        gave up meanwhile: nobody would release it)."""
        lease_id = self.book.take(slot)
        assert slot.handle is not None
        if not tell_if_alive(slot.handle.lease_actor, GrantTo(waiter, lease_id, slot.generation)):
            self.book.give_back(lease_id)

    def _start_slot(self, key: SessionKey, waiter: Waiter | None) -> None:
        """Book a new slot (under the lock: its capacity counts at once); its actors start when the lock is released
        (:meth:`_launch_booked`), before this actor reads its next message."""
        slot_id = next(_slot_ids)
        if self.book.tracer is not None:  # before its worker starts: a tracer hears first whose start this is
            fields: dict[str, Any] = {"key": key_label(key)}
            if waiter is not None:
                fields["waiter"] = waiter.waiter_id
            self.book.tracer.record("slot_start", f"slot{slot_id}", None, **fields)
        gate = AdmissionGate.for_slot(self.config.worker, self.config.restart, self.scheduler, self.book.tracer,
                                      f"slot{slot_id}")
        taken = {s.position for s in self.admission.slots.values()}
        position = next(p for p in range(len(taken) + 1) if p not in taken)
        slot = Slot(slot_id, key, gate, reserved_for=waiter, position=position)
        self.admission.slots[slot_id] = slot
        self._booked.append((slot, gate))

    def _launch_booked(self) -> None:
        """Start the actors of the slots just booked, outside the pool's lock (which is held only for bookkeeping:
        starting a thread waits for it to run). Nobody else touches a slot before its first "ready": until then it is
        neither grantable nor leased, and this actor reads no message before its actors are started."""
        while self._booked:
            slot, gate = self._booked.pop(0)
            try:
                handle = self._launch(slot, gate)
            except Exception as exc:  # no thread to be had, say: the slot never was; its waiter hears why
                log.exception("pool: starting slot%d failed", slot.slot_id)
                with self.book.lock:
                    self.admission.slots.pop(slot.slot_id, None)
                    waiter, slot.reserved_for = slot.reserved_for, None
                    if waiter is not None and self.admission.leave_queue(waiter):
                        waiter.fail(LeanWorkerError(f"could not start a worker: {exc}"))
                    self._admit()
                continue
            with self.book.lock:
                slot.handle = handle
                if slot.state == "stopping":  # stopped while booked
                    self._shut_down(slot)

    def _launch(self, slot: Slot, gate: AdmissionGate) -> SlotHandle:
        pool, slot_id = self.actor_ref, slot.slot_id
        lease_actor = LeaseActor.start(slot_id, self.book, pool)

        def listener(event: str, payload: Any) -> None:  # what the slot's supervisor tells
            if event == "generation_ended":
                generation, reason = payload
                tell_if_alive(lease_actor, GenerationEnded(generation, reason))
            else:
                tell_if_alive(pool, SlotEvent(slot_id, event, payload))

        try:
            port = SupervisorActor.start_port(slot.key, self.config.worker, self.config.restart, self.book.tracer,
                                              self.scheduler, self.sampler, f"slot{slot_id}", listener, PoolClosed,
                                              gate)
        except BaseException:
            stop_if_alive(lease_actor)
            raise
        leases = SlotLeases(slot.key, port, lease_actor, self.book.release, self.book.return_lease)
        return SlotHandle(port.supervisor, port, lease_actor, leases)

    def _stop_slot(self, slot: Slot, reason: str) -> None:
        if slot.state == "stopping":
            return
        slot.state = "stopping"
        self.book.trace("slot_stop", slot, reason=reason)
        if slot.handle is not None:  # else booked but not launched yet: stopped once launched (_launch_booked)
            self._shut_down(slot)

    def _shut_down(self, slot: Slot) -> None:
        reply: Future[ShutdownReport] = Future()
        pool, slot_id = self.actor_ref, slot.slot_id
        reply.add_done_callback(lambda _: tell_if_alive(pool, SlotStopped(slot_id)))
        assert slot.handle is not None
        if not tell_if_alive(slot.handle.supervisor, Shutdown(reply)):
            self._tell_self(SlotStopped(slot_id))

    # -- what slots report ---------------------------------------------------------------------------------------

    def _on_slot_event(self, message: SlotEvent) -> None:
        """A slot's supervisor reported ready, a restart, a memory sample, or that it failed or is exhausted."""
        slot = self.admission.slots.get(message.slot_id)
        if slot is None:
            return
        event, payload = message.event, message.payload
        if event == "ready":
            self._on_ready(slot, payload)
        elif event == "restart":
            reason, planned = payload
            self.restarts[reason] += 1
            slot.started_at = time.monotonic()
            if slot.state == "ready":
                slot.state = "starting"  # not grantable until the new generation is ready
            if not planned:
                error = self.cooldowns.restarted(slot.key, time.monotonic())
                if error is not None:
                    assert error.retry_after is not None
                    self._cool_down(slot.key, error.retry_after, error)
        elif event == "memory":
            slot.rss, slot.sampled = payload, True
            if payload is not None:
                self.admission.budget.observe(slot.key, payload)
        elif event in ("failed", "exhausted"):
            self._on_slot_failed(slot, event, payload)

    def _on_ready(self, slot: Slot, generation: int) -> None:
        now = time.monotonic()
        slot.generation = generation
        self.sessions_opened += 1
        self.session_open.observe(now - slot.started_at)
        self.admission.affinity.record_open(slot.key, now - slot.started_at)
        self.admission.affinity.touch(slot.key, now)
        if slot.state == "starting":
            slot.state = "ready"
        waiter, slot.reserved_for = slot.reserved_for, None
        if waiter is not None:
            waiter.bound = False
            if slot.lease_id is None and slot.grantable and self.admission.leave_queue(waiter):
                self._grant(slot, waiter)  # if it gave up, its lease actor returns the lease: the worker is idle
        self._admit()

    def _on_slot_failed(self, slot: Slot, event: str, error: LeanWorkerError) -> None:
        if event == "exhausted":
            retry = getattr(error, "retry_after", None) or self.config.restart.restart_window
            self._cool_down(slot.key, retry, error)
        waiter, slot.reserved_for = slot.reserved_for, None
        if waiter is not None and self.admission.leave_queue(waiter):
            waiter.fail(error)
        if slot.lease_id is None:
            self._stop_slot(slot, event)
        else:
            slot.state = "exhausted"  # stopped when its holder releases it
        self._admit()

    def _cool_down(self, key: SessionKey, retry: float, error: LeanWorkerError) -> None:
        """Refuse ``key`` for ``retry`` seconds: fail its waiters, stop its idle workers."""
        reason = self.cooldowns.cool_down(key, retry, error, time.monotonic())
        self.book.trace("cooldown", key=key_label(key), seconds=round(retry, 3))
        for waiter in [w for w in self.admission.waiters if w.key == key]:
            self.admission.leave_queue(waiter)
            waiter.fail(RestartLimitExceeded(f"{reason}; try again in {retry:.1f} s", retry_after=retry))
        for slot in list(self.admission.slots_of(key)):
            if slot.lease_id is None:
                self._stop_slot(slot, "cooldown")
            else:
                slot.state = "exhausted"  # stopped when its holder releases it

    def _on_slot_stopped(self, message: SlotStopped) -> None:
        """A slot's worker is reaped: retire its figures, and admit what its capacity allows."""
        slot = self.admission.slots.pop(message.slot_id, None)
        if slot is None:
            return
        if slot.freed_for is not None and slot.freed_for in self.admission.waiters:
            slot.freed_for.reserved = True  # the capacity it freed is that waiter's, whoever is ahead in the queue
        self.retired.add_slot(slot)
        if slot.handle is not None:
            self.retired_requests.merge(slot.handle.port.gate.counters.request_stats())
        assert slot.handle is not None
        for actor in (slot.handle.supervisor, slot.handle.lease_actor):
            try:
                actor.stop(block=False)
            except pykka.ActorDeadError:
                pass
        self.book.trace("slot_stopped", slot)
        if self.closing is not None and not self.admission.slots:
            self.closing.set_result(None)
            return
        self._admit()

    # -- shutdown ------------------------------------------------------------------------------------------------

    def _on_close(self, message: ClosePool) -> None:
        if self.closing is not None:
            self.closing.add_done_callback(lambda _: message.reply.set_result(None))
            return
        self.closing = message.reply
        self.book.closing = True
        waiters = self.admission.waiters
        while waiters:
            waiters.popleft().fail(PoolClosed("the pool was shut down while this lease waited"))
        if not self.admission.slots:
            message.reply.set_result(None)
            return
        for slot in list(self.admission.slots.values()):
            self._stop_slot(slot, "pool_shutdown")  # a slot already stopping reports SlotStopped on its own
