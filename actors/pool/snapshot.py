"""The pool's snapshot: a consistent view of its slots, queue and totals (built under the book's lock)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.results import PoolSnapshot
from leanworker.actors.pool.admission import Admission
from leanworker.actors.pool.records import Slot, key_label


class Totals:
    """Counters summed over slots; the pool keeps one for slots that are gone, so that its totals never go down."""

    def __init__(self, slots: Iterable[Slot] = ()) -> None:
        self.requests_ok = 0
        self.requests_failed = 0
        self.rows_delivered = 0
        self.backpressure_waits = 0
        self.stale_frames_dropped = 0
        for slot in slots:
            self.add_slot(slot)

    def add_slot(self, slot: Slot) -> None:
        if slot.handle is None:
            return
        gate = slot.handle.port.gate
        self.requests_ok += gate.requests_ok
        self.requests_failed += gate.requests_failed
        self.rows_delivered += gate.counters.rows_delivered
        self.backpressure_waits += gate.counters.backpressure_waits
        self.stale_frames_dropped += gate.counters.stale_frames_dropped


def pool_snapshot(admission: Admission, retired: Totals, restarts: Mapping[str, int], sessions_opened: int,
                  cooldowns: Mapping[SessionKey, float]) -> PoolSnapshot:
    """A consistent view of the pool (call under the book's lock); ``cooldowns``: seconds left per key."""
    slots = list(admission.slots.values())
    busy = sum(1 for s in slots if s.lease_id is not None)
    idle = sum(1 for s in slots if s.lease_id is None and s.state == "ready")
    starting = sum(1 for s in slots if s.lease_id is None and s.state == "starting")
    stopping = sum(1 for s in slots if s.lease_id is None and s.state in ("stopping", "exhausted"))
    live = Totals(slots)
    alive = [s for s in slots if s.state != "stopping"]
    rss_values = [s.rss for s in alive]
    available = all(s.sampled and s.rss is not None for s in alive)
    return PoolSnapshot(
        max_workers=admission.max_workers,
        workers=idle + busy,
        idle=idle,
        busy=busy,
        leases=len(admission.leases),
        starting=starting,
        stopping=stopping,
        queue_depth=admission.queue_depth(),
        requests_ok=retired.requests_ok + live.requests_ok,
        requests_failed=retired.requests_failed + live.requests_failed,
        rows_delivered=retired.rows_delivered + live.rows_delivered,
        restarts=dict(restarts),
        worker_rss_mib=[round(v, 1) for v in rss_values if v is not None] if available else None,
        total_rss_mib=round(sum(v for v in rss_values if v is not None), 1) if available else None,
        backpressure_waits=retired.backpressure_waits + live.backpressure_waits,
        stale_frames_dropped=retired.stale_frames_dropped + live.stale_frames_dropped,
        sessions_opened=sessions_opened,
        cooldowns={key_label(k): round(v, 3) for k, v in cooldowns.items()},
    )
