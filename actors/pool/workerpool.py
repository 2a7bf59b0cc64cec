"""``lw.WorkerPool``: the public face of the pool. Admission and every decision are the pool actor's (actor.py)."""

from __future__ import annotations

import itertools
import os
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

import pykka

from leanworker.actors.core import lifecycle
from leanworker.actors.core.config import PoolConfig, SessionKey
from leanworker.actors.core.mailbox import tell_if_alive
from leanworker.actors.core.results import PoolSnapshot
from leanworker.actors.core.stats import PoolStats
from leanworker.actors.core.timers import Scheduler
from leanworker.actors.core.waits import settle_bound
from leanworker.actors.pool.actor import PoolActor
from leanworker.actors.pool.admission import Admission
from leanworker.actors.pool.affinity import SessionAffinity
from leanworker.actors.pool.book import PoolBook
from leanworker.actors.pool.budget import MemoryBudget
from leanworker.actors.pool.claim import LeaseClaim
from leanworker.actors.pool.cooldowns import KeyCooldowns
from leanworker.actors.pool.lease import Lease
from leanworker.actors.pool.messages import Abandon, Acquire, ClosePool, Release, TakePoolSnapshot, TakePoolStats
from leanworker.actors.pool.records import Waiter, key_label
from leanworker.actors.slot import MemorySampler
from leanworker.errors import PoolClosed

if TYPE_CHECKING:
    from leanworker.actors.run import FaultSource, PlanRun, RequestSpec
    from leanworker.planner.plan import ImportPlan, PlannedBatch


class WorkerPool:
    """A pool of supervised worker processes, leased by session key. A context manager.

    ``pool.lease(key)`` grants a warm worker of that key, starts one, or cycles an idle worker of another key; it
    waits in the admission queue at most ``timeout`` (default ``queue_wait_timeout``) and raises ``QueueTimeout``.
    """

    def __init__(self, config: PoolConfig = PoolConfig()) -> None:
        self.config = config
        self._scheduler = Scheduler("leanworker-pool-timers")
        self._sampler = MemorySampler(config.memory_sample_interval, config.memory_metric)
        admission = Admission(config.max_workers, MemoryBudget(config.max_total_rss_mib,
                                                               config.worker_rss_estimate_mib), SessionAffinity())
        self._book = PoolBook(admission, KeyCooldowns(config.restart), config.tracer)
        self._actor = PoolActor.start(config, self._scheduler, self._sampler, self._book)
        actor = self._actor
        self._book.attach(lambda lease_id, done: tell_if_alive(actor, Release(lease_id, done)))
        self._waiter_ids = itertools.count(1)
        self._closed = False
        self._final: PoolSnapshot | None = None
        self._final_stats: PoolStats | None = None
        self._owner_pid = os.getpid()
        self._runs: weakref.WeakSet[PlanRun] = weakref.WeakSet()  # shutdown cancels them and waits for their end
        lifecycle.register(self)

    def lease(self, key: SessionKey, timeout: float | None = None) -> Lease:
        """Wait for a warm worker of ``key`` (see the class docstring) and return the lease."""
        lifecycle.check_owner(self._owner_pid, "pool")  # the warm path, without a claim object (as _try_warm)
        if self._closed:
            raise PoolClosed("the pool is shut down")
        warm = self._book.try_grant_warm(key)
        if warm is not None:
            return warm
        return self._queue(key).wait(self.config.queue_wait_timeout if timeout is None else timeout)

    def claim(self, key: SessionKey) -> LeaseClaim:
        """Ask for a lease of ``key`` without waiting (actors/pool/claim.py): granted at once when a warm worker is
        idle and nobody waits, else queued, its future resolved by the pool actor. For callers that must never
        block (``AsyncWorkerPool``); ``lease()`` is this plus a wait."""
        warm = self._try_warm(key)
        if warm is not None:
            return LeaseClaim(key, lease=warm)
        return self._queue(key)

    def _try_warm(self, key: SessionKey) -> Lease | None:
        """A lease of an idle warm worker of ``key``, granted in this thread when nobody waits; else None."""
        lifecycle.check_owner(self._owner_pid, "pool")
        if self._closed:
            raise PoolClosed("the pool is shut down")
        return self._book.try_grant_warm(key)

    def _queue(self, key: SessionKey) -> LeaseClaim:
        """Queue a claim for ``key`` with the pool actor, which resolves its future."""
        future: Future[Lease] = Future()
        waiter = Waiter(next(self._waiter_ids), key, future, time.monotonic())
        if self._book.tracer is not None:  # in the caller's thread: a tracer may note whose request this is
            self._book.trace("lease_requested", waiter=waiter.waiter_id, key=key_label(key))
            future.add_done_callback(self._wait_ended(waiter.waiter_id))
        actor = self._actor
        try:
            actor.tell(Acquire(waiter))
        except pykka.ActorDeadError:
            raise PoolClosed("the pool is shut down") from None
        return LeaseClaim(key, future=future, withdraw=lambda: tell_if_alive(actor, Abandon(waiter.waiter_id)))

    def _wait_ended(self, waiter_id: int) -> Callable[[Future[Lease]], None]:
        """A done-callback that records the end of a queued caller's wait (so that a tracer can forget it)."""
        book = self._book

        def ended(future: Future[Lease]) -> None:
            if future.cancelled():
                outcome = "withdrawn"
            else:
                error = future.exception()
                outcome = "granted" if error is None else type(error).__name__
            book.trace("lease_wait_ended", waiter=waiter_id, outcome=outcome)
        return ended

    def run(self, plan: ImportPlan | Iterable[PlannedBatch], command: str, request: RequestSpec = None, *,
            retries: int = 1, output: str | None = None, resume: bool = False,
            faults: FaultSource | None = None) -> PlanRun:
        """Run every batch of ``plan`` with ``command`` on this pool; iterate the result (docs/semantics.md).

        A batch's request is ``{"modules": [...]}``; a dict ``request`` is merged with it (the batch's modules win);
        a callable ``request(batch)`` returns it. ``output=PATH`` writes committed rows exactly once (with
        ``resume=True`` a rerun of the same plan skips what is committed). ``faults``: a
        ``leanworker.testing.FaultPlan`` whose faults the run's attempts carry (a chaos run, docs/testing.md).
        """
        lifecycle.check_owner(self._owner_pid, "pool")
        if self._closed:
            raise PoolClosed("the pool is shut down")
        # Loaded here, not at the top: the run wing (and the planner it reads plans with) is a fifth of what
        # importing the pool costs, and a program that only leases never runs a plan. (AsyncWorkerPool, and so
        # `leanworker serve`, loads the run wing with leanworker.aio; `leanworker check` runs its items as a plan.)
        from leanworker.actors.pool.local_backend import LocalBackend
        from leanworker.actors.run import PlanRun

        run = PlanRun(LocalBackend(self), plan, command, request, retries=retries, output=output, resume=resume,
                      tracer=self.config.tracer, faults=faults)
        self._runs.add(run)
        return run

    @property
    def closed(self) -> bool:
        """True once ``shutdown()`` has begun."""
        return self._closed

    def snapshot(self) -> PoolSnapshot:
        """A consistent view of the pool; after ``shutdown()``, the figures it ended with."""
        lifecycle.check_owner(self._owner_pid, "pool")
        if self._final is not None:
            return self._final
        try:
            snapshot: Any = self._actor.ask(TakePoolSnapshot())
        except pykka.ActorDeadError:
            raise PoolClosed("the pool is shut down") from None
        assert isinstance(snapshot, PoolSnapshot)
        return snapshot

    def stats(self) -> PoolStats:
        """What the pool has measured over its life: requests by command and outcome with their durations, lease
        waits, session opens, memory by slot position (``leanworker.actors.core.stats.PoolStats``; what
        ``leanworker.metrics`` exposes). After ``shutdown()``, the figures it ended with."""
        lifecycle.check_owner(self._owner_pid, "pool")
        if self._final_stats is not None:
            return self._final_stats
        try:
            stats: Any = self._actor.ask(TakePoolStats())
        except pykka.ActorDeadError:
            raise PoolClosed("the pool is shut down") from None
        assert isinstance(stats, PoolStats)
        return stats

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop admission, fail queued waiters with ``PoolClosed``, end requests in flight, reap every worker.
        Runs still running on the pool are cancelled, and have ended when it returns (their results stay readable).

        In the child of an ``os.fork()`` it does nothing: the workers belong to the parent.
        """
        if self._closed or os.getpid() != self._owner_pid:
            return
        self._closed = True
        wait = timeout if timeout is not None else settle_bound(self.config.worker, shutdown=True, slack=15.0)
        runs = list(self._runs)
        for run in runs:  # first, so that their requests end cooperatively and no runner waits for a reader
            run.cancel()
        reply: Future[None] = Future()
        try:
            self._actor.tell(ClosePool(reply))
            reply.result(wait)
        except (pykka.ActorDeadError, FutureTimeout):
            pass
        finally:
            try:
                final = self._actor.ask(TakePoolSnapshot(), timeout=wait)
                self._final = final if isinstance(final, PoolSnapshot) else None
                stats = self._actor.ask(TakePoolStats(), timeout=wait)
                self._final_stats = stats if isinstance(stats, PoolStats) else None
            except (pykka.ActorDeadError, pykka.Timeout, FutureTimeout):
                pass
            try:
                self._actor.stop(block=True, timeout=wait)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
            deadline = time.monotonic() + wait
            for run in runs:
                run.join(max(0.0, deadline - time.monotonic()))
            self._scheduler.stop()
            self._sampler.stop()
            lifecycle.unregister(self)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()
