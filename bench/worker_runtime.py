"""Worker runtime benchmarks against the design budgets (README.md, Benchmarks): ``python -m bench.worker_runtime [--json]``.

- warm round trip of a trivial command through ``lw.Worker`` vs ``ProcessPoolExecutor(1)`` in the same run;
- streaming 200k small rows from one worker (rows/s);
- cold start to ready (python host);
- crash to replacement ready;
- cooperative cancel to terminal;
- parent memory growth while 1M rows stream to a slow sink.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import leanworker as lw
from bench._stats import median_us, ms, p90_us, timings

THROUGHPUT = lw.SessionKey("leanworker.fixtures.throughput:capability")
FAULTS = lw.SessionKey("leanworker.fixtures.faults:capability")


def _noop(x: int) -> int:
    return x


_ECHO = "import os\nwhile True:\n d = os.read(0, 65536)\n if not d: break\n os.write(1, d)"


def pipe_floor(repeat: int) -> dict[str, float]:
    """The machine's floor: one byte to another process and back over two pipes, no framing, no threads."""
    process = subprocess.Popen([sys.executable, "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               bufsize=0)
    assert process.stdin is not None and process.stdout is not None
    fd_in, fd_out = process.stdin.fileno(), process.stdout.fileno()

    def ping() -> None:
        os.write(fd_in, b"x")
        os.read(fd_out, 16)

    samples = timings(ping, repeat)
    process.stdin.close()
    process.wait()
    process.stdout.close()
    return {"median_us": round(median_us(samples), 1)}


def round_trip(repeat: int, rounds: int = 6) -> dict[str, float]:
    """Interleaved rounds (leanworker, traced leanworker, ProcessPoolExecutor(1)), so that warm-up and the
    machine's drift fall on every contender alike; medians over all samples."""
    ours: list[float] = []
    traced: list[float] = []
    peer: list[float] = []
    with lw.Worker(THROUGHPUT) as worker, lw.Worker(THROUGHPUT, trace=lw.Tracer()) as traced_worker, \
            ProcessPoolExecutor(1) as pool:
        for _ in range(rounds):
            ours += timings(lambda: worker.call("echo", 1), repeat // rounds)
            traced += timings(lambda: traced_worker.call("echo", 1), repeat // rounds)
            peer += timings(lambda: pool.submit(_noop, 1).result(), repeat // rounds)
    return {
        "leanworker_median_us": round(median_us(ours), 1),
        "leanworker_p90_us": round(p90_us(ours), 1),
        "leanworker_traced_median_us": round(median_us(traced), 1),
        "process_pool_executor_median_us": round(median_us(peer), 1),
        "speedup_vs_process_pool_executor": round(median_us(peer) / median_us(ours), 2),
        "tracing_cost_us": round(median_us(traced) - median_us(ours), 1),
    }


def streaming(count: int) -> dict[str, float]:
    with lw.Worker(THROUGHPUT) as worker:
        worker.stream("rows", {"count": 1000, "payload_bytes": 16}).collect()  # warm
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            n = 0
            for _row in worker.stream("rows", {"count": count, "payload_bytes": 16}):
                n += 1
            elapsed = time.perf_counter() - start
            assert n == count
            best = max(best, count / elapsed)
    return {"rows": count, "rows_per_s": round(best)}


def cold_start(repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        worker = lw.Worker(THROUGHPUT)
        samples.append(time.perf_counter() - start)
        worker.shutdown()
    return {"median_ms": ms(statistics.median(samples)), "max_ms": ms(max(samples))}


def crash_to_ready(repeat: int) -> dict[str, float]:
    samples = []
    with lw.Worker(FAULTS, restart=lw.RestartPolicy(max_restarts=repeat + 1)) as worker:
        for _ in range(repeat):
            start = time.perf_counter()
            try:
                worker.call("crash", {"how": "signal"})
            except lw.WorkerCrashed:
                pass
            worker.wait_ready(30)
            samples.append(time.perf_counter() - start)
    return {"median_ms": ms(statistics.median(samples)), "max_ms": ms(max(samples))}


def cancel_latency(repeat: int) -> dict[str, float]:
    samples = []
    with lw.Worker(FAULTS) as worker:
        for _ in range(repeat):
            stream = worker.stream("hang", {"after_rows": 1})
            next(stream)
            start = time.perf_counter()
            stream.cancel()
            for _row in stream:
                pass
            samples.append(time.perf_counter() - start)
            assert stream.outcome == "cancelled"
    return {"median_ms": ms(statistics.median(samples)), "max_ms": ms(max(samples))}


def slow_sink(count: int) -> dict[str, float]:
    """Parent RSS growth while 1M rows stream to a consumer slower than the worker (budget: <= 32 MiB)."""
    import psutil

    me = psutil.Process()
    with lw.Worker(THROUGHPUT) as worker:
        worker.stream("rows", {"count": 10_000, "payload_bytes": 16}).collect()
        before = me.memory_info().rss
        peak = before
        n = 0
        stream = worker.stream("rows", {"count": count, "payload_bytes": 16})
        for _ in stream:
            n += 1
            if n % 5000 == 0:
                time.sleep(0.002)  # the sink is slower than the worker
                peak = max(peak, me.memory_info().rss)
        waits = worker.snapshot().backpressure_waits
    return {"rows": n, "parent_rss_growth_mib": round((peak - before) / 2**20, 1), "backpressure_waits": waits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    n = 300 if args.quick else 3000
    results = {
        "pipe_floor": pipe_floor(n),
        "round_trip": round_trip(n),
        "streaming_200k": streaming(200_000),
        "cold_start": cold_start(5 if args.quick else 20),
        "crash_to_ready": crash_to_ready(5 if args.quick else 20),
        "cancel_to_terminal": cancel_latency(10 if args.quick else 50),
        "slow_sink_1m": slow_sink(1_000_000),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    budgets = {"pipe_floor": "(the machine: a 2-process pipe ping-pong, for context)", "round_trip": "median <= 80 us and >= 2x ProcessPoolExecutor(1)", "streaming_200k": ">= 250k rows/s",
               "cold_start": "median <= 80 ms", "crash_to_ready": "<= 150 ms", "cancel_to_terminal": "<= 20 ms", "slow_sink_1m": "growth <= 32 MiB"}
    for name, figures in results.items():
        print(f"{name:20} {json.dumps(figures)}   budget: {budgets.get(name, '-')}")


if __name__ == "__main__":
    main()
