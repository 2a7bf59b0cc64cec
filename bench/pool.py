"""Pool benchmarks: ``python -m bench.pool [--json]`` (peers come from the ``bench`` extra).

- warm lease acquire + trivial call + release, against a bare ``lw.Worker`` call (the lease's own cost), a bare call
  that never spins (``WorkerConfig(spin_wait=0)``: both ends sleep at once), and ``ProcessPoolExecutor(2)`` and
  ``pebble.ProcessPool(2)`` submit/result, in interleaved rounds of the same run, each round in a rotated order:
  whichever goes first in a round, after the others' rounds, runs slower (on a loaded 2-core machine a fixed order
  put the lease, always first, at 1.5-2.7x the bare call, and a bare call run first at 0.7x the lease), so each takes
  every place equally often;
- two workers on two keys streaming together versus one worker streaming alone (rows/s and the ratio).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import leanworker as lw
from bench._stats import median_us, p90_us, timings

THROUGHPUT = "leanworker.fixtures.throughput:capability"
KEY_A = lw.SessionKey(THROUGHPUT, imports=("A",))
KEY_B = lw.SessionKey(THROUGHPUT, imports=("B",))


def _noop(x: int) -> int:
    return x


def lease_round_trip(repeat: int, rounds: int = 30) -> dict[str, float | None]:
    ours: list[float] = []
    bare: list[float] = []
    no_spin: list[float] = []
    ppe: list[float] = []
    peb: list[float] = []
    try:
        import pebble
    except ImportError:
        pebble = None

    def lease_call(pool: lw.WorkerPool) -> None:
        with pool.lease(KEY_A) as lease:
            lease.call("echo", 1)

    with lw.WorkerPool(lw.PoolConfig(max_workers=2)) as pool, ProcessPoolExecutor(2) as executor, \
            lw.Worker(KEY_B) as worker, lw.Worker(KEY_B, lw.WorkerConfig(spin_wait=0.0)) as sleeper:
        peer_pebble = pebble.ProcessPool(2) if pebble is not None else None
        variants: list[tuple[Callable[[], object], list[float]]] = [
            (lambda: lease_call(pool), ours),
            (lambda: worker.call("echo", 1), bare),
            (lambda: sleeper.call("echo", 1), no_spin),
            (lambda: executor.submit(_noop, 1).result(), ppe),
        ]
        if peer_pebble is not None:
            variants.append((lambda: peer_pebble.schedule(_noop, (1,)).result(), peb))
        try:
            for index in range(rounds):
                shift = index % len(variants)
                for function, samples in variants[shift:] + variants[:shift]:
                    samples += timings(function, repeat // rounds, warmup=10)
        finally:
            if peer_pebble is not None:
                peer_pebble.close()
                peer_pebble.join()
    result: dict[str, float | None] = {
        "leanworker_lease_call_release_median_us": round(median_us(ours), 1),
        "leanworker_p90_us": round(p90_us(ours), 1),
        "bare_worker_call_median_us": round(median_us(bare), 1),
        "lease_overhead_ratio_vs_bare_worker": round(median_us(ours) / median_us(bare), 2),
        "bare_worker_call_spin_wait_0_median_us": round(median_us(no_spin), 1),
        "process_pool_executor_2_median_us": round(median_us(ppe), 1),
        "ratio_vs_process_pool_executor": round(median_us(ppe) / median_us(ours), 2),
        "pebble_process_pool_2_median_us": round(median_us(peb), 1) if peb else None,
        "ratio_vs_pebble": round(median_us(peb) / median_us(ours), 2) if peb else None,
    }
    return result


def _stream(pool: lw.WorkerPool, key: lw.SessionKey, count: int, out: list[float]) -> None:
    with pool.lease(key) as lease:
        start = time.perf_counter()
        n = sum(1 for _ in lease.stream("rows", {"count": count, "payload_bytes": 16}))
        out.append(time.perf_counter() - start)
        assert n == count


def two_keys_streaming(count: int) -> dict[str, float]:
    with lw.WorkerPool(lw.PoolConfig(max_workers=2)) as pool:
        for key in (KEY_A, KEY_B):  # warm both
            _stream(pool, key, 1000, [])
        alone: list[float] = []
        _stream(pool, KEY_A, count, alone)
        together: list[float] = []
        start = time.perf_counter()
        threads = [threading.Thread(target=_stream, args=(pool, key, count, together)) for key in (KEY_A, KEY_B)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    one = count / alone[0]
    two = 2 * count / wall
    return {"rows_per_worker": count, "one_worker_rows_per_s": round(one), "two_workers_rows_per_s": round(two),
            "ratio_two_over_one": round(two / one, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = {
        "lease_round_trip": lease_round_trip(600 if args.quick else 3000),
        "two_keys_streaming": two_keys_streaming(100_000 if args.quick else 200_000),
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            print(f"{name:20} {json.dumps(figures)}")


if __name__ == "__main__":
    main()
