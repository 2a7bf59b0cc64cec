"""How long the runtime may take to keep a promise: the one home of its timeout arithmetic.

Every wait that must end (a caller waiting for a worker to be ready, for a cancelled request to settle, for a
shutdown, for a lease) is bounded by the configured steps it covers, then the kill ladder (SIGTERM, then SIGKILL,
each waiting ``kill_wait``) and a reap, plus slack for a loaded machine. A request without a timeout counts as
``UNBOUNDED_REQUEST`` seconds.
"""

from __future__ import annotations

from leanworker.actors.core.config import PoolConfig, WorkerConfig

UNBOUNDED_REQUEST = 3600.0


def settle_bound(config: WorkerConfig, *, startup: bool = False, request: bool = False, cancel: bool = False,
                 shutdown: bool = False, slack: float = 10.0) -> float:
    """An upper bound, in seconds, for the steps named to end and the kill ladder after them."""
    total = 2 * config.kill_wait + slack
    if startup:
        opening = config.session_open_timeout
        total += config.startup_timeout + (opening if opening is not None else UNBOUNDED_REQUEST)
    if request:
        total += config.request_timeout if config.request_timeout is not None else UNBOUNDED_REQUEST
    if cancel:
        total += config.cancel_grace
    if shutdown:
        total += config.shutdown_timeout
    return total


def lease_bound(config: PoolConfig) -> float:
    """How long one attempt of a plan may wait for its lease: the queue, a worker start (its session open too), and
    a request in flight before it."""
    worker = config.worker
    request = worker.request_timeout if worker.request_timeout is not None else UNBOUNDED_REQUEST
    opening = worker.session_open_timeout if worker.session_open_timeout is not None else UNBOUNDED_REQUEST
    return config.queue_wait_timeout + worker.startup_timeout + opening + request
