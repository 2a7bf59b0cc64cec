"""The agents of a run: ``agents_per_node`` node agents on every alive node, pinned there (node affinity), and
replaced when one is lost while its node is alive. Every Ray call the driver makes about agents is here or in
runner.py."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from leanworker.actors.core.config import PoolConfig
from leanworker.actors.core.results import PoolSnapshot
from leanworker.actors.run import PlaceGone
from leanworker.scaleout.agent import NodeAgent

_ray_nodes: Callable[[], list[dict[str, Any]]] = ray.nodes  # untyped in Ray


def alive_nodes() -> list[str]:
    """The ids of the cluster's alive nodes."""
    return [node["NodeID"] for node in _ray_nodes() if node.get("Alive")]


AGENT_READY_TIMEOUT_S = 120.0
# What Ray raises when an agent, its process or its node is gone.
AGENT_GONE = (ray.exceptions.RayActorError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
              ray.exceptions.OwnerDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.LocalRayletDiedError)
AGENT_SHUTDOWN_TIMEOUT_S = 60.0

# No task retries, no restarts: a lost agent is our business (Ray's replay of a generator mixes attempts).
_RemoteAgent: Any = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(NodeAgent)


@dataclass
class AgentSlot:
    """One agent: where it runs and which incarnation it is (a replacement is a new generation)."""

    node_id: str
    handle: Any
    generation: int
    pid: int = 0
    gone: bool = False  # its node is dead: never replaced
    sessions_reported: int = 0  # its pool's sessions_opened, as last reported
    sessions_before: int = 0  # sessions of earlier generations on this slot
    replacing: threading.Lock = field(default_factory=threading.Lock)  # held while the agent is replaced


class Fleet:
    """The node agents, created on every alive node when the fleet starts."""

    def __init__(self, pool: PoolConfig, *, agents_per_node: int, chunk_rows: int) -> None:
        self.pool = dataclasses.replace(pool, trace=None)  # a tracer lives in the driver; it does not travel
        self._chunk_rows = chunk_rows
        self._lock = threading.Lock()
        self.final: dict[str, PoolSnapshot] | None = None
        self.slots = [AgentSlot(node_id, self._create(node_id), 1) for node_id in alive_nodes()
                      for _ in range(agents_per_node)]
        self._wait_ready(self.slots)

    def _create(self, node_id: str) -> Any:
        strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        return _RemoteAgent.options(scheduling_strategy=strategy,
                                    max_concurrency=self.pool.max_workers + 4).remote(self.pool, self._chunk_rows)

    def _wait_ready(self, slots: list[AgentSlot]) -> None:
        where = ray.get([slot.handle.where.remote() for slot in slots], timeout=AGENT_READY_TIMEOUT_S)
        for slot, (node_id, pid) in zip(slots, where):
            assert node_id == slot.node_id, "node affinity placed an agent on another node"
            slot.pid = pid

    def handle(self, index: int) -> tuple[Any, int]:
        """The live agent of slot ``index`` and its generation; PlaceGone when its node is dead."""
        slot = self.slots[index]
        with slot.replacing:  # a runner of an agent being replaced waits for the new one
            if slot.gone:
                raise PlaceGone(slot.node_id)
            return slot.handle, slot.generation

    def lost(self, index: int, generation: int) -> None:
        """Agent ``generation`` of slot ``index`` was lost: replace it if its node is alive, else retire the slot."""
        slot = self.slots[index]
        with slot.replacing:  # not the fleet's lock: progress and the other agents go on meanwhile
            if slot.generation != generation or slot.gone:
                return  # another runner of this agent replaced it already
            try:
                ray.kill(slot.handle, no_restart=True)
            except Exception:  # already dead: nothing to kill
                pass
            with self._lock:
                slot.sessions_before += slot.sessions_reported
                slot.sessions_reported = 0
            if slot.node_id not in set(alive_nodes()):
                slot.gone = True
                return
            slot.handle = self._create(slot.node_id)
            slot.generation += 1
            try:
                self._wait_ready([slot])
            except Exception:  # the node died meanwhile, or the agent cannot start there
                slot.gone = True

    def report_sessions(self, index: int, generation: int, sessions_opened: int) -> None:
        with self._lock:
            slot = self.slots[index]
            if slot.generation == generation:
                slot.sessions_reported = max(slot.sessions_reported, sessions_opened)

    def sessions_opened(self) -> int:
        """Sessions opened by every agent this fleet ever had, as they reported them."""
        with self._lock:
            return sum(slot.sessions_before + slot.sessions_reported for slot in self.slots)

    def snapshot(self) -> dict[str, PoolSnapshot]:
        """Each agent's pool snapshot, by node id (agents of one node: ``node_id#i``); an agent that cannot answer
        (lost, not yet replaced) is left out. After ``shutdown``: the figures each pool ended with."""
        if self.final is not None:
            return dict(self.final)
        live = [(i, slot) for i, slot in enumerate(self.slots) if not slot.gone]
        refs = [slot.handle.snapshot.remote() for _, slot in live]
        figures: dict[str, PoolSnapshot] = {}
        for (i, _), ref in zip(live, refs):
            try:
                figures[self.name(i)] = ray.get(ref, timeout=AGENT_READY_TIMEOUT_S)
            except AGENT_GONE:
                continue
        return figures

    def name(self, index: int) -> str:
        node_id = self.slots[index].node_id
        same_node = [i for i, slot in enumerate(self.slots) if slot.node_id == node_id]
        return node_id if len(same_node) == 1 else f"{node_id}#{same_node.index(index)}"

    def shutdown(self) -> None:
        """Shut every agent's pool down (workers reaped), keep their final figures, then end the agents."""
        live = [(i, slot) for i, slot in enumerate(self.slots) if not slot.gone]
        refs = [slot.handle.shutdown.remote() for _, slot in live]
        final: dict[str, PoolSnapshot] = {}
        try:
            ray.wait(refs, num_returns=len(refs), timeout=AGENT_SHUTDOWN_TIMEOUT_S)
            for (i, _), ref in zip(live, refs):
                try:
                    final[self.name(i)] = ray.get(ref, timeout=0)
                except (*AGENT_GONE, ray.exceptions.GetTimeoutError):
                    continue
        finally:
            self.final = final
            for _, slot in live:
                try:
                    ray.kill(slot.handle, no_restart=True)
                except Exception:  # already gone
                    pass
