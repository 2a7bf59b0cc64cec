"""Running a plan on Ray's node agents: each runner's place is one slot of one agent (agent.py); an attempt is one
streaming call whose chunks are held until the attempt ends well, so the rows of a lost or failed attempt are never
committed. The counterpart of a local pool's places (actors/pool/local_run.py); the run's backend that hands these
places out is agent_backend.py."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import ray

from leanworker.actors.core.config import SessionKey
from leanworker.actors.core.results import Row, StreamSummary
from leanworker.actors.run import Attempt
from leanworker.errors import NodeLost, ProtocolError
from leanworker.scaleout.fleet import AGENT_GONE, Fleet


def start_attempt(agent: Any, attempt_id: str, key: SessionKey, command: str, request: Any, lease_timeout: float,
                  backpressure: int) -> Any:
    """Start one attempt on ``agent``: a streaming generator of its items that runs at most ``backpressure``
    items ahead of the reader. Ray never retries it (the agent's methods have no task retries)."""
    return agent.run_batch.options(num_returns="streaming", _generator_backpressure_num_objects=backpressure
                                   ).remote(attempt_id, key, command, request, lease_timeout)


class AgentPlace:
    """Runner ``index``'s place: one of ``pool.max_workers`` slots of one agent."""

    def __init__(self, fleet: Fleet, agent_index: int, lease_timeout: float, backpressure: int) -> None:
        self._fleet = fleet
        self._agent_index = agent_index
        self._lease_timeout = lease_timeout
        self._backpressure = backpressure
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
                                   self._backpressure)
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
