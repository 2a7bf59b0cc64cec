"""A worker slot's snapshot: what its parts say, as one ``WorkerSnapshot`` (the pool's is pool/snapshot.py).

A ready slot shows "busy" or "idle" by whether a request is in flight; a pid only while its process lives;
``requests_this_generation`` only once the generation is ready (its requests, not its handshake).
"""

from __future__ import annotations

from leanworker.actors.core.results import WorkerSnapshot
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.gate import AdmissionGate
from leanworker.actors.slot.generation import Generation
from leanworker.actors.slot.slot_life import READY, SlotLife


def worker_snapshot(life: SlotLife, gate: AdmissionGate, counters: Counters, gen: Generation | None, generation: int,
                    rss_mib: float | None, sessions_opened: int) -> WorkerSnapshot:
    """The slot's snapshot; ``gen`` is its current generation (``generation`` its number), ``rss_mib`` the last
    sample of its process tree (None: unavailable)."""
    return WorkerSnapshot(
        state=life.shown(busy=gate.inflight is not None),
        generation=generation,
        pid=live_pid(gen),
        requests_ok=gate.requests_ok,
        requests_failed=gate.requests_failed,
        requests_this_generation=gate.served if gen is not None and gen.phase == READY else 0,
        rows_delivered=counters.rows_delivered,
        restarts=dict(life.restarts),
        rss_mib=rss_mib,
        stale_frames_dropped=counters.stale_frames_dropped,
        backpressure_waits=counters.backpressure_waits,
        sessions_opened=sessions_opened,
        events_dropped=counters.events_dropped,
        answers_read_by_caller=counters.answers_read_by_caller,
    )


def live_pid(gen: Generation | None) -> int | None:
    """The pid of ``gen``'s process while it lives (not yet exited), else None."""
    return gen.pid if gen is not None and not gen.exited else None
