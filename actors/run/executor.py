"""The executor of ``pool.run(plan, command)``: the planner's batches run on the pool, concurrently,
session-affine, retried, bisected, and committed exactly once. docs/semantics.md, Running a plan, states the rules.

The executor sits above the pool and takes leases like any caller (admission stays in the pool). It runs
``concurrency`` runner threads, each with one place (places.py: a lease on a local pool, or a slot of a Ray node
agent); which batch a free runner takes is the schedule's (schedule.py); its results go to the reader through a
queue that no runner waits on once the run is cancelled (result_queue.py). The caller holds a ``PlanRun``
(plan_run.py), never the executor: the runner threads reference only the executor, so a run its caller drops can
be collected, and is then abandoned.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from leanworker.actors.core import locks
from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.interruptible import wait_slice
from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.run.faults import FaultSource, ambient_faults
from leanworker.actors.run.journal import OutputJournal
from leanworker.actors.run.places import Place, PlaceGone, Requeue, RunBackend
from leanworker.actors.run.result_queue import ResultQueue
from leanworker.actors.run.results import BatchResult, RunProgress, RunSummary
from leanworker.actors.run.runner_queue import RunnerQueue
from leanworker.actors.run.schedule import Schedule, Task
from leanworker.errors import Cancelled, LeanWorkerError, NodeLost, StaleLease, WorkerClosed, WorkerLost
from leanworker.planner.plan import ImportPlan, PlannedBatch

RequestSpec = dict[str, Any] | Callable[[PlannedBatch], Any] | None
# What a run's cancel, and the shutdown that may follow it, make of an attempt in flight or a lease wait: once the run
# is cancelled, an attempt ending so is cancelled, not the batch's failure (a CommandError is still its result).
ENDED_BY_A_CANCEL = (Cancelled, WorkerClosed, StaleLease)


class PlanExecutor:
    """A running plan's runner threads and its state; its results go to ``results`` (read by a ``PlanRun``)."""

    def __init__(self, backend: RunBackend, plan: ImportPlan | Iterable[PlannedBatch], command: str,
                 request: RequestSpec = None, *, retries: int = 1, output: str | None = None,
                 resume: bool = False, affinity: bool = True, tracer: TraceSink | None = None,
                 faults: FaultSource | None = None, node_faults: bool = False) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if faults is not None and not isinstance(faults, FaultSource):
            raise TypeError(f"faults must be a fault plan (leanworker.testing.FaultPlan), got {faults!r}")
        self._backend = backend
        self._faults = faults if faults is not None else ambient_faults()
        self._node_faults = node_faults
        self._faults_before = len(self._faults.fired()) if self._faults is not None else 0
        self._run_keys: dict[SessionKey, SessionKey] = {}  # the key an attempt ran on -> its batch's key
        self._command = command
        self._request = request
        self._retries = retries
        self.batches = tuple(plan.batches if isinstance(plan, ImportPlan) else plan)
        fingerprint = plan.fingerprint if isinstance(plan, ImportPlan) else hashlib.sha256(
            "\n".join(b.fingerprint for b in self.batches).encode()).hexdigest()
        self._journal = OutputJournal(output, fingerprint, resume) if output is not None else None
        tasks, self._skipped_modules, self._skipped = self._tasks()
        self._modules_total = sum(len(b.modules) for b in self.batches)
        self._lock = locks.lock("run")
        self._done_modules = self._skipped_modules
        self._committed = self._failed = self._rows = self._retry_count = self._cancelled_tasks = 0
        self._quarantined: list[str] = []
        self._injected: list[str] = []
        self._errors: list[BaseException] = []
        self._places: dict[int, Place] = {}
        self._cancelled = threading.Event()
        self._schedule = RunnerQueue(Schedule(tasks, affinity=affinity))
        self.results: ResultQueue[BatchResult] = ResultQueue(2 * max(1, backend.concurrency))
        self._summary: RunSummary | None = None
        self._started = time.monotonic()
        self._tracer = tracer
        self._name = f"run {fingerprint[:8]}"
        if tracer is not None:  # the timeline's stage bands and lane labels
            tracer.record("stage_start", "run", name=self._name)
        runners = max(1, min(backend.concurrency, len(tasks)))
        self._live_runners = runners
        # Each runner runs in a copy of the caller's context (contextvars), as asyncio.to_thread does: what the
        # caller's context holds (an OpenTelemetry span, for one) is where the run's leases and requests are made.
        self._threads = [threading.Thread(target=contextvars.copy_context().run, args=(self._runner, i),
                                          name=f"leanworker-run-{i}", daemon=True) for i in range(runners)]
        for thread in self._threads:
            thread.start()

    def _tasks(self) -> tuple[list[Task], int, int]:
        """Tasks for what is not committed yet; modules and batches skipped because an earlier run committed them."""
        committed = self._journal.committed if self._journal is not None else {}
        tasks: list[Task] = []
        skipped_modules = skipped_batches = 0
        for order, batch in enumerate(self.batches):
            done = committed.get(batch.fingerprint, set())
            left = tuple(m for m in batch.modules if m not in done)
            skipped_modules += len(batch.modules) - len(left)
            if left:
                tasks.append(Task(batch, left, order=order))
            else:
                skipped_batches += 1
        return tasks, skipped_modules, skipped_batches

    # -- the runners ---------------------------------------------------------------------------------------------

    def _runner(self, index: int) -> None:
        place: Place | None = None
        try:
            place = self._backend.place(index)
            self._places[index] = place
            while True:
                warm = place.warm_key
                task = self._schedule.take(self._run_keys.get(warm, warm) if warm is not None else None)
                if task is None:
                    return
                self._attempt(place, task)
        except PlaceGone:
            pass  # its node is gone: the other runners go on (the last one fails what nobody can run)
        except BaseException as exc:  # a bug: end the run with it rather than hang
            self._errors.append(exc)
            self.cancel()
        finally:
            self._places.pop(index, None)
            if place is not None:
                place.close()
            with self._lock:
                self._live_runners -= 1
                last = self._live_runners == 0
            if last:
                self._finish_run()

    def _attempt(self, place: Place, task: Task) -> None:
        """Run ``task`` once on ``place`` and settle it: commit, fail, retry or bisect."""
        started = time.monotonic()
        key, request, fault = task.batch.key, self._request_for(task), None
        if self._faults is not None:  # decided here, at the attempt's admission (faults.py)
            faulted = self._faults.attempt(key, self._command, request, remote=self._node_faults)
            key, request, fault = faulted.key, faulted.request, faulted.fault
            self._run_keys[key] = task.batch.key
        try:
            rows, summary = place.attempt(key, self._command, request, self._cancelled)
        except Requeue:  # not this batch's failure: run it again without counting an attempt
            self._finished(task, requeue=[task])
            return
        except PlaceGone:
            self._finished(task, requeue=[task])
            raise
        except WorkerLost as exc:  # the same request may succeed on a fresh worker: retry, then bisect
            self._retry_or_split(task, exc, started, self._explained(fault, exc))
            return
        except LeanWorkerError as exc:  # the capability's answer (CommandError), or the pool's
            if self._cancelled.is_set() and isinstance(exc, ENDED_BY_A_CANCEL):
                self._finished_cancelled(task)
                return
            injected = self._explained(fault, exc)
            if injected:
                with self._lock:
                    self._injected.extend(task.modules)
            self._finish(task, self._failed_result(task, exc, started, injected))
            return
        if self._cancelled.is_set() and summary is None:
            self._finished_cancelled(task)
            return
        if self._journal is not None:
            self._journal.commit(task.batch.fingerprint, task.modules, rows)
        self._finish(task, BatchResult(task.batch, task.modules, True, rows, summary, None, task.attempts + 1,
                                       started, time.monotonic()))

    def _explained(self, fault: Any, error: LeanWorkerError) -> bool:
        return self._faults is not None and self._faults.explains(fault, error)

    def _request_for(self, task: Task) -> Any:
        request = self._request
        if callable(request):
            return request(dataclasses.replace(task.batch, modules=task.modules))
        body: dict[str, Any] = dict(request) if isinstance(request, dict) else {}
        body["modules"] = list(task.modules)
        return body

    def _retry_or_split(self, task: Task, error: LeanWorkerError, started: float, injected: bool) -> None:
        if self._cancelled.is_set():
            self._finished_cancelled(task)
            return
        attempts = task.attempts + 1
        if attempts <= self._retries:
            with self._lock:
                self._retry_count += 1
            self._finished(task, requeue=[Task(task.batch, task.modules, attempts, task.order)])
        elif len(task.modules) > 1:
            half = len(task.modules) // 2
            parts = [Task(task.batch, task.modules[:half], order=task.order),
                     Task(task.batch, task.modules[half:], order=task.order)]
            self._finished(task, requeue=parts)
        else:
            failed = BatchResult(task.batch, task.modules, False, (), None, error, attempts, started,
                                 time.monotonic(), injected)
            with self._lock:
                (self._injected if injected else self._quarantined).extend(task.modules)
            self._finish(task, failed)

    def _failed_result(self, task: Task, error: LeanWorkerError, started: float, injected: bool) -> BatchResult:
        return BatchResult(task.batch, task.modules, False, (), None, error, task.attempts + 1, started,
                           time.monotonic(), injected)

    def _finished(self, task: Task, *, requeue: list[Task]) -> None:
        """``task`` is no longer running and ``requeue`` goes back to the schedule, or, if a cancel came first, is
        counted cancelled (nobody would ever take it)."""
        dropped = self._schedule.finished(task, requeue=requeue)
        if dropped:
            with self._lock:
                self._cancelled_tasks += len(dropped)

    def _finished_cancelled(self, task: Task) -> None:
        self._schedule.finished(task)
        with self._lock:
            self._cancelled_tasks += 1

    def _finish(self, task: Task, result: BatchResult) -> None:
        with self._lock:
            self._done_modules += len(result.modules)
            if result.committed:
                self._committed += 1
                self._rows += len(result.rows)
            else:
                self._failed += 1
        self.results.put(result)  # waits for room unless the run is cancelled
        self._schedule.finished(task)

    def _finish_run(self) -> None:
        lost = NodeLost("no node is left to run this batch: every runner's node was lost")
        for task in self._schedule.abandon():  # only when every place is gone with work left
            now = time.monotonic()
            self._finish_unrun(task, BatchResult(task.batch, task.modules, False, (), None, lost,
                                                 task.attempts, now, now))
        if self._journal is not None:
            self._journal.close()
        sessions_opened = self._backend.sessions_opened()  # asks the pool (or Ray): under none of the run's locks
        with self._lock:
            self._summary = RunSummary(
                batches_total=len(self.batches), batches_committed=self._committed, batches_failed=self._failed,
                batches_skipped=self._skipped, rows=self._rows,
                sessions_opened=sessions_opened, retries=self._retry_count,
                quarantined=tuple(self._quarantined), elapsed=round(time.monotonic() - self._started, 3),
                batches_cancelled=self._cancelled_tasks, cancelled=self._cancelled.is_set(),
                injected=tuple(self._injected), faults=self._faults_fired())
        if self._tracer is not None:
            self._tracer.record("stage_end", "run", name=self._name)
        self.results.end()

    def _faults_fired(self) -> tuple[Any, ...]:
        return tuple(self._faults.fired()[self._faults_before:]) if self._faults is not None else ()

    def _finish_unrun(self, task: Task, result: BatchResult) -> None:
        with self._lock:
            self._done_modules += len(result.modules)
            self._failed += 1
        self.results.put(result)

    # -- what the run's handle (plan_run.py) asks -----------------------------------------------------------------

    @property
    def error(self) -> BaseException | None:
        """The bug that ended the run, raised to the reader after the last result (None if none)."""
        return self._errors[0] if self._errors else None

    def cancel(self) -> None:
        """Cancel what still runs; results not yet final are dropped (``summary.batches_cancelled``). Returns at
        once: the requests are cancelled cooperatively, a runner waiting for a lease stops waiting, and no runner
        waits for the reader any more."""
        self._cancelled.set()
        self.results.cancel()
        left = self._schedule.cancel()
        with self._lock:
            self._cancelled_tasks += len(left)
        for place in list(self._places.values()):
            place.cancel()

    def abandon(self) -> None:
        """Cancel, for a reader that is gone for good (its ``PlanRun`` collected): the results are thrown away."""
        self.results.drop()
        self.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every runner thread has ended, at most ``timeout`` seconds in all; True if they have. A main
        thread waits in slices, so a signal handler runs meanwhile (actors/core/interruptible.py)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        others = [t for t in self._threads if t is not threading.current_thread()]
        for thread in others:
            while thread.is_alive():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                thread.join(wait_slice(remaining))
        return True

    @property
    def summary(self) -> RunSummary | None:
        """The run's :class:`RunSummary` once it has ended (None before)."""
        return self._summary

    @property
    def progress(self) -> RunProgress:
        elapsed = time.monotonic() - self._started
        with self._lock:
            done, failures = self._committed + self._failed, self._failed
            modules_done, rows = self._done_modules, self._rows
        run_done = modules_done - self._skipped_modules  # skipped modules took no time
        remaining = self._modules_total - modules_done
        eta = elapsed / run_done * remaining if run_done and remaining else (0.0 if not remaining else None)
        return RunProgress(done, len(self.batches), modules_done, self._modules_total, rows,
                           self._backend.sessions_opened(), failures, elapsed, eta)
