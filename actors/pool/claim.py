"""``LeaseClaim``: a request for a lease that does not wait, for callers that must never block (an event loop).

``WorkerPool.lease`` is built on it: a claim is either granted at once (a warm worker, in the caller's thread) or
pending, a ``concurrent.futures.Future`` that the pool actor resolves with the lease or the typed error. Whoever
waits on it (a thread with ``future.result``, or an event loop with a done-callback that hops to the loop) gives
up with :meth:`LeaseClaim.abandon`, which takes the waiter out of the queue, so that it never receives a lease.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

from leanworker.actors.core.config import SessionKey

if TYPE_CHECKING:
    from leanworker.actors.pool.lease import Lease


class LeaseClaim:
    """A lease granted at once (``lease``), or pending (``future``). Use ``WorkerPool.claim(key)``."""

    __slots__ = ("key", "lease", "future", "_withdraw")

    def __init__(self, key: SessionKey, lease: Lease | None = None, future: Future[Lease] | None = None,
                 withdraw: Callable[[], object] | None = None) -> None:
        self.key = key
        self.lease = lease
        self.future = future
        self._withdraw = withdraw

    def abandon(self) -> bool:
        """Give up a pending claim. True if it was withdrawn (the pool will never grant it); False if it was
        resolved first: then ``future`` holds the lease, which the caller owns and must release, or the error."""
        future = self.future
        if future is None or not future.cancel():
            return False
        if self._withdraw is not None:
            self._withdraw()
        return True
