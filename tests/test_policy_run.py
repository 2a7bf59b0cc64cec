"""Running a plan, with its places in memory instead of worker processes (docs/semantics.md, Running a plan): the
retry rule written with the error groups, bisection, the schedule's affinity. The end-to-end tests over real
workers are in test_plan_run.py (and test_scaleout.py on Ray)."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest

import leanworker as lw
from conftest import wait_for
from leanworker.actors.run import Attempt, PlanRun, Requeue
from leanworker.actors.run.result_queue import ResultQueue
from leanworker.actors.run.schedule import Schedule, Task

MATHLIB = "leanworker.fixtures.mathlib_scale:capability"


class Place:
    """One runner's place in memory: a module named in ``poison`` fails every attempt with its error."""

    def __init__(self, poison: dict[str, lw.LeanWorkerError], attempts: list[tuple[str, ...]]) -> None:
        self.poison = poison
        self.attempts = attempts
        self.warm_key: lw.SessionKey | None = None

    def attempt(self, key: lw.SessionKey, command: str, request: Any, cancelled: threading.Event) -> Attempt:
        modules = tuple(request["modules"])
        self.attempts.append(modules)
        self.warm_key = key
        for module in modules:
            if module in self.poison:
                raise self.poison[module]
        rows = tuple(lw.Row("declarations", i, {"module": m}) for i, m in enumerate(modules))
        return rows, lw.StreamSummary(len(rows), {"declarations": len(rows)}, 0.0, None)

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class Backend:
    def __init__(self, poison: dict[str, lw.LeanWorkerError], concurrency: int = 1) -> None:
        self.concurrency = concurrency
        self.attempts: list[tuple[str, ...]] = []
        self.poison = poison

    def place(self, index: int) -> Place:
        return Place(self.poison, self.attempts)

    def sessions_opened(self) -> int:
        return 0


def run(modules: list[str], poison: dict[str, lw.LeanWorkerError], retries: int = 1,
        backend: Backend | None = None) -> tuple[list[lw.BatchResult], lw.RunSummary, Backend]:
    backend = backend or Backend(poison)
    planner = lw.ImportPlanner(MATHLIB, ("Mathlib",), max_batch_modules=len(modules))
    with PlanRun(backend, planner.plan([lw.WorkItem(m) for m in modules]), "index", retries=retries) as plan_run:
        results = list(plan_run)
    assert plan_run.summary is not None
    return results, plan_run.summary, backend


LOST = [lw.WorkerCrashed("crashed", exit_code=1), lw.RequestTimeout("timed out"),
        lw.MemoryLimitExceeded("over", rss_mib=900.0, limit_mib=800), lw.ProtocolError("garbage"),
        lw.HandshakeError("no hello"), lw.NodeLost("node gone", node_id="n1")]


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
def test_faults_a_worker_lost_attempt_is_retried_then_bisected_and_the_poison_module_quarantined(
        error: lw.LeanWorkerError) -> None:
    modules = [f"M.P{i}" for i in range(4)]
    results, summary, backend = run(modules, {"M.P3": error}, retries=1)
    failed = [r for r in results if not r.committed]
    assert [r.modules for r in failed] == [("M.P3",)] and failed[0].error is error and failed[0].attempts == 2
    assert sorted(m for r in results if r.committed for m in r.modules) == ["M.P0", "M.P1", "M.P2"]
    assert summary.quarantined == ("M.P3",)
    assert backend.attempts[:2] == [tuple(modules), tuple(modules)], "the whole batch is retried before a split"
    assert {("M.P0", "M.P1"), ("M.P2", "M.P3")} <= set(backend.attempts), "then it is split in halves"


@pytest.mark.parametrize("error", [lw.CommandError("injected", "no"), lw.QueueTimeout("queue"),
                                   lw.MemoryBudgetExceeded("budget")], ids=lambda e: type(e).__name__)
def test_faults_an_error_that_is_not_worker_lost_is_never_retried_nor_split(error: lw.LeanWorkerError) -> None:
    results, summary, backend = run(["M.P0", "M.P1"], {"M.P1": error}, retries=3)
    assert len(results) == 1 and not results[0].committed and results[0].error is error
    assert results[0].attempts == 1 and backend.attempts == [("M.P0", "M.P1")]
    assert summary.retries == 0 and summary.quarantined == ()


def test_rows_of_a_failed_attempt_are_never_delivered_as_committed() -> None:
    results, summary, _ = run(["M.P0", "M.P1"], {"M.P1": lw.WorkerCrashed("x")}, retries=0)
    for result in results:
        assert result.committed == bool(result.rows) == (result.error is None)
    assert summary.rows == sum(len(r.rows) for r in results)


def batch(key: lw.SessionKey, size: int, order: int) -> Task:
    planned = lw.PlannedBatch(key, tuple(f"{key.imports[0]}.B{order}.M{i}" for i in range(size)), f"fp{order}")
    return Task(planned, planned.modules, order=order)


def test_concurrency_and_affinity_a_runner_keeps_its_warm_key() -> None:
    a, b = lw.SessionKey(MATHLIB, imports=("A",)), lw.SessionKey(MATHLIB, imports=("B",))
    schedule = Schedule([batch(a, 2, 0), batch(b, 2, 1), batch(a, 2, 2), batch(b, 2, 3)])
    first = schedule.take(b)
    assert first is not None and first.batch.key == b
    schedule.finished(first)
    again = schedule.take(b)
    assert again is not None and again.batch.key == b, "a runner holding a warm B takes B's next batch"


def test_concurrency_and_affinity_a_runner_that_needs_a_new_key_takes_one_no_other_runner_is_on() -> None:
    a, b = lw.SessionKey(MATHLIB, imports=("A",)), lw.SessionKey(MATHLIB, imports=("B",))
    schedule = Schedule([batch(a, 3, 0), batch(a, 3, 1), batch(b, 1, 2)])
    first = schedule.take(None)
    assert first is not None and first.batch.key == a, "biggest batch first"
    second = schedule.take(None)
    assert second is not None and second.batch.key == b, "the key no other runner is on"


def test_concurrency_without_affinity_runners_take_batches_in_plan_order() -> None:
    a, b = lw.SessionKey(MATHLIB, imports=("A",)), lw.SessionKey(MATHLIB, imports=("B",))
    schedule = Schedule([batch(a, 1, 0), batch(b, 1, 1), batch(a, 1, 2)], affinity=False)
    taken = [schedule.take(a) for _ in range(3)]
    assert [t.order for t in taken if t is not None] == [0, 1, 2]


def test_cancel_ends_the_schedule_and_returns_what_was_pending() -> None:
    a = lw.SessionKey(MATHLIB, imports=("A",))
    schedule = Schedule([batch(a, 1, 0), batch(a, 1, 1)])
    running = schedule.take(a)
    assert running is not None
    assert [t.order for t in schedule.cancel()] == [1 - running.order]
    assert schedule.take(a) is None


def test_cancel_a_task_that_comes_back_after_the_cancel_is_cancelled_not_left_pending() -> None:
    a = lw.SessionKey(MATHLIB, imports=("A",))
    schedule = Schedule([batch(a, 2, 0), batch(a, 2, 1)])
    running = schedule.take(a)
    assert running is not None and len(schedule.cancel()) == 1
    halves = [Task(running.batch, running.modules[:1], order=0), Task(running.batch, running.modules[1:], order=0)]
    assert schedule.finished(running, requeue=halves) == halves, "nobody would ever take them"
    assert schedule.over and schedule.abandon() == []


def test_a_runner_waits_while_another_runs_what_may_come_back_and_the_run_is_over_when_nothing_can() -> None:
    a = lw.SessionKey(MATHLIB, imports=("A",))
    schedule = Schedule([batch(a, 2, 0)])
    running = schedule.take(None)
    assert running is not None
    assert schedule.take(None) is None and not schedule.over, "wait: a failure may requeue its halves"
    halves = [Task(running.batch, running.modules[:1], order=0), Task(running.batch, running.modules[1:], order=0)]
    schedule.finished(running, requeue=halves)
    assert schedule.take(a) is not None and schedule.take(a) is not None


# -- cancel: once a run is cancelled no runner waits for its reader (result_queue.py) -----------------------------

def test_cancel_a_runner_waits_for_room_until_the_run_is_cancelled_and_then_never() -> None:
    results: ResultQueue[int] = ResultQueue(2)
    results.put(1)
    results.put(2)
    waiting = threading.Thread(target=results.put, args=(3,), daemon=True)
    waiting.start()
    waiting.join(0.05)
    assert waiting.is_alive(), "a result waits for room while the run goes on"
    results.cancel()
    waiting.join(10)
    assert not waiting.is_alive(), "a cancel frees a runner that waits for room"
    results.put(4)  # past the bound, at once
    results.end()  # the end never waits for room
    assert [results.get() for _ in range(4)] == [1, 2, 3, 4], "a reader that reads on gets every final result"
    for _ in range(2):
        with pytest.raises(StopIteration):  # and then the end, as often as it asks
            results.get()


def test_cancel_a_dropped_queue_throws_results_away_and_poll_wakes_its_reader_once_per_arrival() -> None:
    results: ResultQueue[int] = ResultQueue(1)
    woken: list[str] = []
    assert results.poll(lambda: woken.append("a")) is None
    results.put(1)
    assert woken == ["a"] and results.poll(lambda: woken.append("b")) == 1
    assert results.poll(lambda: woken.append("c")) is None
    results.drop()
    results.put(2)
    results.put(3)  # nobody will read: thrown away, without waiting
    assert woken == ["a"]
    results.end()
    assert woken == ["a", "c"]
    with pytest.raises(StopIteration):
        results.poll(lambda: woken.append("d"))


def many(count: int) -> lw.ImportPlan:
    planner = lw.ImportPlanner(MATHLIB, ("Mathlib",), max_batch_modules=1)
    return planner.plan([lw.WorkItem(f"M.P{i:02d}") for i in range(count)])


def waits_for_its_reader(plan_run: PlanRun) -> bool:
    """Both runners hold a result they cannot hand over: the queue (two per runner) is full, unread."""
    return plan_run.progress.batches_done >= 6


def run_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("leanworker-run-")}


def test_cancel_a_run_nobody_reads_ends_its_threads_and_keeps_its_final_results_for_a_late_reader() -> None:
    plan_run = PlanRun(Backend({}, concurrency=2), many(20), "index")
    assert wait_for(lambda: waits_for_its_reader(plan_run), 20)
    assert plan_run.cancel() is None
    assert plan_run.join(20), "a cancelled run's runner waits for a reader"
    results = list(plan_run)
    summary = plan_run.summary
    assert summary is not None and summary.cancelled
    assert (len(results), summary.batches_committed, summary.batches_cancelled) == (6, 6, 14)


def test_cancel_a_run_collected_before_its_end_is_abandoned_and_its_threads_end() -> None:
    before = run_threads()
    plan_run = PlanRun(Backend({}, concurrency=2), many(20), "index")
    mine = run_threads() - before
    assert len(mine) == 2 and wait_for(lambda: waits_for_its_reader(plan_run), 20)
    del plan_run  # never read, never cancelled
    gc.collect()
    for thread in mine:
        thread.join(20)
        assert not thread.is_alive(), "a dropped run's runner waits for a reader that is gone"


class RequeuedOnCancel(Place):
    """Its attempt runs until the run is cancelled, and then is not the batch's failure (``Requeue``)."""

    def attempt(self, key: lw.SessionKey, command: str, request: Any, cancelled: threading.Event) -> Attempt:
        self.attempts.append(tuple(request["modules"]))
        cancelled.wait(20)
        raise Requeue()


class RequeueBackend(Backend):
    def place(self, index: int) -> Place:
        return RequeuedOnCancel(self.poison, self.attempts)


def test_cancel_a_batch_that_comes_back_after_the_cancel_is_cancelled_not_failed_as_unrunnable() -> None:
    backend = RequeueBackend({})
    with PlanRun(backend, many(3), "index") as plan_run:
        assert wait_for(lambda: backend.attempts, 20)
        plan_run.cancel()
        assert list(plan_run) == [], "no batch was left for 'no node is left' to fail"
    summary = plan_run.summary
    assert summary is not None and summary.batches_cancelled == 3 and summary.batches_failed == 0


class EndedByTheCancel(Place):
    """Its attempt runs until the run is cancelled, then ends with ``error`` (what the cancel, or the pool's
    shutdown that follows it, makes of a request in flight or a lease wait)."""

    error: lw.LeanWorkerError

    def attempt(self, key: lw.SessionKey, command: str, request: Any, cancelled: threading.Event) -> Attempt:
        self.attempts.append(tuple(request["modules"]))
        cancelled.wait(20)
        raise self.error


@pytest.mark.parametrize("error", [lw.Cancelled("cancelled"), lw.PoolClosed("the pool is shut down"),
                                   lw.WorkerClosed("shut down"), lw.StaleLease("released")],
                         ids=lambda e: type(e).__name__)
def test_cancel_an_attempt_ended_by_the_cancel_or_the_shutdown_is_cancelled_not_failed(
        error: lw.LeanWorkerError) -> None:
    attempts: list[tuple[str, ...]] = []

    class Ended(Backend):
        def place(self, index: int) -> Place:
            place = EndedByTheCancel({}, attempts)
            place.error = error
            return place

    with PlanRun(Ended({}), many(3), "index") as plan_run:
        assert wait_for(lambda: attempts, 20)
        plan_run.cancel()
        assert list(plan_run) == []
    summary = plan_run.summary
    assert summary is not None and summary.batches_failed == 0 and summary.batches_cancelled == 3


def test_cancel_a_command_error_that_ends_an_attempt_in_flight_is_still_its_result() -> None:
    attempts: list[tuple[str, ...]] = []

    class Answered(Backend):
        def place(self, index: int) -> Place:
            place = EndedByTheCancel({}, attempts)
            place.error = lw.CommandError("bad_input", "the request was not a module list")
            return place

    with PlanRun(Answered({}), many(3), "index") as plan_run:
        assert wait_for(lambda: attempts, 20)
        plan_run.cancel()
        results = list(plan_run)
    summary = plan_run.summary
    assert [type(r.error) for r in results] == [lw.CommandError] and summary is not None
    assert summary.batches_failed == 1 and summary.batches_cancelled == 2
