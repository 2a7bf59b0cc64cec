"""``PlanRun``: what ``pool.run(plan, command)`` returns, the caller's handle on a running plan (executor.py runs it).

The handle is the only thing that references the run for its caller; the runner threads reference the executor,
never the handle. So a run its caller drops before its end (never cancelled, left unread) is collected like any
object, and its collection abandons the run: what still runs is cancelled, the results nobody will read are thrown
away, and every runner thread ends. ``AsyncPlanRun`` holds one of these handles, so the same rule serves it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from leanworker.actors.core.tracing import TraceSink
from leanworker.actors.run.executor import PlanExecutor, RequestSpec
from leanworker.actors.run.faults import FaultSource
from leanworker.actors.run.places import RunBackend
from leanworker.actors.run.results import BatchResult, RunProgress, RunSummary
from leanworker.planner.plan import ImportPlan, PlannedBatch


class PlanRun:
    """A running plan: a context manager and an iterator of :class:`BatchResult` in completion order.

    Iterate it to drive it (results wait in a small bounded queue until read). ``cancel()`` (or leaving the
    ``with`` block, or dropping the run before its end) cancels what still runs; ``progress`` tells where it stands;
    ``summary`` exists after the end.
    """

    def __init__(self, backend: RunBackend, plan: ImportPlan | Iterable[PlannedBatch], command: str,
                 request: RequestSpec = None, *, retries: int = 1, output: str | None = None,
                 resume: bool = False, affinity: bool = True, tracer: TraceSink | None = None,
                 faults: FaultSource | None = None, node_faults: bool = False) -> None:
        executor = PlanExecutor(backend, plan, command, request, retries=retries, output=output, resume=resume,
                                affinity=affinity, tracer=tracer, faults=faults, node_faults=node_faults)
        self._executor = executor
        self._results = executor.results
        self.batches: tuple[PlannedBatch, ...] = executor.batches
        # Collected before its end: nobody will read it, so nothing may run, hold a worker or wait for it.
        self._collected = weakref.finalize(self, executor.abandon)
        self._collected.atexit = False  # at exit the pools' shutdown cancels their runs

    def __iter__(self) -> Iterator[BatchResult]:
        return self

    def __next__(self) -> BatchResult:
        try:
            return self._results.get()
        except StopIteration:
            self._ended()

    def poll(self, wake: Callable[[], None]) -> BatchResult | None:
        """The next result without waiting, for a reader that must never block (an event loop): None when none is
        ready, and ``wake()`` is then called once, from a runner thread, when one is (it must be quick and must not
        raise). At the end it raises ``StopIteration`` (or the error that ended the run), as ``next()`` does."""
        try:
            return self._results.poll(wake)
        except StopIteration:
            self._ended()

    def _ended(self) -> NoReturn:
        error = self._executor.error
        if error is not None:
            raise error
        raise StopIteration

    def cancel(self) -> None:
        """Cancel what still runs and return at once; results not yet final are dropped
        (``summary.batches_cancelled``). The run then ends by itself, read or not: no runner waits for a reader."""
        self._executor.cancel()

    def abandon(self) -> None:
        """Cancel, for a reader that is gone for good: the results not read yet are thrown away too. What a run's
        collection does; ``summary`` still appears."""
        self._executor.abandon()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the run's threads have ended, without reading its results (a run that is neither cancelled
        nor read may wait for its reader for ever); True if they have, False if ``timeout`` passed first."""
        return self._executor.join(timeout)

    def wait(self) -> RunSummary:
        """Drive the run to its end, dropping results not read yet, and return the summary."""
        for _ in self:
            pass
        self._executor.join()
        summary = self._executor.summary
        assert summary is not None
        return summary

    @property
    def summary(self) -> RunSummary | None:
        """The run's :class:`RunSummary` once it has ended (None before)."""
        return self._executor.summary

    @property
    def progress(self) -> RunProgress:
        """Where the run stands: results and modules done of their totals, rows, sessions, failures, an ETA."""
        return self._executor.progress

    def __enter__(self) -> PlanRun:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.summary is None:
            self.cancel()
        self.wait()
