"""``AsyncPlanRun``: ``pool.run(plan, command)`` read from an event loop.

The plan runs as it does for the threaded pool (docs/semantics.md, Running a plan): up to ``max_workers`` runner
threads, one place each, results in completion order. This is its async face: results are awaited with
``PlanRun.poll`` and a wakeup (wakeup.py), so the loop never waits; the run is started (its output journal opened,
which may read and repair a file on ``resume=True``) in a short-lived thread of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from leanworker.actors.pool import WorkerPool
from leanworker.actors.run import BatchResult, PlanRun, RequestSpec, RunProgress, RunSummary
from leanworker.aio.thread import in_thread
from leanworker.aio.wakeup import LoopWakeup
from leanworker.planner.plan import ImportPlan, PlannedBatch


class AsyncPlanRun:
    """A running plan: an async iterator and async context manager of ``BatchResult`` in completion order.

    ``cancel()`` (a plain call, or leaving the ``async with`` block, or cancelling the task that iterates, even while
    the run is starting) cancels what still runs, as does dropping the run before its end; ``progress`` tells where it
    stands; ``summary`` exists after the end.
    """

    def __init__(self, start: Callable[[ImportPlan | Iterable[PlannedBatch]], PlanRun],
                 plan: ImportPlan | Iterable[PlannedBatch]) -> None:
        self._plan = plan if isinstance(plan, ImportPlan) else tuple(plan)
        self._start_run = start
        self._run: PlanRun | None = None
        self._starting: asyncio.Future[PlanRun] | None = None
        self._cancelled = False
        self._wakeup: LoopWakeup | None = None

    async def _started(self) -> PlanRun:
        if self._run is not None:
            return self._run
        if self._starting is None:
            plan, start = self._plan, self._start_run
            self._starting = asyncio.ensure_future(in_thread(lambda: start(plan), "leanworker-run-start"))
            self._starting.add_done_callback(self._on_started)  # also when the task that awaits it is cancelled
        try:
            return self._adopt(await asyncio.shield(self._starting))
        except asyncio.CancelledError:
            self.cancel()  # the task that starts the run was cancelled: so is the run, once it has started
            raise

    def _on_started(self, starting: asyncio.Future[PlanRun]) -> None:
        """The run has started (on the loop): adopt it, even if the task that started it was cancelled meanwhile,
        so that a cancel requested during the start reaches it and nothing runs on unseen."""
        if starting.cancelled() or starting.exception() is not None:
            return  # the start failed: the task that awaits it gets the error (no run exists to cancel)
        self._adopt(starting.result())

    def _adopt(self, run: PlanRun) -> PlanRun:
        if self._run is None:
            self._run = run
            self._wakeup = LoopWakeup(asyncio.get_running_loop())
            # Dropped before its end (no cancel(), no async with), this object takes with it the only reference to
            # ``run``, whose collection abandons it (actors/run/plan_run.py): the threaded run's rule, not a copy.
            if self._cancelled:
                run.cancel()
        return self._run

    def __aiter__(self) -> AsyncPlanRun:
        return self

    async def __anext__(self) -> BatchResult:
        try:
            run = await self._started()
            wakeup = self._wakeup
            assert wakeup is not None
            while True:
                try:
                    result = run.poll(wakeup)
                except StopIteration:
                    raise StopAsyncIteration from None
                if result is not None:
                    return result
                await wakeup.arm()
        except asyncio.CancelledError:
            self.cancel()  # as leaving the block: the running requests are cancelled cooperatively
            raise

    def cancel(self) -> None:
        """Cancel what still runs (returns at once); results not yet final are dropped."""
        self._cancelled = True
        if self._run is not None:
            self._run.cancel()

    async def wait(self) -> RunSummary:
        """Drive the run to its end, dropping results not read yet, and return the summary."""
        async for _ in self:
            pass
        summary = self.summary
        assert summary is not None
        return summary

    @property
    def summary(self) -> RunSummary | None:
        """The run's ``RunSummary`` once it has ended (None before)."""
        return self._run.summary if self._run is not None else None

    @property
    def progress(self) -> RunProgress:
        """Where the run stands (all zero until it has started)."""
        if self._run is not None:
            return self._run.progress
        batches = self._plan.batches if isinstance(self._plan, ImportPlan) else self._plan
        modules = sum(len(b.modules) for b in batches)
        return RunProgress(0, len(batches), 0, modules, 0, 0, 0, 0.0, None)

    async def __aenter__(self) -> AsyncPlanRun:
        await self._started()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self.summary is None:
            self.cancel()
        await self.wait()


def plan_starter(pool: WorkerPool, command: str, request: RequestSpec, retries: int, output: str | None,
                 resume: bool, **options: Any) -> Callable[[ImportPlan | Iterable[PlannedBatch]], PlanRun]:
    """How an :class:`AsyncPlanRun` starts its run on ``pool`` (in its own thread)."""
    def start(plan: ImportPlan | Iterable[PlannedBatch]) -> PlanRun:
        return pool.run(plan, command, request, retries=retries, output=output, resume=resume, **options)
    return start
