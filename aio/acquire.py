"""``LeaseAcquisition``: what ``AsyncWorkerPool.lease(key)`` returns: an async context manager (``async with
pool.lease(key) as lease``) and an awaitable (``lease = await pool.lease(key)``) of an ``AsyncLease``.

Waiting in the admission queue costs no thread: the pool's claim (``WorkerPool.claim``) is granted at once when a
warm worker is idle, else its future is resolved by the pool actor, whose done-callback wakes the loop. A task
cancelled while it waits (or whose ``timeout`` passes) withdraws its claim, so the pool never grants it; a lease
granted in the instant it gave up is released at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import Any

from leanworker.actors.core.config import SessionKey
from leanworker.actors.pool import Lease, LeaseClaim, WorkerPool
from leanworker.aio.lease import AsyncLease
from leanworker.aio.wakeup import LoopWakeup
from leanworker.errors import QueueTimeout


def _release_on(loop: asyncio.AbstractEventLoop) -> Callable[[Future[Lease]], None]:
    """A done-callback that releases a lease granted to a waiter that gave up. It runs in the thread that granted
    the lease (the slot's lease actor): the release is done on the loop, where the lease belongs (a fresh lease runs
    nothing, and it is released without waiting). Were the loop closed, the lease's collection would release it."""
    def release_if_granted(future: Future[Lease]) -> None:
        if not future.cancelled() and future.exception() is None:
            try:
                loop.call_soon_threadsafe(future.result().release_nowait)
            except RuntimeError:
                pass
    return release_if_granted


class LeaseAcquisition:
    """Waits for a lease of ``key`` (at most ``timeout``, default ``queue_wait_timeout``); see the module docstring."""

    def __init__(self, pool: WorkerPool, key: SessionKey, timeout: float | None) -> None:
        self._pool = pool
        self._key = key
        self._timeout = timeout
        self._lease: AsyncLease | None = None

    async def acquire(self) -> AsyncLease:
        loop = asyncio.get_running_loop()
        claim = self._pool.claim(self._key)
        if claim.future is None:
            assert claim.lease is not None
            return AsyncLease(claim.lease, loop)
        wait = self._pool.config.queue_wait_timeout if self._timeout is None else self._timeout
        return AsyncLease(await self._wait(claim, claim.future, wait, loop), loop)

    async def _wait(self, claim: LeaseClaim, future: Future[Lease], wait: float,
                    loop: asyncio.AbstractEventLoop) -> Lease:
        wakeup = LoopWakeup(loop)
        waiter = wakeup.arm()
        future.add_done_callback(lambda _: wakeup())
        try:
            async with asyncio.timeout(wait):
                await waiter
        except TimeoutError:
            if claim.abandon():
                raise QueueTimeout(f"no worker for {self._key.capability} within {wait:g} s") from None
            return await self._resolved(future, wakeup)  # granted (or failed) as we gave up
        except asyncio.CancelledError:
            if not claim.abandon():
                future.add_done_callback(_release_on(loop))  # granted as we gave up: nobody would release it
            raise
        return future.result()

    @staticmethod
    async def _resolved(future: Future[Lease], wakeup: LoopWakeup) -> Lease:
        """The claim's future, which the pool actor is resolving at this moment (its result is moments away)."""
        while not future.done():
            await wakeup.arm()
        return future.result()

    def __await__(self) -> Generator[Any, None, AsyncLease]:
        return self.acquire().__await__()

    async def __aenter__(self) -> AsyncLease:
        self._lease = await self.acquire()
        return self._lease

    async def __aexit__(self, *exc_info: Any) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()
