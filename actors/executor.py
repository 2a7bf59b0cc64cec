"""``pool.run(plan, command)``: the planner's batches run on the pool, concurrently, session-affine, retried,
bisected, and committed exactly once. docs/semantics.md, Running a plan, states the rules.

The executor sits above the pool and takes leases like any caller (admission stays in the pool). ``max_workers``
runner threads each hold at most one lease; a runner keeps its warm lease for the next batch of the same key, and a
runner that needs a new key takes one no other runner is on, biggest batch first (:class:`_Schedule`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from leanworker.actors.config import SessionKey
from leanworker.actors.journal import OutputJournal
from leanworker.actors.lease import Lease
from leanworker.actors.results import Row, StreamSummary
from leanworker.errors import (
    LeanWorkerError,
    MemoryLimitExceeded,
    ProtocolError,
    RequestTimeout,
    StaleLease,
    WorkerCrashed,
)
from leanworker.planner.plan import ImportPlan, PlannedBatch

if TYPE_CHECKING:
    from leanworker.actors.workerpool import WorkerPool

RETRYABLE = (WorkerCrashed, RequestTimeout, MemoryLimitExceeded, ProtocolError)
RequestSpec = dict[str, Any] | Callable[[PlannedBatch], Any] | None


@dataclass(frozen=True)
class BatchResult:
    """The final outcome for ``modules`` of ``batch``: committed (with its ``rows``) or failed (with ``error``)."""

    batch: PlannedBatch
    modules: tuple[str, ...]
    committed: bool
    rows: tuple[Row, ...]
    summary: StreamSummary | None
    error: LeanWorkerError | None
    attempts: int
    started_at: float = 0.0  # time.monotonic() of its last attempt's start and end
    finished_at: float = 0.0


@dataclass(frozen=True)
class RunSummary:
    """How a run ended. Batch counts count results (a bisected batch gives several); ``batches_total`` counts the
    plan's batches; ``batches_skipped`` those already committed by an earlier run (``resume=True``)."""

    batches_total: int
    batches_committed: int
    batches_failed: int
    batches_skipped: int
    rows: int
    sessions_opened: int
    retries: int
    quarantined: tuple[str, ...]
    elapsed: float
    batches_cancelled: int = 0
    cancelled: bool = False


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: results and modules done of their totals, rows committed, and an estimate."""

    batches_done: int
    batches_total: int
    modules_done: int
    modules_total: int
    rows: int
    sessions_opened: int
    failures: int
    elapsed: float
    eta_s: float | None


@dataclass
class _Task:
    batch: PlannedBatch
    modules: tuple[str, ...]
    attempts: int = 0  # failed attempts of this module set so far


class _Schedule:
    """Pending tasks by key, biggest first; which keys runners are on; when the run is over."""

    def __init__(self, tasks: Iterable[_Task]) -> None:
        self._cond = threading.Condition()
        self._pending: dict[SessionKey, list[_Task]] = {}
        self._running: Counter[SessionKey] = Counter()
        self._cancelled = False
        for task in tasks:
            self._pending.setdefault(task.batch.key, []).append(task)
        for tasks_of_key in self._pending.values():
            tasks_of_key.sort(key=lambda t: len(t.modules))  # biggest last: pop() takes it

    def take(self, warm_key: SessionKey | None) -> _Task | None:
        """The next task: of ``warm_key`` if any, else of a key no runner is on, biggest first. None: all done."""
        with self._cond:
            while True:
                if self._cancelled:
                    return None
                key = self._choose(warm_key)
                if key is not None:
                    task = self._pending[key].pop()
                    if not self._pending[key]:
                        del self._pending[key]
                    self._running[key] += 1
                    return task
                if not self._running:
                    return None
                self._cond.wait()

    def _choose(self, warm_key: SessionKey | None) -> SessionKey | None:
        if not self._pending:
            return None
        if warm_key in self._pending:
            return warm_key
        free = [k for k in self._pending if not self._running[k]]
        candidates = free or list(self._pending)
        return max(candidates, key=lambda k: (len(self._pending[k][-1].modules), sum(
            len(t.modules) for t in self._pending[k])))

    def finished(self, task: _Task, *, requeue: Iterable[_Task] = ()) -> None:
        with self._cond:
            self._running[task.batch.key] -= 1
            if self._running[task.batch.key] <= 0:
                del self._running[task.batch.key]
            for again in requeue:
                tasks = self._pending.setdefault(again.batch.key, [])
                tasks.append(again)
                tasks.sort(key=lambda t: len(t.modules))
            self._cond.notify_all()

    def cancel(self) -> list[_Task]:
        with self._cond:
            self._cancelled = True
            left = [task for tasks in self._pending.values() for task in tasks]
            self._pending.clear()
            self._cond.notify_all()
            return left


_END = object()


class PlanRun:
    """A running plan: a context manager and an iterator of :class:`BatchResult` in completion order.

    Iterate it to drive it (results wait in a small bounded queue until read). ``cancel()`` (or leaving the
    ``with`` block) cancels what still runs; ``progress`` tells where it stands; ``summary`` exists after the end.
    """

    def __init__(self, pool: WorkerPool, plan: ImportPlan | Iterable[PlannedBatch], command: str,
                 request: RequestSpec = None, *, retries: int = 1, output: str | None = None,
                 resume: bool = False) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self._pool = pool
        self._command = command
        self._request = request
        self._retries = retries
        self.batches = tuple(plan.batches if isinstance(plan, ImportPlan) else plan)
        fingerprint = plan.fingerprint if isinstance(plan, ImportPlan) else hashlib.sha256(
            "\n".join(b.fingerprint for b in self.batches).encode()).hexdigest()
        self._journal = OutputJournal(output, fingerprint, resume) if output is not None else None
        tasks, self._skipped_modules, self._skipped = self._tasks()
        self._modules_total = sum(len(b.modules) for b in self.batches)
        self._lock = threading.Lock()
        self._done_modules = self._skipped_modules
        self._committed = self._failed = self._rows = self._retry_count = self._cancelled_tasks = 0
        self._quarantined: list[str] = []
        self._errors: list[BaseException] = []
        self._streams: dict[int, Any] = {}
        self._cancelled = threading.Event()
        self._schedule = _Schedule(tasks)
        self._results: queue.Queue[Any] = queue.Queue(maxsize=2 * pool.config.max_workers)
        self._summary: RunSummary | None = None
        self._started = time.monotonic()
        self._sessions_before = pool.snapshot().sessions_opened
        worker = pool.config.worker
        self._lease_timeout = pool.config.queue_wait_timeout + worker.startup_timeout + (
            worker.request_timeout or 3600.0)
        runners = max(1, min(pool.config.max_workers, len(tasks)))
        self._live_runners = runners
        self._threads = [threading.Thread(target=self._runner, name=f"leanworker-run-{i}", daemon=True)
                         for i in range(runners)]
        for thread in self._threads:
            thread.start()

    def _tasks(self) -> tuple[list[_Task], int, int]:
        """Tasks for what is not committed yet; modules and batches skipped because an earlier run committed them."""
        committed = self._journal.committed if self._journal is not None else {}
        tasks: list[_Task] = []
        skipped_modules = skipped_batches = 0
        for batch in self.batches:
            done = committed.get(batch.fingerprint, set())
            left = tuple(m for m in batch.modules if m not in done)
            skipped_modules += len(batch.modules) - len(left)
            if left:
                tasks.append(_Task(batch, left))
            else:
                skipped_batches += 1
        return tasks, skipped_modules, skipped_batches

    # -- the runners ---------------------------------------------------------------------------------------------

    def _runner(self) -> None:
        lease: Lease | None = None
        try:
            while True:
                task = self._schedule.take(lease.key if lease is not None and lease.valid else None)
                if task is None:
                    return
                if lease is not None and (lease.key != task.batch.key or not lease.valid):
                    lease.release()
                    lease = None
                if lease is None:
                    try:
                        lease = self._pool.lease(task.batch.key, timeout=self._lease_timeout)
                    except LeanWorkerError as exc:
                        self._finish(task, self._failed_result(task, exc, time.monotonic()))
                        continue
                if not self._attempt(lease, task):
                    lease.release()  # its worker was killed or replaced: the next attempt gets a fresh one
                    lease = None
        except BaseException as exc:  # a bug: end the run with it rather than hang
            self._errors.append(exc)
            self.cancel()
        finally:
            if lease is not None:
                lease.release()
            with self._lock:
                self._live_runners -= 1
                last = self._live_runners == 0
            if last:
                self._finish_run()

    def _attempt(self, lease: Lease, task: _Task) -> bool:
        """Run ``task`` once on ``lease``; False when the lease is no longer usable."""
        started = time.monotonic()
        ident = threading.get_ident()
        try:
            with lease.stream(self._command, self._request_for(task)) as stream:
                self._streams[ident] = stream
                if self._cancelled.is_set():
                    stream.cancel()
                rows = tuple(stream)
                summary = stream.summary
        except StaleLease:  # the worker was replaced between two batches: not this batch's failure
            self._schedule.finished(task, requeue=[task])
            return False
        except RETRYABLE as exc:
            self._retry_or_split(task, exc, started)
            return False
        except LeanWorkerError as exc:  # the capability's answer (CommandError), or the pool's
            self._finish(task, self._failed_result(task, exc, started))
            return lease.valid
        finally:
            self._streams.pop(ident, None)
        if self._cancelled.is_set() and summary is None:
            self._schedule.finished(task)
            with self._lock:
                self._cancelled_tasks += 1
            return lease.valid
        if self._journal is not None:
            self._journal.commit(task.batch.fingerprint, task.modules, rows)
        self._finish(task, BatchResult(task.batch, task.modules, True, rows, summary, None, task.attempts + 1,
                                       started, time.monotonic()))
        return True

    def _request_for(self, task: _Task) -> Any:
        request = self._request
        if callable(request):
            return request(dataclasses.replace(task.batch, modules=task.modules))
        body: dict[str, Any] = dict(request) if isinstance(request, dict) else {}
        body["modules"] = list(task.modules)
        return body

    def _retry_or_split(self, task: _Task, error: LeanWorkerError, started: float) -> None:
        if self._cancelled.is_set():
            self._schedule.finished(task)
            with self._lock:
                self._cancelled_tasks += 1
            return
        attempts = task.attempts + 1
        if attempts <= self._retries:
            with self._lock:
                self._retry_count += 1
            self._schedule.finished(task, requeue=[_Task(task.batch, task.modules, attempts)])
        elif len(task.modules) > 1:
            half = len(task.modules) // 2
            parts = [_Task(task.batch, task.modules[:half]), _Task(task.batch, task.modules[half:])]
            self._schedule.finished(task, requeue=parts)
        else:
            failed = BatchResult(task.batch, task.modules, False, (), None, error, attempts, started,
                                 time.monotonic())
            with self._lock:
                self._quarantined.extend(task.modules)
            self._finish(task, failed)

    def _failed_result(self, task: _Task, error: LeanWorkerError, started: float) -> BatchResult:
        return BatchResult(task.batch, task.modules, False, (), None, error, task.attempts + 1, started,
                           time.monotonic())

    def _finish(self, task: _Task, result: BatchResult) -> None:
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
                return
            except queue.Full:
                if self._cancelled.is_set() and item is not _END:
                    return  # nobody reads a cancelled run's results

    def _finish_run(self) -> None:
        if self._journal is not None:
            self._journal.close()
        with self._lock:
            self._summary = RunSummary(
                batches_total=len(self.batches), batches_committed=self._committed, batches_failed=self._failed,
                batches_skipped=self._skipped, rows=self._rows,
                sessions_opened=self._sessions_opened(), retries=self._retry_count,
                quarantined=tuple(self._quarantined), elapsed=time.monotonic() - self._started,
                batches_cancelled=self._cancelled_tasks, cancelled=self._cancelled.is_set())
        self._put(_END)

    def _sessions_opened(self) -> int:
        try:
            return self._pool.snapshot().sessions_opened - self._sessions_before
        except LeanWorkerError:
            return 0

    # -- the caller's side -----------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[BatchResult]:
        return self

    def __next__(self) -> BatchResult:
        item = self._results.get()
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
        for stream in list(self._streams.values()):
            stream.cancel()

    def wait(self) -> RunSummary:
        """Drive the run to its end, dropping results not read yet, and return the summary."""
        for _ in self:
            pass
        for thread in self._threads:
            thread.join()
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
                           self._sessions_opened(), failures, elapsed, eta)

    def __enter__(self) -> PlanRun:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._summary is None:
            self.cancel()
        self.wait()
