"""The pool actor's handling of what its slots report (ready, restart, memory, failed, exhausted, stopped), per-key
restart intensity and cool-downs, and its snapshot. Functions of the PoolActor (actor.py), which owns the state and
calls them under its lock."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pykka

from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.results import PoolSnapshot
from leanworker.actors.pool.state import SlotEvent, SlotStopped, Totals, fail, key_label
from leanworker.actors.slot import RestartIntensity
from leanworker.errors import LeanWorkerError, RestartLimitExceeded

if TYPE_CHECKING:
    from leanworker.actors.pool.actor import PoolActor


def on_slot_event(pool: PoolActor, message: SlotEvent) -> None:
    """A slot's supervisor reported ready, a restart, a memory sample, or that it failed or is exhausted."""
    slot = pool.slots.get(message.slot_id)
    if slot is None:
        return
    event, payload = message.event, message.payload
    if event == "ready":
        slot.generation = payload
        pool.sessions_opened += 1
        pool.affinity.record_open(slot.key, time.monotonic() - slot.started_at)
        pool.affinity.touch(slot.key, time.monotonic())
        if slot.state == "starting":
            slot.state = "ready"
        waiter, slot.reserved_for = slot.reserved_for, None
        if waiter is not None:
            waiter.bound = False
            if slot.lease_id is None and pool._grantable(slot) and waiter in pool.waiters:
                pool.waiters.remove(waiter)
                pool._grant(slot, waiter)  # False if it gave up: the worker is simply idle
        pool._admit()
    elif event == "restart":
        reason, planned = payload
        pool.restarts[reason] += 1
        slot.started_at = time.monotonic()
        if slot.state == "ready":
            slot.state = "starting"  # not grantable until the new generation is ready
        if not planned:
            count_key_restart(pool, slot.key)
    elif event == "memory":
        slot.rss, slot.sampled = payload, True
        if payload is not None:
            pool.budget.observe(slot.key, payload)
    elif event in ("failed", "exhausted"):
        error: LeanWorkerError = payload
        if event == "exhausted":
            retry = getattr(error, "retry_after", None) or pool.config.restart.restart_window
            cool_down(pool, slot.key, retry, error)
        waiter, slot.reserved_for = slot.reserved_for, None
        if waiter is not None and waiter in pool.waiters:
            pool.waiters.remove(waiter)
            fail(waiter, error)
        if slot.lease_id is None:
            pool._stop_slot(slot, event)
        else:
            slot.state = "exhausted"  # stopped when its holder releases it
        pool._admit()


def count_key_restart(pool: PoolActor, key: SessionKey) -> None:
    """Restart intensity per key, across all its workers: past the limit, the key cools down."""
    policy = pool.config.restart
    intensity = pool.key_restarts.get(key)
    if intensity is None:
        intensity = pool.key_restarts[key] = RestartIntensity(policy.max_restarts, policy.restart_window)
    retry = intensity.record(time.monotonic())
    if retry is not None:
        error = RestartLimitExceeded(f"workers of {key.capability} restarted {intensity.count} times in "
                                     f"{policy.restart_window:g} s (limit {policy.max_restarts})",
                                     retry_after=retry)
        intensity.clear()
        cool_down(pool, key, retry, error)


def cool_down(pool: PoolActor, key: SessionKey, retry: float, error: LeanWorkerError) -> None:
    """Refuse ``key`` for ``retry`` seconds: fail its waiters, stop its idle workers."""
    pool.cooldowns[key] = (time.monotonic() + retry, error)
    pool._trace("cooldown", key=key_label(key), seconds=round(retry, 3))
    for waiter in [w for w in pool.waiters if w.key == key]:
        pool.waiters.remove(waiter)
        fail(waiter, RestartLimitExceeded(f"{error}; try again in {retry:.1f} s", retry_after=retry))
    for slot in list(pool.slots.values()):
        if slot.key == key and slot.lease_id is None:
            pool._stop_slot(slot, "cooldown")
        elif slot.key == key:
            slot.state = "exhausted"  # stopped when its holder releases it


def on_slot_stopped(pool: PoolActor, message: SlotStopped) -> None:
    """A slot's worker is reaped: retire its figures, and admit what its capacity allows."""
    slot = pool.slots.pop(message.slot_id, None)
    if slot is None:
        return
    if slot.freed_for is not None and slot.freed_for in pool.waiters:
        slot.freed_for.reserved = True  # the capacity it freed is that waiter's, whoever is ahead in the queue
    pool.retired.add_slot(slot)
    try:
        slot.supervisor.stop(block=False)
    except pykka.ActorDeadError:
        pass
    pool._trace("slot_stopped", slot)
    if pool.closing is not None and not pool.slots:
        pool.closing.set_result(None)
        return
    pool._admit()


def pool_snapshot(pool: PoolActor) -> PoolSnapshot:
    """A consistent view of the pool (called under its lock)."""
    slots = list(pool.slots.values())
    busy = sum(1 for s in slots if s.lease_id is not None)
    idle = sum(1 for s in slots if s.lease_id is None and s.state == "ready")
    starting = sum(1 for s in slots if s.lease_id is None and s.state == "starting")
    stopping = sum(1 for s in slots if s.lease_id is None and s.state in ("stopping", "exhausted"))
    totals = Totals()
    for slot in slots:
        totals.add_slot(slot)
    live = [s for s in slots if s.state != "stopping"]
    rss_values = [s.rss for s in live]
    available = all(s.sampled and s.rss is not None for s in live)
    now = time.monotonic()
    return PoolSnapshot(
        max_workers=pool.config.max_workers,
        workers=idle + busy,
        idle=idle,
        busy=busy,
        leases=len(pool.leases),
        starting=starting,
        stopping=stopping,
        queue_depth=sum(1 for w in pool.waiters if not w.future.cancelled()),
        requests_ok=pool.retired.requests_ok + totals.requests_ok,
        requests_failed=pool.retired.requests_failed + totals.requests_failed,
        rows_delivered=pool.retired.rows_delivered + totals.rows_delivered,
        restarts=dict(pool.restarts),
        worker_rss_mib=[round(v, 1) for v in rss_values if v is not None] if available else None,
        total_rss_mib=round(sum(v for v in rss_values if v is not None), 1) if available else None,
        backpressure_waits=pool.retired.backpressure_waits + totals.backpressure_waits,
        stale_frames_dropped=pool.retired.stale_frames_dropped + totals.stale_frames_dropped,
        sessions_opened=pool.sessions_opened,
        cooldowns={key_label(k): round(until - now, 3) for k, (until, _) in pool.cooldowns.items()
                   if until > now},
    )
