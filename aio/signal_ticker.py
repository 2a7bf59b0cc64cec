"""How a loop in the main thread sees a signal while its tasks wait on the pool: it is woken every
``SIGNAL_CHECK_INTERVAL`` while any of them waits on an armed wakeup (wakeup.py), one timer a loop, not one a task.

CPython runs a signal handler (Ctrl-C's) only in the main thread, between bytecodes, and a signal the kernel handed
to one of the pool's threads does not wake a loop asleep in its selector, so without the tick the handler would wait
for whatever the task waits for (docs/semantics.md, Signals and waiting callers).
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref

from leanworker.actors.core.interruptible import SIGNAL_CHECK_INTERVAL


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


def tick_while_waiting(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]) -> None:
    """Wake ``loop`` every ``SIGNAL_CHECK_INTERVAL`` until ``waiter`` is done (call on the loop's thread, the main
    thread); one timer a loop, whatever the number of waiters."""
    ticker = _tickers.get(loop)
    if ticker is None:
        ticker = _tickers[loop] = _SignalTicker(loop)
    ticker.wait_for(waiter)
