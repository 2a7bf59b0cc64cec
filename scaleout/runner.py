"""``RayRunner``: ``pool.run`` across the nodes of a Ray cluster (docs/distributed.md).

The driver (this process) runs the same :class:`~leanworker.PlanRun` as a local pool: the schedule, retries,
bisection, quarantine, commits and exactly-once output are all here, on the driver. Each runner's place is one slot
of one node agent (agent_run.py), handed out by the run's backend (agent_backend.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import ray

from leanworker.actors.core.config import PoolConfig
from leanworker.actors.core.results import PoolSnapshot
from leanworker.actors.run import FaultSource, PlanRun, RequestSpec
from leanworker.errors import UsageError
from leanworker.planner.plan import ImportPlan, PlannedBatch
from leanworker.scaleout.agent_backend import AgentBackend
from leanworker.scaleout.fleet import AGENT_SHUTDOWN_TIMEOUT_S, Fleet


class NotConnected(UsageError, RuntimeError):
    """There is no Ray connection: call ``ray.init(address=...)`` before creating a ``RayRunner``."""


class RayRunner:
    """Runs plans on every node of the caller's Ray cluster: one agent per node (``agents_per_node``), each with
    its own local pool configured by ``pool``. A context manager; ``run`` has the signature and results of
    ``WorkerPool.run``.

    ``chunk_rows`` rows travel per chunk; an agent runs at most ``backpressure`` chunks ahead of the driver.
    ``affinity=False`` gives the round-robin baseline (batches in plan order, whatever a node holds warm).
    """

    def __init__(self, pool: PoolConfig = PoolConfig(), *, agents_per_node: int = 1, chunk_rows: int = 512,
                 backpressure: int = 4, affinity: bool = True) -> None:
        if agents_per_node < 1:
            raise ValueError("agents_per_node must be >= 1")
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        if backpressure < 1:
            raise ValueError("backpressure must be >= 1")
        if not ray.is_initialized():
            raise NotConnected("RayRunner needs a Ray connection: call ray.init(address=...) first "
                               "(address='auto' for a cluster started with `ray start` on this machine)")
        self.pool = pool
        self.chunk_rows = chunk_rows
        self.backpressure = backpressure
        self.affinity = affinity
        self.fleet = Fleet(pool, agents_per_node=agents_per_node, chunk_rows=chunk_rows)
        self._closed = False
        self._runs: weakref.WeakSet[PlanRun] = weakref.WeakSet()  # close() cancels them and waits for their end

    def run(self, plan: ImportPlan | Iterable[PlannedBatch], command: str, request: RequestSpec = None, *,
            retries: int = 1, output: str | None = None, resume: bool = False,
            faults: FaultSource | None = None) -> PlanRun:
        """Run every batch of ``plan`` with ``command`` across the cluster; iterate the result. Same meaning as
        ``WorkerPool.run`` (docs/semantics.md), plus ``NodeLost`` among the failures that are retried; with
        ``faults``, a fault plan's ``node_lost`` rules kill the agent of the node an attempt runs on."""
        if self._closed:
            raise NotConnected("the runner is closed")
        run = PlanRun(AgentBackend(self.fleet, self.pool, self.backpressure), plan, command, request, retries=retries, output=output, resume=resume,
                      affinity=self.affinity, faults=faults, node_faults=True)
        self._runs.add(run)
        return run

    def snapshot(self) -> dict[str, PoolSnapshot]:
        """Each node agent's pool snapshot, by node id; after ``close()``, the figures each pool ended with."""
        return self.fleet.snapshot()

    def close(self) -> None:
        """Shut every agent's pool down and end the agents (the Ray connection stays the caller's). Runs still
        running are cancelled first, and have ended when it returns (their results stay readable), as with
        ``WorkerPool.shutdown``."""
        if not self._closed:
            self._closed = True
            runs = list(self._runs)
            for run in runs:
                run.cancel()
            self.fleet.shutdown()
            for run in runs:
                run.join(AGENT_SHUTDOWN_TIMEOUT_S)

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
