"""How a caller's thread waits on the runtime: so that a signal handler runs, whichever thread took the signal.

CPython runs a Python signal handler (Ctrl-C's ``KeyboardInterrupt``, the CLI's cancel) only in the main thread,
between bytecodes, while the kernel may hand a signal sent to the process to any of its threads, and the runtime has
many. A main thread blocked on a lock is then not woken, and the handler waits for whatever the main thread waits for
(a lease whose worker opens its session for minutes). So every wait of a caller's thread goes through
:func:`wait_slice`: the main thread never blocks longer than ``SIGNAL_CHECK_INTERVAL`` at a time, and a signal is acted
on within that. Other threads wait without waking up. (docs/semantics.md, Signals and waiting callers.)
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

SIGNAL_CHECK_INTERVAL = 0.05  # the longest a main thread blocks at once while it waits on the runtime


def wait_slice(timeout: float | None) -> float | None:
    """How long one blocking wait of the calling thread may last: ``timeout`` (None: no limit) in any thread but the
    main one, which waits at most ``SIGNAL_CHECK_INTERVAL`` at a time and then looks again."""
    if threading.current_thread() is not threading.main_thread():
        return timeout
    return SIGNAL_CHECK_INTERVAL if timeout is None else min(timeout, SIGNAL_CHECK_INTERVAL)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def future_result(future: Future[T], timeout: float | None) -> T:
    """``future.result(timeout)``, waited for in slices; raises ``TimeoutError`` when ``timeout`` passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return future.result(wait_slice(_remaining(deadline)))
        except TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                raise


def condition_wait_for(condition: threading.Condition, predicate: Callable[[], bool], timeout: float | None) -> bool:
    """``condition.wait_for(predicate, timeout)`` (``condition`` held), waited for in slices."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not predicate():
        remaining = _remaining(deadline)
        if remaining is not None and remaining <= 0:
            return False
        condition.wait(wait_slice(remaining))
    return True


def queue_get(items: queue.Queue[T]) -> T:
    """``items.get()``, waited for in slices."""
    while True:
        try:
            return items.get(timeout=wait_slice(None))
        except queue.Empty:
            continue


def join_thread(thread: threading.Thread) -> None:
    """``thread.join()``, waited for in slices."""
    while thread.is_alive():
        thread.join(wait_slice(None))
