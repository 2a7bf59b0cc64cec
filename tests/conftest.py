"""Shared fixtures. Every test is bounded (pytest-timeout) and must leave no process behind."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Iterator

import os
import signal

# Every lock the runtime makes in this process (and in the workers it starts) checks the written lock order.
os.environ["LEANWORKER_LOCK_CHECK"] = "1"

import psutil  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

import leanworker as lw  # noqa: E402
from leanworker.actors.core import intercept, locks  # noqa: E402
from leanworker.actors.core.process_tree import tree_pids  # noqa: E402
from leanworker.testing import Fault, FaultPlan  # noqa: E402

MATHLIB = "leanworker.fixtures.mathlib_scale:capability"
THROUGHPUT = "leanworker.fixtures.throughput:capability"
FAULTS = "leanworker.fixtures.faults:capability"

# No per-example deadline for property tests: Hypothesis fails an example that takes over 200 ms by default, a timing
# assertion that a loaded 2-core machine breaks (test_frames_split_at_any_byte_decode_the_same took 268 ms once and
# 0.75 ms on its re-run). Each test keeps its pytest-timeout bound.
settings.register_profile("leanworker", deadline=None)
settings.load_profile("leanworker")

# Short timeouts keep fault tests quick; the bounds stay generous against a loaded 2-core machine.
FAST = lw.WorkerConfig(startup_timeout=10.0, request_timeout=20.0, cancel_grace=0.5, shutdown_timeout=2.0,
                       kill_wait=3.0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the files with the longest tests go first in each worker's part (tests/suite_order.py)."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:
        from suite_order import long_files_first

        items[:] = long_files_first(items, int(workers), lambda item: item.path.name)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once the tests are collected, the objects alive (modules, test items, pytest's and Hypothesis's own) live as
    long as the test process: frozen, the collector no longer walks them at each full collection. Objects made by the
    tests are collected as before. Measured on `make test`: about 8% less CPU over the suite (system-wide busy time,
    190 to 176 CPU-s) and 4-5 s less."""
    gc.freeze()


def fault_host(mode: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "leanworker.fixtures.fault_host", mode)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(interval)


def pid_gone(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def close_parent(parent: "subprocess.Popen[str]") -> None:
    """Kill a parent process a test started (if still running), reap it, close its stdout."""
    if parent.poll() is None:
        parent.kill()
        parent.wait(10)
    if parent.stdout is not None:
        parent.stdout.close()


def has_children() -> bool:
    """Whether this process has a child at all (a zombie included): a system call, where listing descendants reads
    every process of the machine."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # WNOWAIT: reaps nothing
    except ChildProcessError:
        return False
    return True


def descendant_pids() -> list[int]:
    """Every descendant of this process, walked down from it (``tree_pids``): psutil's ``children(recursive=True)``
    reads every process of the machine, several milliseconds on a busy one. No psutil object is made: the check runs
    around each of ~1,100 tests."""
    if not has_children():
        return []
    return (tree_pids(os.getpid()) or [])[1:]


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """Fail a test that leaves child processes of the test process running (and clean them up)."""
    before = set(descendant_pids())
    yield
    def leftovers() -> list[int]:
        return [pid for pid in descendant_pids() if pid not in before and not pid_gone(pid)]
    wait_for(lambda: not leftovers(), timeout=10.0)
    left = []
    for pid in leftovers():
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        try:
            left.append((pid, process.cmdline()))
        except psutil.Error:
            left.append((pid, ["?"]))
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    assert not left, f"test left processes behind: {left}"


@pytest.fixture(autouse=True)
def lock_order_kept() -> Iterator[None]:
    """Fail a test during which any thread took the runtime's locks against the written order."""
    locks.violations.clear()
    yield
    found, locks.violations[:] = list(locks.violations), []
    assert not found, f"lock order inverted: {found}"


# A suite started as a background job of a shell without job control inherits SIGINT ignored (as CI or `make test
# &` may start it), and so would every command the tests start: they must see Ctrl-C as a person's terminal sends it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def signal_state_restored() -> Iterator[None]:
    """The test process's SIGINT handler and signal mask are as they were after each test: a child started later
    inherits the mask, and a command run by a later test must see Ctrl-C as a person's terminal sends it."""
    handler = signal.getsignal(signal.SIGINT)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    # set again even when Python's view says it is unchanged: native code (Ray's core worker, an event loop's
    # signal set-up) can change the disposition underneath it, and an ignored SIGINT is inherited by every child
    if handler is not None:
        signal.signal(signal.SIGINT, handler)
    if signal.pthread_sigmask(signal.SIG_BLOCK, []) != mask:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@pytest.fixture(autouse=True)
def no_fault_plan_left() -> Iterator[None]:
    """A fault plan a test installed (leanworker.testing) is taken out after it, so no later test gets its faults."""
    yield
    for interceptor in intercept.installed():
        intercept.uninstall(interceptor)


def faulted(*rules: Fault, capability: str = THROUGHPUT) -> tuple[lw.SessionKey, FaultPlan]:
    """A key of ``capability`` whose workers fire ``rules`` (leanworker.testing), and the plan that decides them."""
    plan = FaultPlan(rules)
    return plan.wrap(lw.SessionKey(capability)), plan


@pytest.fixture
def tracer() -> lw.Tracer:
    return lw.Tracer()


@pytest.fixture
def mathlib_worker() -> Iterator[lw.Worker]:
    with lw.Worker(lw.SessionKey(MATHLIB), FAST) as worker:
        yield worker


@pytest.fixture
def faults_worker() -> Iterator[lw.Worker]:
    with lw.Worker(lw.SessionKey(FAULTS), FAST) as worker:
        yield worker
