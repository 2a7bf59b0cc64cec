"""``lw.AsyncWorkerPool``: the pool for asyncio programs, with the threaded pool's semantics (docs/semantics.md).

It is a ``WorkerPool`` (the same actors, admission, slots and counters; ``pool.threaded`` is that pool, for
threaded clients of the same workers) driven without ever blocking the event loop: lease waits are futures resolved
from the pool actor's thread, a request's rows and terminal wake the loop from the worker's reader thread, and the
few calls that must wait (a shutdown, opening a run's journal) run in a short-lived thread of their own. No thread
is started per waiting caller: a thousand tasks waiting for a lease are a thousand futures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from leanworker.actors.core.config import PoolConfig, SessionKey
from leanworker.actors.core.results import PoolSnapshot
from leanworker.actors.pool import WorkerPool
from leanworker.actors.run import FaultSource, RequestSpec
from leanworker.aio.acquire import LeaseAcquisition
from leanworker.aio.run import AsyncPlanRun, plan_starter
from leanworker.aio.thread import in_thread
from leanworker.errors import PoolClosed
from leanworker.planner.plan import ImportPlan, PlannedBatch


class AsyncWorkerPool:
    """A pool of supervised worker processes for asyncio programs: ``async with AsyncWorkerPool(config) as pool``.

    ``pool.lease(key)`` is an async context manager (and awaitable) of an ``AsyncLease``; ``pool.run(...)`` an async
    iterator of ``BatchResult``; ``await pool.aclose()`` shuts down (as ``WorkerPool.shutdown``).
    """

    def __init__(self, config: PoolConfig = PoolConfig()) -> None:
        self.threaded = WorkerPool(config)

    @property
    def config(self) -> PoolConfig:
        return self.threaded.config

    def lease(self, key: SessionKey, timeout: float | None = None) -> LeaseAcquisition:
        """Wait (without blocking the loop) for a warm worker of ``key``: ``async with pool.lease(key) as lease``.

        Waits in the admission queue at most ``timeout`` (default ``queue_wait_timeout``), then ``QueueTimeout``. A
        task cancelled while it waits leaves the queue and never receives a lease.
        """
        return LeaseAcquisition(self.threaded, key, timeout)

    def run(self, plan: ImportPlan | Iterable[PlannedBatch], command: str, request: RequestSpec = None, *,
            retries: int = 1, output: str | None = None, resume: bool = False,
            faults: FaultSource | None = None) -> AsyncPlanRun:
        """Run every batch of ``plan`` with ``command`` (as ``WorkerPool.run``, ``faults=`` included); iterate the
        result with ``async for``. It starts when first entered or iterated."""
        if self.threaded.closed:
            raise PoolClosed("the pool is shut down")
        return AsyncPlanRun(plan_starter(self.threaded, command, request, retries, output, resume, faults=faults),
                            plan)

    def snapshot(self) -> PoolSnapshot:
        """A consistent view of the pool (as ``WorkerPool.snapshot``: a short wait for the pool actor)."""
        return self.threaded.snapshot()

    async def aclose(self, timeout: float | None = None) -> None:
        """Stop admission, fail queued waiters with ``PoolClosed``, end requests in flight, reap every worker (in a
        short-lived thread: the loop runs on meanwhile)."""
        pool = self.threaded
        await in_thread(lambda: pool.shutdown(timeout), "leanworker-pool-close")

    async def __aenter__(self) -> AsyncWorkerPool:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
