"""``RayRunner``: ``pool.run`` across the nodes of a Ray cluster (docs/distributed.md).

The driver (this process) runs the same :class:`~leanworker.PlanRun` as a local pool: the schedule, retries,
bisection, quarantine, commits and exactly-once output are all here, on the driver. Each runner's place is one slot
of one node agent (agent.py); an attempt is one streaming call whose chunks are held until the attempt ends well,
so the rows of a lost or failed attempt are never committed.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

import ray

from leanworker.actors.core.config import PoolConfig, SessionKey
from leanworker.actors.core.results import PoolSnapshot, Row, StreamSummary
from leanworker.actors.core.waits import lease_bound
from leanworker.actors.run import Attempt, FaultSource, Place, PlaceGone, PlanRun, RequestSpec
from leanworker.errors import NodeLost, ProtocolError, UsageError
from leanworker.planner.plan import ImportPlan, PlannedBatch
from leanworker.scaleout.fleet import AGENT_GONE, AGENT_SHUTDOWN_TIMEOUT_S, Fleet


class NotConnected(UsageError, RuntimeError):
    """There is no Ray connection: call ``ray.init(address=...)`` before creating a ``RayRunner``."""


def start_attempt(agent: Any, attempt_id: str, key: SessionKey, command: str, request: Any, lease_timeout: float,
                  backpressure: int) -> Any:
    """Start one attempt on ``agent``: a streaming generator of its items that runs at most ``backpressure``
    items ahead of the reader. Ray never retries it (the agent's methods have no task retries)."""
    return agent.run_batch.options(num_returns="streaming", _generator_backpressure_num_objects=backpressure
                                   ).remote(attempt_id, key, command, request, lease_timeout)


class AgentPlace:
    """Runner ``index``'s place: one of ``pool.max_workers`` slots of one agent."""

    def __init__(self, runner: RayRunner, agent_index: int, lease_timeout: float) -> None:
        self._runner = runner
        self._fleet = runner.fleet
        self._agent_index = agent_index
        self._lease_timeout = lease_timeout
        self._warm: SessionKey | None = None
        self._current: tuple[Any, str] | None = None
        self._lock = threading.Lock()

    @property
    def warm_key(self) -> SessionKey | None:
        return self._warm

    def attempt(self, key: SessionKey, command: str, request: Any, cancelled: threading.Event) -> Attempt:
        handle, generation = self._fleet.handle(self._agent_index)
        attempt_id = uuid.uuid4().hex
        chunks: list[list[Row]] = []
        self._warm = None
        try:
            stream = start_attempt(handle, attempt_id, key, command, request, self._lease_timeout,
                                   self._runner.backpressure)
            with self._lock:
                self._current = (handle, attempt_id)
            if cancelled.is_set():
                self.cancel()
            for ref in stream:
                item = ray.get(ref)
                if item[0] == "rows":
                    chunks.append(item[1])
                    continue
                self._fleet.report_sessions(self._agent_index, generation, item[2])
                if item[0] == "error":
                    raise item[1]
                summary: StreamSummary | None = item[1]
                self._warm = key
                return tuple(row for chunk in chunks for row in chunk), summary
            raise ProtocolError("the agent's stream ended without a terminal item")
        except AGENT_GONE as exc:
            node_id = self._fleet.slots[self._agent_index].node_id
            self._fleet.lost(self._agent_index, generation)
            raise NodeLost(f"the agent on node {node_id[:12]} was lost mid-batch ({type(exc).__name__}); "
                           f"{sum(len(c) for c in chunks)} tentative rows dropped",
                           node_id=node_id, reason=str(exc).splitlines()[0] if str(exc) else "") from None
        finally:
            with self._lock:
                self._current = None

    def cancel(self) -> None:
        with self._lock:
            current = self._current
        if current is not None:
            handle, attempt_id = current
            handle.cancel.remote(attempt_id)

    def close(self) -> None:
        self._warm = None


class _RayBackend:
    def __init__(self, runner: RayRunner) -> None:
        self._runner = runner
        self._before = runner.fleet.sessions_opened()
        self._lease_timeout = lease_bound(runner.pool)

    @property
    def concurrency(self) -> int:
        return len(self._runner.fleet.slots) * self._runner.pool.max_workers

    def place(self, index: int) -> Place:
        agent_index = index % len(self._runner.fleet.slots)  # spread the runners over the agents
        if self._runner.fleet.slots[agent_index].gone:
            raise PlaceGone(self._runner.fleet.slots[agent_index].node_id)
        return AgentPlace(self._runner, agent_index, self._lease_timeout)

    def sessions_opened(self) -> int:
        return self._runner.fleet.sessions_opened() - self._before


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
        run = PlanRun(_RayBackend(self), plan, command, request, retries=retries, output=output, resume=resume,
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
