"""Running a plan on a local pool: each runner's place holds at most one lease, kept warm for the next batch of
the same key (the run wing's executor owns retries, bisection, commits and results). Cancelling the run cancels a
place's request, or withdraws the lease it waits for (a worker that is opening its session for it opens on, for a
later lease): a cancelled run never waits for a session open."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError
from typing import Any, Protocol

from leanworker.actors.core.config import PoolConfig, SessionKey
from leanworker.actors.core.results import PoolSnapshot
from leanworker.actors.pool.claim import LeaseClaim
from leanworker.actors.pool.lease import Lease
from leanworker.actors.run import Attempt, Requeue
from leanworker.actors.slot import RowStream
from leanworker.errors import LeanWorkerError, StaleLease, WorkerLost


class LeaseSource(Protocol):
    """What a local run needs of its pool (``WorkerPool`` is one)."""

    @property
    def config(self) -> PoolConfig: ...

    def claim(self, key: SessionKey) -> LeaseClaim: ...

    def snapshot(self) -> PoolSnapshot: ...


class LeasePlace:
    """A place on a local pool: keeps its warm lease for the next batch of the same key."""

    def __init__(self, pool: LeaseSource, lease_timeout: float) -> None:
        self._pool = pool
        self._lease_timeout = lease_timeout
        self._lease: Lease | None = None
        self._claim: LeaseClaim | None = None  # the lease being waited for
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
            self._lease = self._wait_for_lease(key, cancelled)
            if self._lease is None:
                return (), None  # the run was cancelled while this place waited
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
        except WorkerLost:  # the retry must get a fresh worker
            self.close()
            raise
        except LeanWorkerError:
            if not lease.valid:  # its worker was killed or replaced: the next attempt gets a fresh one
                self.close()
            raise
        finally:
            self._stream = None

    def _wait_for_lease(self, key: SessionKey, cancelled: threading.Event) -> Lease | None:
        """A lease of ``key``, or None when the run is cancelled first (the claim is withdrawn then)."""
        claim = self._claim = self._pool.claim(key)
        try:
            if cancelled.is_set():  # cancel() may have run before the claim was there to withdraw
                claim.abandon()
            return claim.wait(self._lease_timeout)
        except CancelledError:
            return None
        finally:
            self._claim = None

    def cancel(self) -> None:
        claim = self._claim
        if claim is not None:
            claim.abandon()
        stream = self._stream
        if stream is not None:
            stream.cancel()

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None
