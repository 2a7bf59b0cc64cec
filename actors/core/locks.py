"""The runtime's locks, made in one place with a name from the written lock order (docs/architecture.md, The lock
order), and checked against that order where ``LEANWORKER_LOCK_CHECK=1`` (the test suite sets it).

Unchecked, :func:`lock`, :func:`rlock` and :func:`condition` return plain ``threading`` objects: nothing is added
to the hot path. Checked, each lock records which named locks its thread holds; taking a lock while holding one that
comes later in :data:`ORDER` (or another lock of the same name) is an inversion: it is recorded in
:data:`violations` with both names and the thread, and written to stderr. A lock taken without waiting
(``acquire(blocking=False)``) cannot deadlock and is not checked. So is a wait for an actor's answer while holding a
lock held only for bookkeeping, and so is starting an actor (:func:`check_wait`; actors/core/mailbox.py makes pykka's
futures and actor starts call it).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

LOCK_CHECK_ENV = "LEANWORKER_LOCK_CHECK"

# Outer to inner: a thread holding a lock may take only locks further down this list.
ORDER: tuple[str, ...] = (
    "host_read",     # in a worker process: one reader of the parent's frames at a time
    "host_running",  # in a worker process: the command running and its cancel state
    "host_writer",   # in a worker process: the protocol writer and its row batch
    "lease",         # a slot's leases (pool/slot_leases.py): one command admitted at a time
    "pool",          # the pool's book: slots, queue, leases
    "run",           # a plan run's counts
    "schedule",      # a plan run's pending batches
    "journal",       # a plan run's output journal
    "read_side",     # one reader of a generation's stdout at a time
    "gate",          # a slot's admission gate
    "connection",    # a generation's request ids
    "channel",       # a request's buffer
    "pipe",          # the write end of a worker's stdin
    "scheduler",     # the timer heap
    "counters",      # a slot's counters
    "stderr_tail",   # a worker's stderr tail
    "sampler",       # the memory sampler's targets
    "lifecycle",     # live pools and workers, pipe descriptors
    "containment",   # the cgroup probe
    "interceptors",  # the line of installed interceptors (core/intercept.py)
    "fault_plan",    # a fault plan's counts and record (leanworker.testing): taken under the gate's, by its hook
    "trace_sink",    # a trace sink's own state (a sink group's failure counts, the OpenTelemetry tracer's spans)
)
RANK = {name: rank for rank, name in enumerate(ORDER)}
# The locks a thread may hold while it waits for an actor's answer: a worker host's (no actors there) and a lease's (one
# command admitted at a time: a command that finds the gate shut asks the supervisor to admit it). Every lock further
# down the order, the pool's first, is held only for bookkeeping (docs/architecture.md, The lock order).
HELD_ACROSS_WAITS = frozenset({"host_read", "host_running", "host_writer", "lease"})

checking = os.environ.get(LOCK_CHECK_ENV) == "1"
fail_fast = False  # a worker process ends at once on an inversion (the parent's test sees the crash and its stderr)
violations: list[str] = []
_held = threading.local()


def _stack() -> list[OrderedLock]:
    stack: list[OrderedLock] | None = getattr(_held, "stack", None)
    if stack is None:
        stack = _held.stack = []
    return stack


class OrderedLock:
    """A lock (or re-entrant lock) that checks the order in which its thread takes named locks."""

    def __init__(self, name: str, inner: Any) -> None:
        if name not in RANK:
            raise ValueError(f"lock {name!r} is not in the written lock order")
        self.name = name
        self.rank = RANK[name]
        self._inner = inner

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking:
            self._check()
        acquired: bool = self._inner.acquire(blocking, timeout)
        if acquired:
            _stack().append(self)
        return acquired

    def release(self) -> None:
        stack = _stack()
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is self:
                del stack[index]
                break
        self._inner.release()

    def _check(self) -> None:
        for held in _stack():
            if held is self:
                return  # re-entry of a re-entrant lock (a plain lock would deadlock on itself anyway)
            if held.rank >= self.rank:
                _violation(f"lock order inverted in thread {threading.current_thread().name}: took {self.name!r} "
                           f"while holding {held.name!r} (docs/architecture.md, The lock order)")
                return

    def locked(self) -> bool:
        return bool(self._inner.locked())

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # What threading.Condition uses of its lock, so that a condition over a checked lock keeps the held stack true.
    def _is_owned(self) -> bool:
        if hasattr(self._inner, "_is_owned"):
            return bool(self._inner._is_owned())
        if self._inner.acquire(False):
            self._inner.release()
            return False
        return True

    def _release_save(self) -> Any:
        stack = _stack()
        if self in stack:
            stack.remove(self)
        if hasattr(self._inner, "_release_save"):
            return self._inner._release_save()
        self._inner.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        self._check()
        if hasattr(self._inner, "_acquire_restore"):
            self._inner._acquire_restore(state)
        else:
            self._inner.acquire()
        _stack().append(self)


def _violation(text: str) -> None:
    violations.append(text)
    print(f"leanworker: {text}", file=sys.stderr, flush=True)
    if fail_fast:
        os._exit(70)


def check_wait(what: str) -> None:
    """This thread is about to wait for ``what`` (an actor's answer, a new actor's thread to run): record a violation if it holds a lock that is
    held only for bookkeeping (any but :data:`HELD_ACROSS_WAITS`). Does nothing unless checking."""
    if not checking:
        return
    for held in _stack():
        if held.name not in HELD_ACROSS_WAITS:
            _violation(f"thread {threading.current_thread().name} waits for {what} while holding {held.name!r}, a "
                       "lock held only for bookkeeping (docs/architecture.md, The lock order)")
            return


def lock(name: str) -> Any:
    """A lock named after its place in :data:`ORDER` (a plain ``threading.Lock`` unless checking)."""
    return OrderedLock(name, threading.Lock()) if checking else threading.Lock()


def rlock(name: str) -> Any:
    """A re-entrant lock named after its place in :data:`ORDER`."""
    return OrderedLock(name, threading.RLock()) if checking else threading.RLock()


def condition(name: str, over: Any = None) -> threading.Condition:
    """A condition over ``over`` (or over a new re-entrant lock named ``name``).

    Re-entrant because ``threading.Condition`` borrows its wait helpers from its lock: an ``RLock`` has them in C,
    a plain ``Lock`` has none, so a condition over one costs three caught ``AttributeError`` to make (about 2 us, and
    a request makes one) and a Python-level ownership probe on every ``notify``."""
    return threading.Condition(over if over is not None else rlock(name))
