"""Running a plan: ``python -m bench.plan_run [--json] [--affinity-only]``. Figures, never timed tests.

1. The mathlib-shaped plan (7,041 modules from shared/data/mathlib_modules.txt, a stub tree as in bench.planner),
   shared mode with 512-module batches and per_header mode, with a simulated import of 200 ms (the fixture
   capability, a SIMULATION): ``pool.run`` on 2 workers, against one lease running the batches in turn, against a
   fresh worker per batch. Wall time, rows/s, sessions opened.
2. The 4-thread affinity case: 2 workers, 2 keys (simulated import 300 ms), 4 threads taking 200 leases in all
   (alternating keys), against 1 thread. ``--affinity-only`` runs just this (so it can be run on an older checkout
   for the "before" figure).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import leanworker as lw
from bench._stats import print_report

MATHLIB = "leanworker.fixtures.mathlib_scale:capability"
THROUGHPUT = "leanworker.fixtures.throughput:capability"


def mathlib_plan(root: Path, mode: str) -> lw.ImportPlan:
    from leanworker.fixtures.mathlib_tree import build_mathlib_tree, find_module_list, read_module_list

    module_list = find_module_list()
    if module_list is None:
        raise SystemExit("shared/data/mathlib_modules.txt not found (set LEANWORKER_MODULE_LIST)")
    if not (root / "lakefile.lean").exists():
        build_mathlib_tree(root, read_module_list(module_list))
    project = lw.discover_lake_project(root)
    planner = lw.ImportPlanner(MATHLIB, ("Mathlib",) if mode == "shared" else (), max_batch_modules=512,
                               mode=mode, options=(("import_ms", 200),))
    return planner.plan(project)


def with_pool_run(plan: lw.ImportPlan) -> dict[str, Any]:
    with lw.WorkerPool(lw.PoolConfig(max_workers=2)) as pool:
        started = time.perf_counter()
        summary = pool.run(plan, "index").wait()
        elapsed = time.perf_counter() - started
    assert summary.batches_failed == 0
    return {"seconds": round(elapsed, 2), "rows_per_s": round(summary.rows / elapsed), "rows": summary.rows,
            "sessions_opened": summary.sessions_opened}


def one_lease_in_turn(plan: lw.ImportPlan) -> dict[str, Any]:
    """One worker slot; the batches one after another (a new lease, and so a new session, when the key changes)."""
    rows = 0
    with lw.WorkerPool(lw.PoolConfig(max_workers=1)) as pool:
        started = time.perf_counter()
        for batch in plan.batches:
            with pool.lease(batch.key, timeout=120) as lease:
                rows += len(lease.stream("index", batch.request()).collect())
        elapsed = time.perf_counter() - started
        sessions = pool.snapshot().sessions_opened
    return {"seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed), "rows": rows,
            "sessions_opened": sessions}


def fresh_worker_per_batch(plan: lw.ImportPlan) -> dict[str, Any]:
    """What hand-rolled pools do: a new worker process (and import) for every batch, one at a time."""
    rows = 0
    started = time.perf_counter()
    for batch in plan.batches:
        with lw.Worker(batch.key) as worker:
            rows += len(worker.stream("index", batch.request()).collect())
    elapsed = time.perf_counter() - started
    return {"seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed), "rows": rows,
            "sessions_opened": len(plan.batches)}


def affinity(threads: int, leases: int = 200) -> dict[str, Any]:
    keys = [lw.SessionKey(THROUGHPUT, imports=(name,), options=(("import_ms", 300),)) for name in ("A", "B")]
    with lw.WorkerPool(lw.PoolConfig(max_workers=2, queue_wait_timeout=120)) as pool:
        def loop(index: int) -> None:
            for j in range(leases // threads):
                with pool.lease(keys[(index + j) % 2]) as lease:
                    lease.call("echo", j)

        started = time.perf_counter()
        workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        return {"threads": threads, "seconds": round(elapsed, 2), "sessions_opened": pool.snapshot().sessions_opened}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--affinity-only", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"affinity": {"1_thread": affinity(1), "4_threads": affinity(4)}}
    if not args.affinity_only:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "mathlib"
            for mode in ("shared", "per_header"):
                plan = mathlib_plan(root, mode)
                report[f"plan_{mode}"] = {
                    "batches": len(plan.batches), "keys": len(plan.keys), "modules": plan.module_count,
                    "pool_run_2_workers": with_pool_run(plan),
                    "one_lease_in_turn": one_lease_in_turn(plan),
                    "fresh_worker_per_batch": fresh_worker_per_batch(plan),
                }
                entry = report[f"plan_{mode}"]
                entry["speedup_pool_run_vs_in_turn"] = round(
                    entry["one_lease_in_turn"]["seconds"] / entry["pool_run_2_workers"]["seconds"], 2)
                entry["speedup_pool_run_vs_fresh_worker"] = round(
                    entry["fresh_worker_per_batch"]["seconds"] / entry["pool_run_2_workers"]["seconds"], 2)
    print_report(report, args.json)


if __name__ == "__main__":
    main()
