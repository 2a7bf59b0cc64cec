"""How long the runtime may take to keep a promise: the one home of its timeout arithmetic.

Every wait that must end (a caller waiting for a worker to be ready, for a cancelled request to settle, for a
shutdown, for a lease) is bounded by the configured steps it covers (:func:`steps`), then the kill ladder (SIGTERM,
then SIGKILL, each waiting ``kill_wait``) and a reap, plus slack for a loaded machine. A request without a timeout
counts as ``UNBOUNDED_REQUEST`` seconds. The shutdown ladder's own waits are :func:`ladder_waits`.
"""

from __future__ import annotations

from leanworker.actors.core.config import PoolConfig, WorkerConfig

UNBOUNDED_REQUEST = 3600.0
REAP_SLACK = 5.0  # after SIGKILL, the exit is waited for kill_wait plus this (a loaded machine's reap)


def steps(config: WorkerConfig, *, startup: bool = False, request: bool = False, cancel: bool = False,
          shutdown: bool = False) -> float:
    """The configured bounds of the steps named, summed: a start-up (hello and configure, then the session open),
    a request, a cancel's grace, a graceful stop. A step with no bound counts ``UNBOUNDED_REQUEST``."""
    total = 0.0
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


def settle_bound(config: WorkerConfig, *, startup: bool = False, request: bool = False, cancel: bool = False,
                 shutdown: bool = False, slack: float = 10.0) -> float:
    """An upper bound, in seconds, for the steps named to end and the kill ladder after them."""
    return steps(config, startup=startup, request=request, cancel=cancel, shutdown=shutdown) \
        + 2 * config.kill_wait + slack


def lease_bound(config: PoolConfig) -> float:
    """How long one attempt of a plan may wait for its lease: the queue, a worker start (its session open too), and
    a request in flight before it."""
    return config.queue_wait_timeout + steps(config.worker, startup=True, request=True)


def ladder_waits(config: WorkerConfig) -> tuple[float, float, float]:
    """How long the shutdown ladder waits for the exit after each of its steps: after ``stop``
    (``shutdown_timeout``), after SIGTERM (``kill_wait``), after SIGKILL (``kill_wait`` and the reap's slack)."""
    return config.shutdown_timeout, config.kill_wait, config.kill_wait + REAP_SLACK
