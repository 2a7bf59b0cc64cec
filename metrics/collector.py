"""``PoolCollector``: a prometheus-client collector for a ``WorkerPool`` or an ``AsyncWorkerPool``.

Register it in any registry (``registry.register(PoolCollector(pool))``); every scrape asks the pool twice, for its
snapshot and for its statistics (``WorkerPool.snapshot``, ``WorkerPool.stats``): figures the pool keeps as it works
(counters, histograms, the memory sampler's last readings), so a scrape costs two messages to the pool actor and
nothing on any request's path. Names start with ``leanworker_``; docs/metrics.md lists each with its meaning.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from leanworker.actors.core.results import PoolSnapshot
from leanworker.actors.core.stats import Histogram, PoolStats
from leanworker.actors.pool import WorkerPool
from leanworker.aio import AsyncWorkerPool

WORKER_STATES = ("idle", "busy", "starting", "stopping")


def _histogram(name: str, documentation: str, histogram: Histogram, labels: list[str] | None = None,
               values: list[str] | None = None, family: HistogramMetricFamily | None = None) -> HistogramMetricFamily:
    family = family or HistogramMetricFamily(name, documentation, labels=labels)
    buckets = [(_le(bound), count) for bound, count in histogram.cumulative()]
    family.add_metric(values or [], buckets, histogram.total)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class PoolCollector(Collector):
    """Exposes one pool's figures under the prefix ``leanworker_`` (docs/metrics.md)."""

    def __init__(self, pool: WorkerPool | AsyncWorkerPool) -> None:
        self._pool = pool.threaded if isinstance(pool, AsyncWorkerPool) else pool

    def collect(self) -> Iterator[Metric]:
        snapshot = self._pool.snapshot()
        stats = self._pool.stats()
        yield from self._requests(snapshot, stats)
        yield from self._workers(snapshot, stats)
        yield from self._admission(snapshot, stats)
        yield from self._memory(stats)

    def _requests(self, snapshot: PoolSnapshot, stats: PoolStats) -> Iterator[Metric]:
        requests = CounterMetricFamily("leanworker_requests", "Requests ended, by command and terminal outcome "
                                       "(ok, error, cancelled, timeout, crashed, memory, protocol, shutdown).",
                                       labels=["command", "outcome"])
        for (command, outcome), count in sorted(stats.requests.outcomes.items()):
            requests.add_metric([command, outcome], count)
        yield requests
        durations = HistogramMetricFamily("leanworker_request_duration_seconds", "Seconds from a request's "
                                          "admission to its terminal, by command.", labels=["command"])
        for command, histogram in sorted(stats.requests.durations.items()):
            _histogram("", "", histogram, values=[command], family=durations)
        yield durations
        yield CounterMetricFamily("leanworker_rows_delivered", "Rows handed to callers (streams).",
                                  value=snapshot.rows_delivered)
        yield CounterMetricFamily("leanworker_backpressure_waits", "Times a worker's reader waited for a caller "
                                  "to drain a full request buffer.", value=snapshot.backpressure_waits)
        yield CounterMetricFamily("leanworker_stale_frames_dropped", "Frames dropped because their request or "
                                  "worker generation had already ended.", value=snapshot.stale_frames_dropped)

    def _workers(self, snapshot: PoolSnapshot, stats: PoolStats) -> Iterator[Metric]:
        workers = GaugeMetricFamily("leanworker_workers", "Worker slots by state: idle and busy (leased) hold a "
                                    "ready worker; starting and stopping count toward max_workers too.",
                                    labels=["state"])
        for state in WORKER_STATES:
            workers.add_metric([state], getattr(snapshot, state))
        yield workers
        yield GaugeMetricFamily("leanworker_max_workers", "The pool's max_workers.", value=snapshot.max_workers)
        restarts = CounterMetricFamily("leanworker_restarts", "Worker replacements by reason (crash, timeout, "
                                       "cancel, memory_hard, protocol, startup; planned: max_requests, idle, "
                                       "memory_soft, cycle).", labels=["reason"])
        for reason, count in sorted(snapshot.restarts.items()):
            restarts.add_metric([reason], count)
        yield restarts
        yield CounterMetricFamily("leanworker_sessions_opened", "Session opens (a worker generation became ready).",
                                  value=snapshot.sessions_opened)
        yield _histogram("leanworker_session_open_seconds", "Seconds from a worker's start to its session being "
                         "open.", stats.session_open)

    def _admission(self, snapshot: PoolSnapshot, stats: PoolStats) -> Iterator[Metric]:
        yield GaugeMetricFamily("leanworker_queue_depth", "Callers waiting in the admission queue.",
                                value=snapshot.queue_depth)
        yield _histogram("leanworker_queue_wait_seconds", "Seconds each granted lease waited in admission (0 for "
                         "a warm worker granted at once).", stats.queue_wait)
        yield GaugeMetricFamily("leanworker_leases", "Leases held.", value=snapshot.leases)
        yield GaugeMetricFamily("leanworker_keys_cooling_down", "Session keys refused for now after too many "
                                "restarts.", value=len(snapshot.cooldowns))

    def _memory(self, stats: PoolStats) -> Iterator[Metric]:
        metric = stats.memory_metric
        total = GaugeMetricFamily("leanworker_worker_memory_mib", f"Memory of every live worker's process tree, "
                                  f"summed ({metric}; absent while any reading is unavailable).")
        # From the same readings as the per-slot gauges below, not from the snapshot: the pool samples memory between
        # the two calls, and one scrape must not show a total that its own slots do not add up to.
        readings = [mib for mib in stats.slot_memory_mib.values() if mib is not None]
        if len(readings) == len(stats.slot_memory_mib):
            total.add_metric([], round(sum(readings), 1))
        yield total
        per_slot = GaugeMetricFamily("leanworker_slot_memory_mib", f"Memory of one worker slot's process tree "
                                     f"({metric}), by slot position (0 .. max_workers-1; absent while unavailable).",
                                     labels=["slot"])
        for position, mib in sorted(stats.slot_memory_mib.items()):
            if mib is not None:
                per_slot.add_metric([str(position)], round(mib, 1))
        yield per_slot
        budget = GaugeMetricFamily("leanworker_memory_budget_mib", "The pool's max_total_rss_mib (absent when "
                                   "there is no budget).")
        limit = self._pool.config.max_total_rss_mib
        if limit is not None:
            budget.add_metric([], limit)
        yield budget
