"""Running a plan on one local pool: ``max_workers`` places, each a :class:`LeasePlace`."""

from __future__ import annotations

from leanworker.actors.core.waits import lease_bound
from leanworker.actors.pool.local_run import LeasePlace, LeaseSource
from leanworker.actors.run import Place
from leanworker.errors import LeanWorkerError


class LocalBackend:
    """Runs a plan on one local pool (a :class:`~leanworker.WorkerPool`): ``max_workers`` places."""

    def __init__(self, pool: LeaseSource) -> None:
        self._pool = pool
        self._sessions_before = pool.snapshot().sessions_opened
        self._lease_timeout = lease_bound(pool.config)

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
