"""Session affinity: when a waiter may evict another key's warm worker instead of waiting for one of its own key.

A pure policy the pool actor consults (tests drive it without processes). Opening a session is the expensive step
(for Lean: seconds and gigabytes), so a waiter whose key already has a live worker waits for that worker rather
than cycling a warm worker of another key:

- while a worker of its key is starting, it waits (that worker is about to be ready);
- while its key's workers are busy, it waits until its key has shown no activity (a worker granted, released or
  ready) for as long as opening a session of that key takes (the last measured open, at least ``MIN_PATIENCE``),
  counted from when it queued: a worker busy that long is better replaced than waited for.

A waiter whose key has no live worker may evict at once. So no waiter starves: it is served by its key's workers in
queue order, or evicts after the bound (docs/semantics.md, Admission).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

MIN_PATIENCE = 0.05  # seconds: below this, waiting is noise and evicting is cheap anyway


class SessionAffinity:
    """Measured session-open times per key, and the eviction rule built on them."""

    def __init__(self) -> None:
        self._open_s: dict[Hashable, float] = {}
        self._activity: dict[Hashable, float] = {}

    def touch(self, key: Hashable, now: float) -> None:
        """A worker of ``key`` became ready at ``now``."""
        self._activity[key] = now

    def waited(self, key: Hashable, enqueued_at: float, now: float, last_used: Iterable[float] = ()) -> float:
        """How long a waiter of ``key`` has waited with no sign of life from its key's workers (``last_used``: when
        each was last granted or released; the pool's warm path records only that)."""
        return now - max(enqueued_at, self._activity.get(key, enqueued_at), *last_used)

    def record_open(self, key: Hashable, seconds: float) -> None:
        """A worker of ``key`` became ready ``seconds`` after it was started."""
        self._open_s[key] = max(0.0, seconds)

    def patience(self, key: Hashable) -> float | None:
        """How long a waiter of ``key`` waits for its own key's worker; None until an open has been measured."""
        measured = self._open_s.get(key)
        return None if measured is None else max(measured, MIN_PATIENCE)

    def may_evict_for(self, key: Hashable, waited_s: float, own_key_alive: bool, own_key_starting: bool) -> bool:
        """Whether a waiter of ``key`` that waited ``waited_s`` (see :meth:`waited`) may evict another key's idle
        worker."""
        if not own_key_alive:
            return True
        if own_key_starting:
            return False
        patience = self.patience(key)
        return patience is not None and waited_s >= patience

    def evictable_in(self, key: Hashable, waited_s: float) -> float | None:
        """Seconds until :meth:`may_evict_for` turns true for a waiter whose key has a live worker (None: unknown
        yet; its worker is still opening its first session, and its readiness will trigger a new look)."""
        patience = self.patience(key)
        return None if patience is None else max(0.0, patience - waited_s)
