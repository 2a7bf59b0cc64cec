"""``LeaseClaim``: a request for a lease that does not wait, for callers that must never block (an event loop).

``WorkerPool.lease`` is built on it: a claim is either granted at once (a warm worker, in the caller's thread) or
pending, a ``concurrent.futures.Future`` that the pool actor resolves with the lease or the typed error. Whoever
waits on it (a thread with :meth:`LeaseClaim.wait`, or an event loop with a done-callback that hops to the loop)
gives up with :meth:`LeaseClaim.abandon`, which takes the waiter out of the queue, so that it never receives a lease.
A worker started for a claim that is abandoned goes on starting (its session open included): it serves the next
lease of its key, warm.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.interruptible import future_result
from leanworker.errors import QueueTimeout

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

    def wait(self, timeout: float) -> Lease:
        """Wait in this thread, at most ``timeout`` seconds, for the lease (``QueueTimeout`` after that).

        A caller that leaves the wait (its timeout, or an exception such as ``KeyboardInterrupt``) withdraws the
        claim, and a lease granted in that instant is released at once. ``abandon()`` from another thread ends the
        wait with ``concurrent.futures.CancelledError``. In the main thread the wait looks up every
        ``SIGNAL_CHECK_INTERVAL`` (actors/core/interruptible.py), so a Ctrl-C is seen whichever thread the kernel gave it to.
        """
        if self.lease is not None:
            return self.lease
        future = self.future
        assert future is not None
        try:
            return future_result(future, timeout)
        except TimeoutError:
            if self.abandon():
                raise QueueTimeout(f"no worker for {self.key.capability} within {timeout:g} s") from None
            return future.result()  # granted as we gave up: it is ours
        except BaseException:
            if not future.cancelled() and not self.abandon():
                _release_granted(future)  # granted as we left: nobody else would release it
            raise


def _release_granted(future: Future[Lease]) -> None:
    """Release the lease ``future`` holds or is about to hold (the pool resolves it at this moment)."""
    try:
        lease = future.result()
    except BaseException as exc:
        if future.done() and future.exception() is exc:
            return  # the grant failed with its typed error: there is no lease
        # Not the grant's error: a signal handler raised here (a second Ctrl-C) while the pool hands the lease over.
        # Swallowing it would leave that lease held by this future until the collector found it; release it as it
        # is handed over (from the pool's thread, without waiting), and let the interrupt go on.
        future.add_done_callback(_release_if_granted)
        raise
    lease.release()


def _release_if_granted(future: Future[Lease]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().release_nowait()
