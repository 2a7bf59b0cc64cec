"""``pool.run(plan, command)``: the planner's batches run on the pool, concurrently, session-affine, retried,
bisected, and committed exactly once. docs/semantics.md, Running a plan, states the rules.

The executor sits above the pool and takes leases like any caller (admission stays in the pool). It runs
``concurrency`` runner threads, each with one place (places.py: a lease on a local pool, or a slot of a Ray node
agent); which batch a free runner takes is the schedule's (schedule.py).
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from leanworker.actors.core import locks
from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.interruptible import join_thread, queue_get
from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.run.faults import FaultSource, ambient_faults
from leanworker.actors.run.journal import OutputJournal
from leanworker.actors.run.places import Place, PlaceGone, Requeue, RunBackend
from leanworker.actors.run.results import BatchResult, RunProgress, RunSummary
from leanworker.actors.run.runner_queue import RunnerQueue
from leanworker.actors.run.schedule import Schedule, Task
from leanworker.errors import LeanWorkerError, NodeLost, WorkerLost
from leanworker.planner.plan import ImportPlan, PlannedBatch

RequestSpec = dict[str, Any] | Callable[[PlannedBatch], Any] | None


_END = object()


class PlanRun:
    """A running plan: a context manager and an iterator of :class:`BatchResult` in completion order.

    Iterate it to drive it (results wait in a small bounded queue until read). ``cancel()`` (or leaving the
    ``with`` block) cancels what still runs; ``progress`` tells where it stands; ``summary`` exists after the end.
    """

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
        self._abandoned = False  # nobody will read the results any more (abandon())
        self._schedule = RunnerQueue(Schedule(tasks, affinity=affinity))
        self._results: queue.Queue[Any] = queue.Queue(maxsize=2 * max(1, backend.concurrency))
        self._wake: Callable[[], None] | None = None  # a poll()ing reader's (an event loop), called once
        self._wake_lock = locks.lock("run")  # never held with the other: it only hands over results
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
            self._schedule.finished(task, requeue=[task])
            return
        except PlaceGone:
            self._schedule.finished(task, requeue=[task])
            raise
        except WorkerLost as exc:  # the same request may succeed on a fresh worker: retry, then bisect
            self._retry_or_split(task, exc, started, self._explained(fault, exc))
            return
        except LeanWorkerError as exc:  # the capability's answer (CommandError), or the pool's
            injected = self._explained(fault, exc)
            if injected:
                with self._lock:
                    self._injected.extend(task.modules)
            self._finish(task, self._failed_result(task, exc, started, injected))
            return
        if self._cancelled.is_set() and summary is None:
            self._schedule.finished(task)
            with self._lock:
                self._cancelled_tasks += 1
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
            self._schedule.finished(task)
            with self._lock:
                self._cancelled_tasks += 1
            return
        attempts = task.attempts + 1
        if attempts <= self._retries:
            with self._lock:
                self._retry_count += 1
            self._schedule.finished(task, requeue=[Task(task.batch, task.modules, attempts, task.order)])
        elif len(task.modules) > 1:
            half = len(task.modules) // 2
            parts = [Task(task.batch, task.modules[:half], order=task.order),
                     Task(task.batch, task.modules[half:], order=task.order)]
            self._schedule.finished(task, requeue=parts)
        else:
            failed = BatchResult(task.batch, task.modules, False, (), None, error, attempts, started,
                                 time.monotonic(), injected)
            with self._lock:
                (self._injected if injected else self._quarantined).extend(task.modules)
            self._finish(task, failed)

    def _failed_result(self, task: Task, error: LeanWorkerError, started: float, injected: bool) -> BatchResult:
        return BatchResult(task.batch, task.modules, False, (), None, error, task.attempts + 1, started,
                           time.monotonic(), injected)

    def _finish(self, task: Task, result: BatchResult) -> None:
        with self._lock:
            self._done_modules += len(result.modules)
            if result.committed:
                self._committed += 1
                self._rows += len(result.rows)
            else:
                self._failed += 1
        self._put(result)
        self._schedule.finished(task)

    def _put(self, item: Any) -> None:
        while True:
            try:
                self._results.put(item, timeout=0.1)
                break
            except queue.Full:
                if (self._cancelled.is_set() and item is not _END) or self._abandoned:
                    return  # nobody reads a cancelled run's results (nor, once abandoned, its end)
        with self._wake_lock:
            wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    def _finish_run(self) -> None:
        lost = NodeLost("no node is left to run this batch: every runner's node was lost")
        for task in self._schedule.abandon():  # only when every place is gone with work left
            now = time.monotonic()
            self._finish_unrun(task, BatchResult(task.batch, task.modules, False, (), None, lost,
                                                 task.attempts, now, now))
        if self._journal is not None:
            self._journal.close()
        with self._lock:
            self._summary = RunSummary(
                batches_total=len(self.batches), batches_committed=self._committed, batches_failed=self._failed,
                batches_skipped=self._skipped, rows=self._rows,
                sessions_opened=self._backend.sessions_opened(), retries=self._retry_count,
                quarantined=tuple(self._quarantined), elapsed=round(time.monotonic() - self._started, 3),
                batches_cancelled=self._cancelled_tasks, cancelled=self._cancelled.is_set(),
                injected=tuple(self._injected), faults=self._faults_fired())
        if self._tracer is not None:
            self._tracer.record("stage_end", "run", name=self._name)
        self._put(_END)

    def _faults_fired(self) -> tuple[Any, ...]:
        return tuple(self._faults.fired()[self._faults_before:]) if self._faults is not None else ()

    def _finish_unrun(self, task: Task, result: BatchResult) -> None:
        with self._lock:
            self._done_modules += len(result.modules)
            self._failed += 1
        self._put(result)

    # -- the caller's side -----------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[BatchResult]:
        return self

    def __next__(self) -> BatchResult:
        return self._delivered(queue_get(self._results))

    def poll(self, wake: Callable[[], None]) -> BatchResult | None:
        """The next result without waiting, for a reader that must never block (an event loop): None when none is
        ready, and ``wake()`` is then called once, from a runner thread, when one is (it must be quick and must not
        raise). At the end it raises ``StopIteration`` (or the error that ended the run), as ``next()`` does."""
        with self._wake_lock:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                self._wake = wake
                return None
            self._wake = None
        return self._delivered(item)

    def _delivered(self, item: Any) -> BatchResult:
        if item is _END:
            self._results.put(_END)  # later calls end too
            if self._errors:
                raise self._errors[0]
            raise StopIteration
        result: BatchResult = item
        return result

    def cancel(self) -> None:
        """Cancel what still runs; results not yet final are dropped (``summary.batches_cancelled``)."""
        self._cancelled.set()
        left = self._schedule.cancel()
        with self._lock:
            self._cancelled_tasks += len(left)
        for place in list(self._places.values()):
            place.cancel()

    def abandon(self) -> None:
        """Cancel, for a reader that is gone for good (an ``AsyncPlanRun`` collected before its end): no runner
        waits to hand over a result or the end, so every runner thread ends. ``summary`` still appears."""
        self._abandoned = True
        self.cancel()

    def wait(self) -> RunSummary:
        """Drive the run to its end, dropping results not read yet, and return the summary."""
        for _ in self:
            pass
        for thread in self._threads:
            join_thread(thread)
        assert self._summary is not None
        return self._summary

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

    def __enter__(self) -> PlanRun:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._summary is None:
            self.cancel()
        self.wait()
