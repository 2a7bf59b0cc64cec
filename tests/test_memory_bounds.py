"""Parent memory is bounded in bytes on every channel of a request (issue 8, item 6). Real workers, real pipes;
the parent's own RSS is sampled while a slow consumer reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

import leanworker as lw
from conftest import FAST, FAULTS, THROUGHPUT, wait_for

MIB = 1024 * 1024


def peak_rss_growth(work: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``work`` while sampling this process's RSS; return (peak growth in MiB, what work returned)."""
    me = psutil.Process()
    base = me.memory_info().rss
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.01):
            peak = max(peak, me.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = work()
    finally:
        stop.set()
        sampler.join()
    return (peak - base) / MIB, result


def test_big_rows_to_a_slow_consumer_keep_parent_growth_under_the_byte_bound() -> None:
    config = lw.WorkerConfig(request_timeout=120, buffer_bytes=8 * MIB)  # buffer_rows stays 4096
    with lw.Worker(lw.SessionKey(THROUGHPUT), config) as worker:
        def consume() -> int:
            count = 0
            for _ in worker.stream("rows", {"count": 300, "payload_bytes": 512 * 1024}):  # 150 MiB in all
                if count == 0:
                    # Hold the first row until the buffer is full and the reader waits for room: on a loaded machine
                    # a worker can produce slower than a consumer that only sleeps, and then never fill the buffer.
                    assert wait_for(lambda: worker.snapshot().backpressure_waits > 0, timeout=60), \
                        "the reader never waited for room in the buffer"
                time.sleep(0.004)
                count += 1
            return count

        growth, count = peak_rss_growth(consume)
        assert count == 300
        assert worker.snapshot().backpressure_waits > 0
    # 8 MiB of buffer, one frame over it, the frame being decoded and the reader's chunk: far under 40 MiB.
    assert growth < 40, f"parent grew {growth:.0f} MiB with an 8 MiB buffer"


def test_a_progress_flood_in_a_call_is_coalesced_and_stays_bounded() -> None:
    with lw.Worker(lw.SessionKey(FAULTS), lw.WorkerConfig(request_timeout=120)) as worker:
        growth, result = peak_rss_growth(lambda: worker.call("events", {"kind": "progress", "count": 150_000}))
        assert result == 150_000
        assert worker.snapshot().events_dropped == 0  # progress is coalesced, not dropped
    assert growth < 24, f"parent grew {growth:.0f} MiB for progress nobody read"


def test_a_diagnostic_flood_is_bounded_and_what_was_dropped_is_counted() -> None:
    with lw.Worker(lw.SessionKey(FAULTS), lw.WorkerConfig(request_timeout=120)) as worker:
        growth, result = peak_rss_growth(lambda: worker.call("events", {"kind": "diag", "count": 60_000}))
        assert result == 60_000
        assert worker.snapshot().events_dropped >= 60_000 - 1024
    assert growth < 24, f"parent grew {growth:.0f} MiB for diagnostics nobody read"


def test_a_reader_sees_every_progress_tick_when_it_keeps_up() -> None:
    with lw.Worker(lw.SessionKey(FAULTS), FAST) as worker:
        seen: list[lw.Progress] = []
        stream = worker.stream("events", {"kind": "progress", "count": 50}, on_progress=seen.append)
        assert stream.collect() == [] and stream.committed
        assert [p.current for p in seen] == list(range(50))
