"""``check`` on the REPL SIMULATOR (no Lean here): ``python -m bench.lean_check [--json]``.

- overhead per item over the REPL's own time: 1,000 trivial items in one ``check`` request on one warm worker;
  the wall time per item, minus the mean ``elapsed_s`` the rows report (the driver's round trip to the REPL:
  the REPL's own time as leanworker sees it). Target (README.md, Benchmarks, the design budgets): under 1 ms.
- items/s for 1,000 items on 2 workers: ``pool.run`` of 64-item batches on one import set (what ``leanworker check``
  does), wall time from the run's start (session opens included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import leanworker as lw
from bench._stats import print_report
from leanworker.lean.items import plan_items, split_item

SIM = f"{sys.executable} -m leanworker.fixtures.repl_sim"
CODE = "import Mathlib\ntheorem t{} : True := trivial"


def overhead(items: int) -> dict[str, Any]:
    key = lw.SessionKey("leanworker.lean:repl", imports=("Mathlib",), options=(("repl", SIM),))
    body = [{"id": i, "code": f"theorem t{i} : True := trivial"} for i in range(items)]
    with lw.Worker(key) as worker:
        worker.stream("check", {"items": body[:50]}).collect()  # warm
        started = time.perf_counter()
        rows = [row.payload for row in worker.stream("check", {"items": body})]
        wall = time.perf_counter() - started
    repl_own = statistics.mean(r["elapsed_s"] for r in rows)
    per_item = wall / items
    return {"items": items, "wall_per_item_ms": round(per_item * 1000, 3),
            "repl_own_per_item_ms": round(repl_own * 1000, 3),
            "overhead_per_item_ms": round((per_item - repl_own) * 1000, 3), "target_ms": 1.0}


def throughput(items: int, workers: int) -> dict[str, Any]:
    checked = [split_item(i, CODE.format(i)) for i in range(items)]
    batches = plan_items(checked, None, SIM, None, per_batch=64)

    def request(batch: lw.PlannedBatch) -> dict[str, Any]:
        return {"items": [{"id": int(i), "code": checked[int(i)].body} for i in batch.modules]}

    with lw.WorkerPool(lw.PoolConfig(max_workers=workers)) as pool:
        started = time.perf_counter()
        summary = pool.run(batches, "check", request).wait()
        wall = time.perf_counter() - started
    assert summary.rows == items and summary.batches_failed == 0
    return {"items": items, "workers": workers, "batches": len(batches), "seconds": round(wall, 3),
            "items_per_s": round(items / wall), "sessions_opened": summary.sessions_opened}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {"simulated": True, "overhead": overhead(1000), "throughput": throughput(1000, 2)}
    print_report(report, args.json)


if __name__ == "__main__":
    main()
