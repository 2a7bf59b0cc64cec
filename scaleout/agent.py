"""The node agent: one Ray actor per node, owning a local :class:`~leanworker.WorkerPool`. It runs one attempt of a
batch per call and streams the rows back in chunks; it never retries (the driver does, runner.py).

What an attempt yields, in order: ``("rows", [Row, ...])`` chunks of at most ``chunk_rows`` rows, then exactly one
terminal item, ``("done", StreamSummary | None, sessions_opened)`` (None: the attempt was cancelled) or
``("error", LeanWorkerError, sessions_opened)``. A leanworker error is yielded, never raised, so that it reaches
the driver as itself rather than wrapped by Ray; whatever Ray itself raises on the driver means the agent is lost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

from leanworker.actors.core.config import PoolConfig, SessionKey
from leanworker.actors.core.env import AGENT_PID_ENV
from leanworker.actors.core.results import PoolSnapshot, Row
from leanworker.actors.pool import Lease, LeaseClaim, WorkerPool
from leanworker.actors.slot import RowStream
from leanworker.errors import LeanWorkerError

AgentItem = tuple[Any, ...]
KEEP_COUNTS = 1024  # chunk counts kept for the most recent attempts


class NodeAgent:
    """Runs attempts on its node's pool. Wrapped by ``ray.remote`` in runner.py; plain Python here."""

    def __init__(self, pool: PoolConfig, chunk_rows: int) -> None:
        os.environ[AGENT_PID_ENV] = str(os.getpid())  # its workers know their parent is a node agent (node_lost)
        self._pool = WorkerPool(pool)
        self._chunk_rows = chunk_rows
        self._lock = threading.Lock()
        self._streams: dict[str, RowStream] = {}
        self._claims: dict[str, LeaseClaim] = {}  # attempts waiting for their lease
        self._cancelled: set[str] = set()
        self._chunks_sent: dict[str, int] = {}

    def where(self) -> tuple[str, int]:
        """The Ray node id this agent runs on, and its process id."""
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()

    def run_batch(self, attempt_id: str, key: SessionKey, command: str, request: Any,
                  lease_timeout: float) -> Iterator[AgentItem]:
        """One attempt: lease a worker of ``key`` (warm if the pool has one), stream ``command``, yield chunks."""
        try:
            lease = self._wait_for_lease(attempt_id, key, lease_timeout)
            if lease is None:  # cancelled while it waited: a worker opening its session opens on, for later
                summary = None
            else:
                with lease, lease.stream(command, request) as stream:
                    with self._lock:
                        self._streams[attempt_id] = stream
                        if attempt_id in self._cancelled:
                            stream.cancel()
                    chunk: list[Row] = []
                    for row in stream:
                        chunk.append(row)
                        if len(chunk) >= self._chunk_rows:
                            yield self._chunk(attempt_id, chunk)
                            chunk = []
                    if chunk:
                        yield self._chunk(attempt_id, chunk)
                    summary = stream.summary
        except LeanWorkerError as exc:
            yield ("error", exc, self._sessions_opened())
        else:
            yield ("done", summary, self._sessions_opened())
        finally:
            with self._lock:
                self._streams.pop(attempt_id, None)
                self._cancelled.discard(attempt_id)

    def _wait_for_lease(self, attempt_id: str, key: SessionKey, timeout: float) -> Lease | None:
        """The attempt's lease, or None when it is cancelled first (its claim is withdrawn then)."""
        claim = self._pool.claim(key)
        with self._lock:
            self._claims[attempt_id] = claim
            cancelled = attempt_id in self._cancelled
        try:
            if cancelled:
                claim.abandon()
            return claim.wait(timeout)
        except CancelledError:
            return None
        finally:
            with self._lock:
                self._claims.pop(attempt_id, None)

    def _chunk(self, attempt_id: str, rows: list[Row]) -> AgentItem:
        with self._lock:
            self._chunks_sent[attempt_id] = self._chunks_sent.get(attempt_id, 0) + 1
            if len(self._chunks_sent) > KEEP_COUNTS:  # the oldest attempt's count goes
                del self._chunks_sent[next(iter(self._chunks_sent))]
        return ("rows", rows)

    def chunks_sent(self, attempt_id: str) -> int:
        """How many chunks of ``attempt_id`` this agent has handed to Ray so far (backpressure checks)."""
        with self._lock:
            return self._chunks_sent.get(attempt_id, 0)

    def in_flight(self) -> tuple[int, int]:
        """Attempts running now, and the chunks they have handed to Ray so far."""
        with self._lock:
            return len(self._streams), sum(self._chunks_sent.get(a, 0) for a in self._streams)

    def cancel(self, attempt_id: str) -> None:
        """Cancel an attempt, even one that has not reached the agent yet."""
        with self._lock:
            stream = self._streams.get(attempt_id)
            claim = self._claims.get(attempt_id)
            if stream is None:
                self._cancelled.add(attempt_id)
        if claim is not None:
            claim.abandon()  # it waits for its lease: it ends at once
        if stream is not None:
            stream.cancel()

    def snapshot(self) -> PoolSnapshot:
        """The agent's pool snapshot."""
        return self._pool.snapshot()

    def _sessions_opened(self) -> int:
        try:
            return self._pool.snapshot().sessions_opened
        except LeanWorkerError:
            return 0

    def shutdown(self) -> PoolSnapshot:
        """Shut the pool down (every worker reaped) and return its final figures."""
        self._pool.shutdown()
        return self._pool.snapshot()
