"""``LoopWakeup``: how the pool's threads resume a task on an event loop without the loop ever blocking.

A task that finds nothing to read arms a fresh asyncio future (:meth:`LoopWakeup.arm`) and hands the wakeup, a
plain callable, to whatever will produce the next item (a request channel's ``poll``, a plan run's ``poll``, a lease
claim's future). The producing thread calls it; it schedules the future's resolution on the loop with
``call_soon_threadsafe`` and returns at once. So a waiting task costs a future, never a thread, and the loop's
thread is only ever woken, never made to wait (docs/semantics.md, asyncio).

A loop that runs in the main thread is also woken every ``SIGNAL_CHECK_INTERVAL`` while any of its tasks waits here
(signal_ticker.py), so that a signal handler (Ctrl-C's) runs while the task waits (docs/semantics.md, Signals and
waiting callers).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from leanworker.aio.signal_ticker import tick_while_waiting


class LoopWakeup:
    """Resumes one waiting task on ``loop``; callable from any thread (see the module docstring)."""

    __slots__ = ("_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None

    def arm(self) -> asyncio.Future[None]:
        """A future that the next call resolves (call on the loop, before awaiting it). Tasks that wait at the same
        time share it, so a wakeup resumes them all.

        A wakeup scheduled before the future was armed resolves it too: the loop runs that callback only once the
        task yields, after ``arm``. A spurious wakeup costs one more look, never a lost item.
        """
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self._loop.create_future()
            if threading.current_thread() is threading.main_thread():
                tick_while_waiting(self._loop, waiter)
        return waiter

    def __call__(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._resolve)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _resolve(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def settled(future: Future[Any], timeout: float) -> bool:
    """Wait (on the loop, without a thread) until ``future``, resolved in another thread, is done; at most
    ``timeout`` seconds. True if it is done."""
    wakeup = LoopWakeup(asyncio.get_running_loop())
    waiter = wakeup.arm()
    future.add_done_callback(lambda _: wakeup())
    try:
        async with asyncio.timeout(timeout):
            await waiter
    except TimeoutError:
        pass
    return future.done()
