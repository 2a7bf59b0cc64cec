"""Event-loop lag of the asyncio pool: ``python -m bench.async_loop_lag [--loop asyncio|uvloop|both] [--json]``.

A ticker task sleeps 1 ms in a loop and records how late it wakes (the loop's lag: the time the loop could not run
it because something held it) while the pool works beside it:

- ``stream_200k``: one task streams 200,000 small rows from one worker (``async for``), rows/s beside the lag;
- ``crash_restart``: tasks crash a worker (SIGKILL in the middle of a request) and lease a fresh one, over and over;
- ``thousand_waiters``: 1,000 tasks queue for a lease on 2 workers, each runs one call (threads added are counted);
- ``idle``: the ticker alone, the floor of the measurement on this machine.

The loop shares the process with the workers' reader threads: when one is busy decoding rows, the loop waits up to
CPython's switch interval (``sys.getswitchinterval()``, 5 ms by default) for the GIL each time it wakes;
``--switch-interval 0.001`` shows the difference that setting makes. Beside it, in the same run: an awaited call's round trip against a ``to_thread`` call of the threaded pool (what an
asyncio program does without this API) and a threaded caller's own round trip. Budget (docs: README, Benchmarks):
the ticker's p99 lag under 20 ms while 200k rows stream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import leanworker as lw
from bench._stats import print_report

ROWS = lw.SessionKey("leanworker.fixtures.throughput:capability")
FAULTY = lw.SessionKey("leanworker.fixtures.faults:capability")
TICK = 0.001


class Ticker:
    """Sleeps ``TICK`` over and over and records how late each wakeup is."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, time.perf_counter() - start - TICK))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> dict[str, float]:
        self._stop.set()
        assert self._task is not None
        await self._task
        lags = sorted(self.lags)
        if not lags:
            raise RuntimeError("the ticker never ticked: nothing was measured")
        return {"ticks": len(lags), "lag_p50_ms": round(statistics.median(lags) * 1000, 2),
                "lag_p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 2), "lag_max_ms": round(lags[-1] * 1000, 2)}


async def measured(work: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    ticker = Ticker()
    ticker.start()
    figures = await work()
    return {**figures, **await ticker.stop()}


async def idle() -> dict[str, Any]:
    await asyncio.sleep(1.0)
    return {}


async def stream_200k(pool: lw.AsyncWorkerPool, count: int) -> dict[str, Any]:
    async with pool.lease(ROWS) as lease:
        start = time.perf_counter()
        seen = 0
        async for _ in lease.stream("rows", {"count": count, "payload_bytes": 16}):
            seen += 1
        elapsed = time.perf_counter() - start
    assert seen == count
    return {"rows": count, "rows_per_s": round(count / elapsed)}


async def crash_restart(pool: lw.AsyncWorkerPool, cycles: int) -> dict[str, Any]:
    start = time.perf_counter()
    crashed = 0
    for _ in range(cycles):
        async with pool.lease(FAULTY) as lease:
            try:
                await lease.call("crash", {"how": "signal"})
            except lw.WorkerCrashed:
                crashed += 1
        async with pool.lease(FAULTY) as lease:
            await lease.call("echo", 1)
    assert crashed == cycles
    return {"crashes": crashed, "crash_to_next_call_ms": round((time.perf_counter() - start) / cycles * 1000, 1)}


async def thousand_waiters(pool: lw.AsyncWorkerPool, tasks: int) -> dict[str, Any]:
    before = threading.active_count()
    peak = before

    async def one(i: int) -> int:
        nonlocal peak
        async with pool.lease(ROWS) as lease:
            peak = max(peak, threading.active_count())
            result: int = await lease.call("echo", i)
            return result

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(tasks)))
    elapsed = time.perf_counter() - start
    assert sorted(results) == list(range(tasks))
    return {"tasks": tasks, "leases_per_s": round(tasks / elapsed), "threads_added": peak - before}


async def round_trips(pool: lw.AsyncWorkerPool, repeat: int) -> dict[str, Any]:
    """An awaited call, a ``to_thread`` call of the threaded pool, and a threaded caller's call, interleaved."""
    awaited: list[float] = []
    to_thread: list[float] = []
    threaded: list[float] = []
    async with pool.lease(ROWS) as lease:
        sync_lease = pool.threaded.lease(ROWS)
        try:
            for _ in range(10):
                for _ in range(repeat // 10):
                    start = time.perf_counter()
                    await lease.call("echo", 1)
                    awaited.append(time.perf_counter() - start)
                for _ in range(repeat // 10):
                    start = time.perf_counter()
                    await asyncio.to_thread(sync_lease.call, "echo", 1)
                    to_thread.append(time.perf_counter() - start)

                def in_a_thread() -> None:
                    for _ in range(repeat // 10):
                        begin = time.perf_counter()
                        sync_lease.call("echo", 1)
                        threaded.append(time.perf_counter() - begin)
                await asyncio.to_thread(in_a_thread)
        finally:
            sync_lease.release()

    def us(samples: list[float]) -> float:
        return round(statistics.median(samples) * 1e6, 1)
    return {"awaited_call_median_us": us(awaited), "to_thread_call_median_us": us(to_thread),
            "threaded_call_median_us": us(threaded),
            "ratio_to_thread_over_awaited": round(statistics.median(to_thread) / statistics.median(awaited), 2)}


async def scenarios(quick: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                              "switch_interval_s": sys.getswitchinterval(), "load_1min": round(os.getloadavg()[0], 1)}
    report["idle"] = await measured(idle)
    config = lw.PoolConfig(max_workers=2, queue_wait_timeout=120.0, restart=lw.RestartPolicy(max_restarts=100))
    async with lw.AsyncWorkerPool(config) as pool:
        async with pool.lease(ROWS) as lease:  # warm
            await lease.call("echo")
        report["stream_200k"] = await measured(lambda: stream_200k(pool, 50_000 if quick else 200_000))
        report["crash_restart"] = await measured(lambda: crash_restart(pool, 5 if quick else 20))
        report["thousand_waiters"] = await measured(lambda: thousand_waiters(pool, 1000))
        report["round_trips"] = await round_trips(pool, 500 if quick else 3000)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "both"), default="both")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval() for the run (CPython's default: 0.005 s); a loop that shares "
                             "the process with the workers' reader threads waits up to this long for the GIL")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    reports = []
    if args.loop in ("asyncio", "both"):
        reports.append(asyncio.run(scenarios(args.quick)))
    if args.loop in ("uvloop", "both"):
        import uvloop
        reports.append(uvloop.run(scenarios(args.quick)))
    for report in reports:
        print_report(report, args.json, width=18)


if __name__ == "__main__":
    main()
