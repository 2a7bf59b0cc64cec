"""Chaos runs: ``pool.run(..., faults=plan)`` decides each attempt's fault at its admission, so a run tells modules
lost to injected faults from real poison modules, and its output stays exactly once (issue 22; docs/testing.md,
Chaos runs). On Ray (``node_lost``): test_scaleout.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import leanworker as lw
from conftest import MATHLIB
from leanworker.testing import Fault, FaultPlan

IMPORT = (("import_ms", 20),)


def pool(workers: int = 1) -> lw.WorkerPool:
    worker = lw.WorkerConfig(startup_timeout=10, request_timeout=10, cancel_grace=0.5, kill_wait=3)
    return lw.WorkerPool(lw.PoolConfig(max_workers=workers, worker=worker))


def batches(name: str, modules: list[str]) -> list[lw.PlannedBatch]:
    planner = lw.ImportPlanner(MATHLIB, (name,), max_batch_modules=len(modules), options=IMPORT)
    return list(planner.plan([lw.WorkItem(m) for m in modules]).batches)


def test_modules_lost_to_injected_faults_are_told_apart_from_a_real_poison_module(tmp_path: Path) -> None:
    left, right = batches("Left", ["Left.Good", "Left.Poison"]), batches("Right", ["Right.A", "Right.B"])
    faults = FaultPlan([Fault("crash", key=right[0].key, after_rows=1)])  # every request of the Right key
    output = tmp_path / "rows.jsonl"
    with pool(2) as workers:
        run = workers.run([*left, *right], "index", {"fail": {"Left.Poison": "crash"}}, retries=0,
                          output=str(output), faults=faults)
        results = list(run)
    summary = run.summary
    assert summary is not None
    assert summary.quarantined == ("Left.Poison",), "the real poison module"
    assert sorted(summary.injected) == ["Right.A", "Right.B"], "lost to the plan's crashes, not poison"
    by_module = {r.modules: r for r in results}
    assert by_module[("Left.Good",)].committed and not by_module[("Left.Poison",)].injected
    assert by_module[("Right.A",)].injected and isinstance(by_module[("Right.A",)].error, lw.WorkerCrashed)
    # Right: the batch, then each half after the split; every attempt carried its crash, recorded with its worker
    assert [(f.kind, f.key) for f in summary.faults] == [("crash", right[0].key)] * 3 == \
        [(f.kind, f.key) for f in faults.fired()]
    assert all(f.pid is not None for f in summary.faults)
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted({w["payload"]["module"] for w in written if w["stream"] == "declarations"}) == ["Left.Good"]
    assert len(written) == len({(w["module_set"], w["stream"], w["seq"]) for w in written}), "exactly once"


def test_a_plan_installed_everywhere_reaches_a_run_started_without_faults() -> None:
    plan = FaultPlan([Fault("crash", nth=1)])
    with plan.everywhere(), pool() as workers:
        run = workers.run(batches("Mathlib", ["Mathlib.X"]), "index", retries=1)
        assert all(r.committed for r in run)
    assert run.summary is not None and run.summary.retries == 1
    assert [f.kind for f in run.summary.faults] == ["crash"]


def test_the_asyncio_runner_takes_the_same_faults() -> None:
    plan = FaultPlan([Fault("crash", key=MATHLIB)])  # every attempt of the key crashes: everything is lost to it

    async def main() -> lw.RunSummary | None:
        config = lw.PoolConfig(max_workers=1, worker=lw.WorkerConfig(request_timeout=10, kill_wait=3))
        async with lw.AsyncWorkerPool(config) as pool:
            async with pool.run(batches("Mathlib", ["Mathlib.A", "Mathlib.B"]), "index", retries=0,
                                faults=plan) as run:
                results = [result async for result in run]
        assert all(r.injected and isinstance(r.error, lw.WorkerCrashed) for r in results)
        return run.summary

    summary = asyncio.run(main())
    assert summary is not None and sorted(summary.injected) == ["Mathlib.A", "Mathlib.B"]
    assert summary.quarantined == () and [f.kind for f in summary.faults] == ["crash"] * 3


def test_a_seed_loses_the_same_modules_to_the_same_faults_however_many_workers_run_the_plan() -> None:
    # The runners admit attempts in an order timing decides; the faults follow the attempts, not that order, so a
    # failing chaos run replays from its seed on any machine (a failed session open included).
    planner = lw.ImportPlanner(MATHLIB, ("Mathlib",), max_batch_modules=1, options=IMPORT)
    the_plan = planner.plan([lw.WorkItem(f"Mathlib.M{n:02d}") for n in range(12)])
    kinds = ["crash", "garbage", "memory", "slow", "session_fail"]  # no hang: it would wait for the deadline

    def rehearse(workers: int) -> tuple[object, ...]:
        faults = FaultPlan.chaos(0.3, seed=4, kinds=kinds)
        with pool(workers) as workers_pool:
            run = workers_pool.run(the_plan, "index", retries=1, faults=faults)
            results = sorted((r.modules, r.committed, r.injected, r.attempts) for r in run)
        faults.uninstall()
        assert run.summary is not None
        fired = sorted((f.kind, f.command) for f in run.summary.faults)
        return results, fired, sorted(run.summary.injected)

    alone, together = rehearse(1), rehearse(3)
    assert together == alone
    assert {kind for kind, _ in alone[1]} >= {"crash", "session_fail"} and alone[2], alone
