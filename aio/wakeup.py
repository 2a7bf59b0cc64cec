"""``LoopWakeup``: how the pool's threads resume a task on an event loop without the loop ever blocking.

A task that finds nothing to read arms a fresh asyncio future (:meth:`LoopWakeup.arm`) and hands the wakeup, a
plain callable, to whatever will produce the next item (a request channel's ``poll``, a plan run's ``poll``, a lease
claim's future). The producing thread calls it; it schedules the future's resolution on the loop with
``call_soon_threadsafe`` and returns at once. So a waiting task costs a future, never a thread, and the loop's
thread is only ever woken, never made to wait (docs/semantics.md, asyncio).

A loop that runs in the main thread is also woken every ``SIGNAL_CHECK_INTERVAL`` while any of its tasks waits here
(one timer a loop, not one a task): CPython runs a signal handler (Ctrl-C's) only in the main thread, between
bytecodes, and a signal the kernel handed to one of the pool's threads does not wake a loop asleep in its selector,
so the handler would wait for whatever the task waits for (docs/semantics.md, Signals and waiting callers).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import weakref
from concurrent.futures import Future
from typing import Any

from leanworker.actors.core.interruptible import SIGNAL_CHECK_INTERVAL


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
                _ticker(self._loop).wait_for(waiter)
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


class _SignalTicker:
    """Wakes one loop every ``SIGNAL_CHECK_INTERVAL`` while any of its tasks waits on an armed wakeup, and stops as
    the last wait ends (a live timer at the head of the loop's heap would hold back the purge of the timers those
    waits cancelled). It holds its loop weakly (it is the value of a weak map keyed by that loop) and runs in an empty
    context, so that it keeps no caller's context (a span) alive."""

    __slots__ = ("_loop", "_waiting", "_timer", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._waiting = 0
        self._timer: asyncio.TimerHandle | None = None

    def wait_for(self, waiter: asyncio.Future[None]) -> None:
        self._waiting += 1
        waiter.add_done_callback(self._ended, context=_NO_CONTEXT)
        if self._timer is None:
            self._schedule()

    def _ended(self, waiter: asyncio.Future[None]) -> None:
        self._waiting -= 1
        if not self._waiting and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        loop = self._loop()
        self._timer = None
        if loop is not None and not loop.is_closed():
            self._timer = loop.call_later(SIGNAL_CHECK_INTERVAL, self._tick, context=_NO_CONTEXT)

    def _tick(self) -> None:  # its only work: the loop's thread ran bytecode, so a pending handler has run
        if self._waiting:
            self._schedule()
        else:
            self._timer = None


_NO_CONTEXT = contextvars.Context()
_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SignalTicker] = weakref.WeakKeyDictionary()


def _ticker(loop: asyncio.AbstractEventLoop) -> _SignalTicker:
    ticker = _tickers.get(loop)
    if ticker is None:
        ticker = _tickers[loop] = _SignalTicker(loop)
    return ticker


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
