"""Discovery and planning time for a mathlib-shaped tree: ``python -m bench.planner [--json]``.

Builds the tree from shared/data/mathlib_modules.txt (7,041 modules; 7,039 stub Mathlib files) in a temporary
directory, then times ``discover_lake_project`` and ``ImportPlanner.plan`` (best of 5, plus the median).
Budget (README.md, Benchmarks): discover + plan under 1 s together.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import leanworker as lw
from leanworker.fixtures.mathlib_tree import build_mathlib_tree, find_module_list, read_module_list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    module_list = find_module_list()
    if module_list is None:
        raise SystemExit("shared/data/mathlib_modules.txt not found (set LEANWORKER_MODULE_LIST)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mathlib"
        written = build_mathlib_tree(root, read_module_list(module_list))
        discover, plan_shared, plan_header = [], [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            project = lw.discover_lake_project(root)
            middle = time.perf_counter()
            plan = lw.ImportPlanner("leanworker.fixtures.mathlib_scale:capability", ("Mathlib",),
                                    max_batch_modules=512).plan(project)
            end = time.perf_counter()
            lw.ImportPlanner("leanworker.fixtures.mathlib_scale:capability", mode="per_header").plan(project)
            plan_header.append(time.perf_counter() - end)
            discover.append(middle - start)
            plan_shared.append(end - middle)
    result = {
        "modules_written": len(written),
        "modules_found": len(project.modules),
        "batches": len(plan.batches),
        "discover_s": {"best": round(min(discover), 3), "median": round(statistics.median(discover), 3)},
        "plan_shared_s": {"best": round(min(plan_shared), 3), "median": round(statistics.median(plan_shared), 3)},
        "plan_per_header_s": {"best": round(min(plan_header), 3), "median": round(statistics.median(plan_header), 3)},
        "discover_plus_plan_median_s": round(statistics.median(d + p for d, p in zip(discover, plan_shared)), 3),
        "budget_s": 1.0,
    }
    print(json.dumps(result, indent=None if not args.json else 2))


if __name__ == "__main__":
    main()
