"""Running a plan on a fleet of Ray node agents: ``pool.max_workers`` places per agent, each an :class:`AgentPlace`
(agent_run.py). The counterpart of a local pool's backend (actors/pool/local_backend.py)."""

from __future__ import annotations

from leanworker.actors.core.config import PoolConfig
from leanworker.actors.core.waits import lease_bound
from leanworker.actors.run import Place, PlaceGone
from leanworker.scaleout.agent_run import AgentPlace
from leanworker.scaleout.fleet import Fleet


class AgentBackend:
    """A plan run's places on a fleet of node agents: ``pool.max_workers`` places per agent."""

    def __init__(self, fleet: Fleet, pool: PoolConfig, backpressure: int) -> None:
        self._fleet = fleet
        self._pool = pool
        self._backpressure = backpressure
        self._before = fleet.sessions_opened()
        self._lease_timeout = lease_bound(pool)

    @property
    def concurrency(self) -> int:
        return len(self._fleet.slots) * self._pool.max_workers

    def place(self, index: int) -> Place:
        agent_index = index % len(self._fleet.slots)  # spread the runners over the agents
        if self._fleet.slots[agent_index].gone:
            raise PlaceGone(self._fleet.slots[agent_index].node_id)
        return AgentPlace(self._fleet, agent_index, self._lease_timeout, self._backpressure)

    def sessions_opened(self) -> int:
        return self._fleet.sessions_opened() - self._before
