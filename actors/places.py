"""Where a plan's attempts run. A run has ``concurrency`` runners, each with one :class:`Place`: on a local pool a
place holds at most one lease (:class:`LeasePlace`); on Ray it is a slot of a node agent (``leanworker.scaleout``).
The executor (executor.py) owns retries, bisection, commits and results; a place only runs one attempt at a time.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from leanworker.actors.config import PoolConfig, SessionKey
from leanworker.actors.lease import Lease
from leanworker.actors.results import Row, StreamSummary
from leanworker.actors.stream import RowStream
from leanworker.errors import (
    LeanWorkerError,
    MemoryLimitExceeded,
    NodeLost,
    ProtocolError,
    RequestTimeout,
    StaleLease,
    WorkerCrashed,
)

if TYPE_CHECKING:
    from leanworker.actors.workerpool import WorkerPool

# The failures a run retries on a fresh worker, then bisects. A CommandError is the capability's answer: never.
RETRYABLE = (WorkerCrashed, RequestTimeout, MemoryLimitExceeded, ProtocolError, NodeLost)

Attempt = tuple[tuple[Row, ...], StreamSummary | None]


def attempt_lease_timeout(config: PoolConfig) -> float:
    """How long one attempt may wait for its lease: the queue, a worker start, and a request in flight before it."""
    worker = config.worker
    return config.queue_wait_timeout + worker.startup_timeout + (worker.request_timeout or 3600.0)


class Requeue(Exception):
    """The attempt did not start through no fault of the batch (its worker was replaced between two batches):
    the batch goes back to the schedule without counting an attempt."""


class PlaceGone(Exception):
    """This place can never run anything again (its Ray node is dead): its runner ends."""


class Place(Protocol):
    """One runner's place to run attempts, one at a time."""

    @property
    def warm_key(self) -> SessionKey | None:
        """The key of the warm session this place holds, if any."""

    def attempt(self, key: SessionKey, command: str, request: Any, cancelled: threading.Event) -> Attempt:
        """Run one attempt; its rows and summary (None when it was cancelled). Raises LeanWorkerError, Requeue or
        PlaceGone."""

    def cancel(self) -> None:
        """Cancel the attempt in flight, if any (called from another thread)."""

    def close(self) -> None:
        """Give back what the place holds."""


class RunBackend(Protocol):
    """What a run runs on: how many runners, each one's place, and the sessions opened so far."""

    @property
    def concurrency(self) -> int: ...

    def place(self, index: int) -> Place: ...

    def sessions_opened(self) -> int: ...


class LeasePlace:
    """A place on a local pool: keeps its warm lease for the next batch of the same key."""

    def __init__(self, pool: WorkerPool, lease_timeout: float) -> None:
        self._pool = pool
        self._lease_timeout = lease_timeout
        self._lease: Lease | None = None
        self._stream: RowStream | None = None

    @property
    def warm_key(self) -> SessionKey | None:
        lease = self._lease
        return lease.key if lease is not None and lease.valid else None

    def attempt(self, key: SessionKey, command: str, request: Any, cancelled: threading.Event) -> Attempt:
        lease = self._lease
        if lease is not None and (lease.key != key or not lease.valid):
            self.close()
        if self._lease is None:
            self._lease = self._pool.lease(key, timeout=self._lease_timeout)
        lease = self._lease
        try:
            with lease.stream(command, request) as stream:
                self._stream = stream
                if cancelled.is_set():
                    stream.cancel()
                rows = tuple(stream)
                return rows, stream.summary
        except StaleLease:
            self.close()
            raise Requeue() from None
        except RETRYABLE:  # the retry must get a fresh worker
            self.close()
            raise
        except LeanWorkerError:
            if not lease.valid:  # its worker was killed or replaced: the next attempt gets a fresh one
                self.close()
            raise
        finally:
            self._stream = None

    def cancel(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.cancel()

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None


class LocalBackend:
    """Runs a plan on one local :class:`~leanworker.WorkerPool`: ``max_workers`` places."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._sessions_before = pool.snapshot().sessions_opened
        self._lease_timeout = attempt_lease_timeout(pool.config)

    @property
    def concurrency(self) -> int:
        return self._pool.config.max_workers

    def place(self, index: int) -> Place:
        return LeasePlace(self._pool, self._lease_timeout)

    def sessions_opened(self) -> int:
        try:
            return self._pool.snapshot().sessions_opened - self._sessions_before
        except LeanWorkerError:
            return 0
