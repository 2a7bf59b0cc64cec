"""``pool.run``: a plan's batches on the pool, concurrent, session-affine, retried, bisected, exactly once
(issue 9). Real workers of the mathlib-scale fixture: a poison module is its ``fail`` request field (a fault tied to
a module's content), a crash of an attempt is injected with ``leanworker.testing``."""

from __future__ import annotations

import dataclasses
import gc
import random
import threading
from pathlib import Path

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, MATHLIB, wait_for
from leanworker.testing import Fault, FaultPlan

IMPORT = (("import_ms", 100),)


def plan(modules: list[str], batch: int, imports: tuple[str, ...] = ("Mathlib",),
         mode: str = "shared") -> lw.ImportPlan:
    planner = lw.ImportPlanner(MATHLIB, imports, max_batch_modules=batch, options=IMPORT, mode=mode)
    return planner.plan([lw.WorkItem(m) for m in modules])


def two_key_plan(per_key: int = 12, batch: int = 3) -> list[lw.PlannedBatch]:
    left = plan([f"Left.M{i:02d}" for i in range(per_key)], batch, ("Left",)).batches
    right = plan([f"Right.M{i:02d}" for i in range(per_key)], batch, ("Right",)).batches
    return [*left, *right]


def pool(workers: int = 2, request_timeout: float = 20.0) -> lw.WorkerPool:
    worker = lw.WorkerConfig(startup_timeout=10, request_timeout=request_timeout, cancel_grace=0.5, kill_wait=3)
    return lw.WorkerPool(lw.PoolConfig(max_workers=workers, worker=worker))


def modules_of(results: list[lw.BatchResult]) -> list[str]:
    return sorted(m for r in results for m in r.modules)


def test_a_plan_runs_every_module_once_and_commits_its_rows() -> None:
    the_plan = plan([f"Mathlib.A{i:02d}" for i in range(10)], 4)
    with pool() as workers, workers.run(the_plan, "index") as run:
        results = list(run)
    assert modules_of(results) == sorted(m for b in the_plan.batches for m in b.modules)
    assert all(r.committed and r.error is None and r.attempts == 1 for r in results)
    assert sum(len(r.rows) for r in results) == run.summary.rows == 10 + 10 + (4 - 1) + (4 - 1) + (2 - 1)
    declarations = [row.payload["module"] for r in results for row in r.rows if row.stream == "declarations"]
    assert sorted(declarations) == modules_of(results)
    summary = run.summary
    assert summary is not None
    assert (summary.batches_total, summary.batches_committed, summary.batches_failed) == (3, 3, 0)
    assert summary.sessions_opened <= 2 and summary.retries == 0 and summary.quarantined == ()


def test_a_dict_request_is_merged_and_a_callable_builds_it() -> None:
    the_plan = plan(["Mathlib.X", "Mathlib.Y"], 1)
    with pool(1) as workers:
        results = list(workers.run(the_plan, "index", {"modules": ["ignored"], "row_delay_ms": 1}))
        assert modules_of(results) == ["Mathlib.X", "Mathlib.Y"] and all(r.committed for r in results)
        seen: list[tuple[str, ...]] = []

        def build(batch: lw.PlannedBatch) -> dict[str, object]:
            seen.append(batch.modules)
            return {"modules": list(batch.modules)}

        assert all(r.committed for r in workers.run(the_plan, "extract", build))
        assert sorted(seen) == [("Mathlib.X",), ("Mathlib.Y",)]


def test_batches_of_two_keys_run_at_the_same_time() -> None:
    with pool() as workers:
        results = list(workers.run(two_key_plan(per_key=4, batch=4), "index", {"row_delay_ms": 50}))
    left, right = (next(r for r in results if r.batch.key.imports == (name,)) for name in ("Left", "Right"))
    assert left.started_at < right.finished_at and right.started_at < left.finished_at, "the batches did not overlap"


def test_a_shuffled_multi_key_plan_opens_few_sessions() -> None:
    batches = [*two_key_plan(), *plan([f"Third.M{i}" for i in range(12)], 3, ("Third",)).batches]
    random.Random(7).shuffle(batches)
    with pool() as workers:
        run = workers.run(batches, "index")
        summary = run.wait()
    assert summary.batches_committed == len(batches) == 12
    assert summary.sessions_opened <= 3 + 2, summary


def test_a_crash_is_retried_on_a_fresh_worker_and_then_succeeds(tmp_path: Path) -> None:
    the_plan = plan(["Mathlib.A", "Mathlib.B", "Mathlib.C"], 3)
    output = tmp_path / "rows.jsonl"
    faults = FaultPlan([Fault("crash", nth=1, after_rows=5)])  # the first attempt crashes after 5 rows
    with pool(1) as workers:
        run = workers.run(the_plan, "index", output=str(output), faults=faults)
        results = list(run)
        snapshot = workers.snapshot()
    assert len(results) == 1 and results[0].committed and results[0].attempts == 2 and not results[0].injected
    assert results[0].modules == ("Mathlib.A", "Mathlib.B", "Mathlib.C")
    assert snapshot.restarts.get("crash") == 1
    assert run.summary is not None and run.summary.retries == 1 and [f.kind for f in run.summary.faults] == ["crash"]
    assert len(output.read_text().splitlines()) == len(results[0].rows), "the crashed attempt's rows: never written"


@pytest.mark.parametrize("fault", ["crash", "hang"])
def test_a_poison_module_is_quarantined_and_every_other_module_commits_once(fault: str) -> None:
    # A hang costs a request timeout per attempt: its variant bisects 4 modules without retries (3 timeouts); the
    # rule that a timeout is retried before the split is checked without processes in test_policy_run.py.
    hang = fault == "hang"
    modules = [f"Mathlib.P{i}" for i in range(4 if hang else 8)]
    poison = "Mathlib.P3" if hang else "Mathlib.P5"
    the_plan = plan(modules, 8)
    with pool(2, request_timeout=1.5 if hang else 20.0) as workers:
        run = workers.run(the_plan, "index", {"fail": {poison: fault}}, retries=0 if hang else 1)
        results = list(run)
    failed = [r for r in results if not r.committed]
    assert [r.modules for r in failed] == [(poison,)]
    assert isinstance(failed[0].error, lw.WorkerCrashed if fault == "crash" else lw.RequestTimeout)
    assert modules_of(results) == sorted(modules), "every module ends in exactly one result"
    assert run.summary is not None and run.summary.quarantined == (poison,)
    committed = [row.payload["module"] for r in results if r.committed for row in r.rows
                 if row.stream == "declarations"]
    assert sorted(committed) == sorted(set(modules) - {poison})


def test_a_command_error_is_the_capabilitys_answer_and_is_not_retried() -> None:
    the_plan = plan(["Mathlib.A", "Mathlib.B"], 2)
    with pool(1) as workers:
        run = workers.run(the_plan, "index", {"fail": {"Mathlib.B": "error"}}, retries=3)
        results = list(run)
    assert len(results) == 1 and not results[0].committed and results[0].attempts == 1
    assert isinstance(results[0].error, lw.CommandError) and results[0].error.code == "injected"
    assert run.summary is not None and run.summary.retries == 0 and run.summary.quarantined == ()


def test_cancelling_a_run_midway_leaves_no_worker_busy() -> None:
    batches = two_key_plan(per_key=8, batch=2)
    with pool() as workers:
        with workers.run(batches, "index", {"row_delay_ms": 40}) as run:
            first = next(run)
            assert first.committed
            run.cancel()
            rest = list(run)
        summary = run.summary
        assert summary is not None and summary.cancelled and summary.batches_cancelled > 0
        assert 1 + len(rest) + summary.batches_cancelled == len(batches)
        snapshot = workers.snapshot()
        assert snapshot.busy == 0 and snapshot.leases == 0


def test_leaving_the_with_block_early_cancels_the_run_and_ends_its_threads() -> None:
    before = set(run_threads())
    with pool() as workers:
        with workers.run(two_key_plan(per_key=6, batch=2), "index", {"row_delay_ms": 40}) as run:
            mine = set(run_threads()) - before
            next(run)
        assert run.summary is not None and run.summary.cancelled
        assert workers.snapshot().busy == 0
        assert len(mine) == 2 and ended(mine), "leaving the block left a runner thread behind"


# -- a run nobody reads any more: cancel() alone, a run dropped, the pool's shutdown ---------------------------------

MANY = plan([f"Mathlib.B{i:02d}" for i in range(24)], 1)  # 24 quick batches: far more than the result queue holds


def run_threads() -> list[threading.Thread]:
    """The runner threads of the runs alive now (a run names them leanworker-run-N)."""
    return [t for t in threading.enumerate() if t.name.startswith("leanworker-run-")]


def ended(threads: set[threading.Thread]) -> bool:
    return not any(t.is_alive() for t in threads)


def waits_for_its_reader(run: lw.PlanRun, runners: int = 2) -> bool:
    """Every runner holds a result it cannot hand over: the result queue (two per runner) is full, unread."""
    return run.progress.batches_done >= 3 * runners


def assert_free_for_the_next_plan(workers: lw.WorkerPool) -> None:
    assert wait_for(lambda: workers.snapshot().leases == 0, 30), "the run kept its workers"
    snapshot = workers.snapshot()
    assert snapshot.busy == 0 and snapshot.queue_depth == 0
    results = list(workers.run(plan(["Mathlib.Next0", "Mathlib.Next1"], 1), "index"))
    assert len(results) == 2 and all(r.committed for r in results)


def test_a_cancelled_run_nobody_reads_ends_every_thread_and_frees_its_workers() -> None:
    before = set(run_threads())
    with pool() as workers:
        run = workers.run(MANY, "index")
        mine = set(run_threads()) - before
        assert len(mine) == 2
        assert wait_for(lambda: waits_for_its_reader(run), 30)
        assert run.cancel() is None
        assert wait_for(lambda: ended(mine), 30), "a cancelled run's runner waits for a reader that never comes"
        assert set(run_threads()) - before == set()
        assert_free_for_the_next_plan(workers)
        results = list(run)  # a reader that comes after all: the results that were final, then the end
        summary = run.summary
        assert summary is not None and summary.cancelled
        assert len(results) + summary.batches_cancelled == len(MANY.batches)


@pytest.mark.parametrize("when", ["at_once", "once_it_waits_for_its_reader"])
def test_a_run_dropped_unread_is_cancelled_when_collected_and_ends_every_thread(when: str) -> None:
    before = set(run_threads())
    with pool() as workers:
        run = workers.run(MANY, "index")
        mine = set(run_threads()) - before
        assert len(mine) == 2
        if when != "at_once":
            assert wait_for(lambda: waits_for_its_reader(run), 30)
        del run  # no cancel(), no with block, never iterated
        gc.collect()
        assert wait_for(lambda: ended(mine), 30), "a dropped run's runners run on for a reader that is gone"
        assert_free_for_the_next_plan(workers)


def test_shutting_down_the_pool_ends_a_run_nobody_reads() -> None:
    before = set(run_threads())
    workers = pool()
    try:
        run = workers.run(MANY, "index")
        mine = set(run_threads()) - before
        assert wait_for(lambda: waits_for_its_reader(run), 30)
    finally:
        workers.shutdown()
    assert ended(mine), "the pool shut down under a runner that waits for its reader"
    results = list(run)  # what was final stays readable
    summary = run.summary
    assert summary is not None and summary.cancelled
    assert len(results) + summary.batches_cancelled == len(MANY.batches)


def test_a_cancelled_run_stops_waiting_for_a_worker() -> None:
    before = set(run_threads())
    with pool(1) as workers:
        with workers.lease(MANY.batches[0].key):  # the pool's one worker is held elsewhere
            run = workers.run(MANY, "index")
            mine = set(run_threads()) - before
            assert wait_for(lambda: workers.snapshot().queue_depth == 1, 30)  # its runner waits in the queue
            run.cancel()
            assert wait_for(lambda: ended(mine), 20), "a cancelled run's runner waited on for a worker"
            assert workers.snapshot().queue_depth == 0
        summary = run.wait()
        assert summary.cancelled and summary.batches_cancelled == len(MANY.batches)
        assert_free_for_the_next_plan(workers)


# cancel() must not wait for the worker: with a worker that ignores the cancel, the request is still running (until
# its cancel_grace, long next to one statement) when cancel() has returned.
IGNORING = dataclasses.replace(FAST, cancel_grace=1.5)


def test_run_cancel_returns_while_workers_that_ignore_it_still_run() -> None:
    batches = [lw.PlannedBatch(lw.SessionKey(FAULTS), (f"M{i}",), f"hang{i}") for i in range(2)]
    with lw.WorkerPool(lw.PoolConfig(max_workers=2, worker=IGNORING)) as workers:
        run = workers.run(batches, "hang", {"ignore_cancel": True})
        assert wait_for(lambda: workers.snapshot().busy == 2, 30)
        assert run.cancel() is None
        assert run.summary is None and run.progress.batches_done == 0, "cancel() waited for the run"
        summary = run.wait()
        assert summary.cancelled and summary.batches_committed == 0
        assert workers.snapshot().busy == 0


def test_progress_reports_modules_rows_and_an_estimate() -> None:
    with pool() as workers:
        run = workers.run(two_key_plan(per_key=4, batch=2), "index")
        assert run.progress.modules_total == 8
        next(run)
        progress = run.progress
        assert progress.batches_done >= 1 and progress.modules_done >= 2 and progress.rows > 0
        assert progress.eta_s is not None
        run.wait()
        assert run.progress.modules_done == 8 and run.progress.eta_s == 0.0
