"""Scale-out on Ray: ``python -m bench.scaleout [--json]``. Figures, never timed tests.

Everything here runs on ONE machine (2 cores on ours): it measures what Ray adds, not scaling across machines,
which cannot be measured here. The capability is the mathlib-scale fixture, a SIMULATION (import 200 ms).

1. The mathlib-shaped plan (7,041 modules from shared/data/mathlib_modules.txt, 512-module batches, one key) with
   2 workers in all: a local ``WorkerPool(2)``; an in-process Ray instance (one node, one agent with 2 workers); a
   two-node ``cluster_utils`` cluster (one agent with 1 worker per node). Wall time, rows/s, time to the first
   result (rows are committed per batch), sessions opened.
2. Chunk sizes 64 / 512 / 4,096 rows on the two-node cluster.
3. Affinity on and off on a shuffled multi-key plan (the same modules in 8 keys by top-level namespace, 128-module
   batches, shuffled), on the two-node cluster.
4. Start-up cost: the two-node cluster, and a RayRunner's agents once it is up.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import leanworker as lw
from bench._stats import print_report
from bench.plan_run import MATHLIB, mathlib_plan

IMPORT = (("import_ms", 200),)
WORKER = lw.WorkerConfig(startup_timeout=60, request_timeout=600)


def measure(run: lw.PlanRun) -> dict[str, Any]:
    started = time.perf_counter()
    first: float | None = None
    for result in run:
        if first is None:
            first = time.perf_counter() - started
        assert result.committed, result.error
    elapsed = time.perf_counter() - started
    summary = run.summary
    assert summary is not None and summary.batches_failed == 0
    if first is None or summary.rows == 0:
        raise SystemExit("nothing measured: the run gave no result")
    return {"seconds": round(elapsed, 2), "rows_per_s": round(summary.rows / elapsed), "rows": summary.rows,
            "first_result_s": round(first, 2), "sessions_opened": summary.sessions_opened}


def keyed_plan(plan: lw.ImportPlan, keys: int = 8) -> list[lw.PlannedBatch]:
    """The plan's modules in ``keys`` keys (by top-level namespace, folded), 128-module batches, shuffled."""
    groups: dict[str, list[str]] = {}
    for batch in plan.batches:
        for module in batch.modules:
            top = module.split(".")[1] if "." in module else module
            groups.setdefault(f"K{sum(map(ord, top)) % keys}", []).append(module)
    batches = [b for name, modules in sorted(groups.items())
               for b in lw.ImportPlanner(MATHLIB, (name,), max_batch_modules=128, options=IMPORT).plan(
                   [lw.WorkItem(m) for m in modules]).batches]
    random.Random(3).shuffle(batches)
    return batches


@contextmanager
def in_process_ray() -> Iterator[None]:
    import ray

    from leanworker.scaleout.local_cluster import RAY_ENV

    os.environ.update(RAY_ENV)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="lwb", dir="/tmp"))
    try:
        yield
    finally:
        ray.shutdown()


def on_ray(plan: Any, workers_per_node: int, **options: Any) -> dict[str, Any]:
    from leanworker.scaleout import RayRunner

    started = time.perf_counter()
    with RayRunner(lw.PoolConfig(max_workers=workers_per_node, worker=WORKER), **options) as runner:
        agents_ready = time.perf_counter() - started
        figures = measure(runner.run(plan, "index"))
    return {**figures, "agents_ready_s": round(agents_ready, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from leanworker.scaleout.local_cluster import local_cluster

    report: dict[str, Any] = {"note": "one 2-core machine: Ray's overhead, not scaling across machines"}
    with tempfile.TemporaryDirectory() as tmp:
        plan = mathlib_plan(Path(tmp) / "mathlib", "shared")
        shuffled = keyed_plan(plan)
        report["plan"] = {"batches": len(plan.batches), "modules": plan.module_count,
                          "shuffled_batches": len(shuffled), "shuffled_keys": len({b.key for b in shuffled})}
        with lw.WorkerPool(lw.PoolConfig(max_workers=2, worker=WORKER)) as pool:
            report["local_pool_2"] = measure(pool.run(plan, "index"))
            report["local_pool_2_shuffled"] = measure(pool.run(shuffled, "index"))
        with in_process_ray():
            report["ray_in_process_1x2"] = on_ray(plan, 2)
        started = time.perf_counter()
        with local_cluster(nodes=2):
            report["cluster_start_s"] = round(time.perf_counter() - started, 2)
            report["ray_two_nodes_2x1"] = on_ray(plan, 1)
            for chunk in (64, 512, 4096):
                report[f"two_nodes_chunk_{chunk}"] = on_ray(plan, 1, chunk_rows=chunk)
            for affinity in (True, False):
                report[f"two_nodes_shuffled_affinity_{'on' if affinity else 'off'}"] = on_ray(
                    shuffled, 1, affinity=affinity)
            stopping = time.perf_counter()
        report["cluster_stop_s"] = round(time.perf_counter() - stopping, 2)
    base = report["local_pool_2"]["seconds"]
    report["ratio_two_nodes_vs_local"] = round(report["ray_two_nodes_2x1"]["seconds"] / base, 2)
    report["ratio_in_process_vs_local"] = round(report["ray_in_process_1x2"]["seconds"] / base, 2)
    print_report(report, args.json, width=38)


if __name__ == "__main__":
    main()
