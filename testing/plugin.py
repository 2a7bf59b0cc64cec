"""The pytest plugin (entry point ``pytest11``, name ``leanworker``): installed with leanworker, nothing to configure.

- ``lw_pool``: a :class:`~leanworker.WorkerPool` (configured by the ``lw_pool_config`` fixture, which a test module
  or conftest may override) shut down after the test; the test fails if one of its worker processes outlives it.
- ``lw_faults``: a :class:`~leanworker.testing.FaultPlan` bound to the test (add rules, then ``lw_faults.wrap(key)``);
  what it fired is listed in the test's report section "leanworker faults", and it is uninstalled afterwards.
- ``@pytest.mark.lw_chaos(rate=0.05, seed=0, kinds=None)``: every pool, worker and plan run the test creates,
  however it creates them, runs with random faults (``FaultPlan.chaos``); a failing chaos test prints the seed and
  the plan's JSON, which replays it.

Nothing heavy is imported until a fixture is used: this module is loaded by every pytest run in the environment.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from leanworker.actors.core.config import PoolConfig
    from leanworker.actors.pool import WorkerPool
    from leanworker.testing.plan import FaultPlan

CHAOS_MARKER = "lw_chaos"
POOL_ENV = "LEANWORKER_LW_POOL"  # set in the workers of one lw_pool: they, and what they start, inherit it
OUTLIVE_WAIT_S = 2.0  # the shutdown killed and reaped every worker: what is left after this escaped
_plans_key = pytest.StashKey[list["FaultPlan"]]()
_chaos_key = pytest.StashKey["FaultPlan"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{CHAOS_MARKER}(rate=0.05, seed=0, kinds=None): run every leanworker pool, worker and plan run "
        "the test creates with random injected faults (leanworker.testing; docs/testing.md)")


# -- lw_pool -----------------------------------------------------------------------------------------------------------

def _pool_processes(token: str) -> dict[int, str]:
    """Live processes that are, or were started by, a worker of the ``lw_pool`` marked ``token``: pid -> command
    line. Found by the environment its workers pass on, not by parentage (a descendant that left its worker's
    session was re-parented away), and not by this process's pid (another pool of the test, or of a wider-scoped
    fixture, still alive, is not this pool's to judge)."""
    import psutil

    found: dict[int, str] = {}
    uid = os.getuid()
    for process in psutil.process_iter(["uids"]):
        try:
            if process.info["uids"] is None or process.info["uids"].real != uid or process.pid == os.getpid():
                continue
            if process.environ().get(POOL_ENV) != token or process.status() == psutil.STATUS_ZOMBIE:
                continue
            found[process.pid] = " ".join(process.cmdline())[:200]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture
def lw_pool_config() -> PoolConfig:
    """The config of ``lw_pool``: short timeouts, so that a fault ends a test quickly. Override it to change."""
    from leanworker.actors.core.config import PoolConfig, WorkerConfig

    return PoolConfig(max_workers=2, queue_wait_timeout=30.0,
                      worker=WorkerConfig(startup_timeout=10.0, request_timeout=10.0, cancel_grace=0.5,
                                          shutdown_timeout=2.0, kill_wait=3.0))


@pytest.fixture
def lw_pool(lw_pool_config: PoolConfig) -> Iterator[WorkerPool]:
    """A worker pool shut down after the test; the test fails if one of its worker processes outlives it."""
    from leanworker.actors.pool import WorkerPool

    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    worker = lw_pool_config.worker
    marked = dataclasses.replace(worker, env={**(worker.env or {}), POOL_ENV: token})
    pool = WorkerPool(dataclasses.replace(lw_pool_config, worker=marked))
    try:
        yield pool
    finally:
        pool.shutdown()
    deadline = time.monotonic() + OUTLIVE_WAIT_S
    left = _pool_processes(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _pool_processes(token)
    if left:
        _kill(left)
        pytest.fail(f"worker processes outlived lw_pool's shutdown: {sorted(left.items())}", pytrace=False)


def _kill(pids: dict[int, str]) -> None:
    import psutil

    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            continue


# -- lw_faults and lw_chaos --------------------------------------------------------------------------------------------

@pytest.fixture
def lw_faults(request: pytest.FixtureRequest) -> Iterator[FaultPlan]:
    """A fault plan bound to this test: add rules, wrap keys with it; its fired faults go in the test's report."""
    from leanworker.testing.plan import FaultPlan

    plan = FaultPlan()
    request.node.stash.setdefault(_plans_key, []).append(plan)
    try:
        yield plan
    finally:
        plan.uninstall()


@pytest.fixture(autouse=True)
def _lw_chaos(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker(CHAOS_MARKER)
    if marker is None:
        yield
        return
    from leanworker.testing.plan import FaultPlan

    unknown = sorted(set(marker.kwargs) - {"rate", "seed", "kinds"})
    if marker.args or unknown:  # a misspelt seed= must not quietly run another seed
        named = f" (not {', '.join(unknown)})" if unknown else ""
        raise pytest.UsageError(f"{CHAOS_MARKER} takes keyword arguments only: rate=..., seed=..., kinds=...{named}")
    plan = FaultPlan.chaos(marker.kwargs.get("rate", 0.05), marker.kwargs.get("seed", 0), marker.kwargs.get("kinds"))
    request.node.stash[_chaos_key] = plan
    with plan.everywhere():
        yield


def _fired_text(plan: FaultPlan) -> str:
    fired = plan.fired()
    lines = [f"plan: {plan!r}", f"fired: {len(fired)}"]
    lines.extend(f"  {index + 1}. {fault}" for index, fault in enumerate(fired))
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when != "call":
        return report
    for plan in item.stash.get(_plans_key, []):
        report.sections.append(("leanworker faults", _fired_text(plan)))
    chaos = item.stash.get(_chaos_key, None)
    if chaos is not None:
        text = (f"lw_chaos seed={chaos.seed}; replay this plan with "
                f"leanworker.testing.FaultPlan.from_json({chaos.to_json()!r})\n{_fired_text(chaos)}")
        report.sections.append(("leanworker chaos", text))
        add_section = getattr(report.longrepr, "addsection", None)
        if report.failed and callable(add_section):  # shown with the failure, whatever --show-capture says
            add_section("leanworker chaos (replay)", text)
    return report
