"""A run's results on their way to its reader (docs/semantics.md, Running a plan: Cancel).

While the run goes on the queue is bounded: a runner with a result waits for room, so a reader that falls behind
holds the run back instead of letting results pile up. Once the run is cancelled no runner ever waits for the reader
again: the results that still end (at most one per runner, the attempts in flight, since a cancelled schedule hands
out nothing more) are kept past the bound for a reader who reads on, and when the reader is gone for good
(``drop``) they are thrown away. The end is a state, not an item, so handing it over never waits for room either.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from leanworker.actors.core import locks
from leanworker.actors.core.interruptible import condition_wait_for

T = TypeVar("T")


class ResultQueue(Generic[T]):
    """Results from the runner threads to one reader, blocking (``get``) or not (``poll``); see the module doc."""

    def __init__(self, bound: int) -> None:
        self._bound = max(1, bound)
        self._items: deque[T] = deque()
        self._cond = locks.condition("run")  # never held with another lock: a wake is called outside it
        self._ended = False
        self._cancelled = False  # no put waits any more
        self._dropped = False  # nobody will read: puts are thrown away
        self._wake: Callable[[], None] | None = None

    def put(self, item: T) -> None:
        """Hand ``item`` over: wait for room while the run goes on; once cancelled, never wait."""
        with self._cond:
            while len(self._items) >= self._bound and not self._cancelled:
                self._cond.wait()
            if self._dropped:
                return
            self._items.append(item)
            wake = self._arrived()
        if wake is not None:
            wake()

    def end(self) -> None:
        """The run is over: the reader gets what is queued, then the end (``StopIteration``)."""
        with self._cond:
            self._ended = True
            wake = self._arrived()
        if wake is not None:
            wake()

    def cancel(self) -> None:
        """No put waits for room from now on (the run is cancelled: at most one more result per runner)."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def drop(self) -> None:
        """The reader is gone for good: what is queued, and every later put, is thrown away; no put waits."""
        with self._cond:
            self._cancelled = self._dropped = True
            self._items.clear()
            self._cond.notify_all()

    def get(self) -> T:
        """The next result, waiting for one; ``StopIteration`` once the run has ended and nothing is left. A main
        thread waits in slices, so a signal handler (Ctrl-C) runs meanwhile (actors/core/interruptible.py)."""
        with self._cond:
            condition_wait_for(self._cond, lambda: bool(self._items) or self._ended, None)
            return self._take()

    def poll(self, wake: Callable[[], None]) -> T | None:
        """The next result without waiting, or None, and then ``wake()`` is called once (from a runner thread) when
        a result or the end arrives; ``StopIteration`` once the run has ended and nothing is left. A later poll
        replaces a wake not yet called."""
        with self._cond:
            if not self._items and not self._ended:
                self._wake = wake
                return None
            self._wake = None
            return self._take()

    def _arrived(self) -> Callable[[], None] | None:
        """Under the lock, as a result or the end arrives: wake a waiting ``get``; return the poller's wake, to be
        called once the lock is released."""
        self._cond.notify_all()
        wake, self._wake = self._wake, None
        return wake

    def _take(self) -> T:
        if not self._items:
            raise StopIteration
        item = self._items.popleft()
        self._cond.notify_all()  # room for a runner that waits
        return item
