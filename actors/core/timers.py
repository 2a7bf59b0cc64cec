"""One timer thread that runs callbacks at deadlines (pykka has no timers). Callbacks must be quick: a ``tell``."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from leanworker.actors.core import locks
from leanworker.actors.core.mailbox import tell_if_alive


class TimerHandle:
    __slots__ = ("cancelled", "_scheduler")

    def __init__(self, scheduler: Scheduler) -> None:
        self.cancelled = False
        self._scheduler = scheduler

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._scheduler.note_cancelled()


class Scheduler:
    """Runs ``callback()`` after ``delay`` seconds on its own daemon thread."""

    def __init__(self, name: str = "leanworker-timers") -> None:
        self._heap: list[tuple[float, int, TimerHandle, Callable[[], object]]] = []
        self._counter = itertools.count()
        self._cond = locks.condition("scheduler")
        self._stopped = False
        self._cancelled = 0  # cancelled entries still in the heap (approximate: updated without the lock)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        handle = TimerHandle(self)
        with self._cond:
            heap = self._heap
            if self._cancelled > 1024 and self._cancelled * 2 > len(heap):
                heap[:] = [entry for entry in heap if not entry[2].cancelled]
                heapq.heapify(heap)
                self._cancelled = 0
            entry = (time.monotonic() + delay, next(self._counter), handle, callback)
            heapq.heappush(heap, entry)
            # Wake the thread only if this deadline is now the earliest; otherwise it is already waiting for an
            # earlier one and will look again then. This keeps the timer thread off the request hot path.
            if heap[0] is entry:
                self._cond.notify()
        return handle

    def tell_later(self, delay: float, actor: pykka.ActorRef[Any], message: Any) -> TimerHandle:
        """Tell ``actor`` ``message`` after ``delay`` seconds (a deadline), unless it has stopped by then."""
        return self.call_later(delay, lambda: tell_if_alive(actor, message))

    def note_cancelled(self) -> None:
        """A handle was cancelled: its entry stays in the heap until it is due or the heap is pruned."""
        self._cancelled += 1  # approximate: updated without the lock

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, handle, callback = heapq.heappop(self._heap)
            if not handle.cancelled:
                try:
                    callback()
                except Exception:  # a dead actor's tell; nothing to do
                    pass
