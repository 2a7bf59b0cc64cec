"""No survivors (issue 8, item 5): a worker dies with its parent whatever its main thread is doing, and so does
every descendant, even one that left the process group (where a cgroup v2 is available)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

import leanworker as lw
from conftest import FAST, FAULTS, close_parent, pid_gone, wait_for
from leanworker.actors.core.containment import cgroup_base

needs_cgroup = pytest.mark.skipif(cgroup_base() is None, reason="no writable cgroup v2 with cgroup.kill here")


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_parent_and_expect_no_survivor(parent: subprocess.Popen[str], survivors: list[int]) -> None:
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    assert wait_for(lambda: all(pid_gone(pid) for pid in survivors), timeout=5), \
        f"survived their SIGKILLed parent: {[pid for pid in survivors if not pid_gone(pid)]}"


def run_parent(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True)


def test_a_worker_holding_the_gil_in_a_long_c_call_dies_with_its_sigkilled_parent() -> None:
    parent = run_parent("""
        import time
        import leanworker as lw
        worker = lw.Worker(lw.SessionKey("leanworker.fixtures.faults:capability"))
        stream = worker.stream("gil_hog", timeout=600)
        print(next(stream).payload["worker"], flush=True)
        time.sleep(600)
    """)
    try:
        assert parent.stdout is not None
        worker_pid = int(parent.stdout.readline())
        worker = psutil.Process(worker_pid)
        assert wait_for(lambda: worker.cpu_times().user > 0.5, timeout=20), "the worker never started spinning"
        kill_parent_and_expect_no_survivor(parent, [p.pid for p in descendants(parent.pid)])
    finally:
        close_parent(parent)


def test_a_worker_holding_the_gil_in_its_session_open_dies_with_its_sigkilled_parent() -> None:
    parent = run_parent("""
        import leanworker as lw
        key = lw.SessionKey("leanworker.fixtures.faults:capability", options=(("import_gil_hog", True),))
        lw.Worker(key, lw.WorkerConfig(request_timeout=600))
    """)
    try:
        def spinning_worker() -> psutil.Process | None:
            for process in descendants(parent.pid):
                try:
                    if "leanworker.host" in " ".join(process.cmdline()) and process.cpu_times().user > 0.5:
                        return process
                except psutil.NoSuchProcess:
                    pass
            return None

        assert wait_for(lambda: spinning_worker() is not None, timeout=30), "no worker spun in its session open"
        kill_parent_and_expect_no_survivor(parent, [p.pid for p in descendants(parent.pid)])
    finally:
        close_parent(parent)


def test_a_worker_has_a_guardian_that_kills_its_group_when_it_dies(faults_worker: lw.Worker) -> None:
    pid = faults_worker.snapshot().pid
    assert pid is not None

    def guardians() -> list[psutil.Process]:  # forked before the hello, it may still be on its way to exec sh
        return [p for p in psutil.Process(pid).children() if p.name() in ("sh", "dash", "bash")
                or "leanworker-guardian" in " ".join(p.cmdline())]

    assert wait_for(lambda: len(guardians()) == 1), psutil.Process(pid).children()
    guardian = guardians()[0]
    stream = faults_worker.stream("grandchild", {"ignore_cancel": True})
    grandchild = next(stream).payload["grandchild"]
    os.kill(pid, signal.SIGKILL)  # the worker dies; its parent (this test) is alive and reaps it
    with pytest.raises(lw.WorkerCrashed):
        stream.collect()
    assert wait_for(lambda: pid_gone(grandchild) and pid_gone(guardian.pid), timeout=10)
    faults_worker.wait_ready(30)


@needs_cgroup
def test_a_descendant_that_left_the_process_group_dies_at_a_timeout_kill() -> None:
    with lw.Worker(lw.SessionKey(FAULTS), FAST) as worker:
        stream = worker.stream("escapee", timeout=1.0)
        escapee = next(stream).payload["escapee"]
        assert os.getpgid(escapee) != os.getpgid(worker.snapshot().pid or 0)
        with pytest.raises(lw.RequestTimeout):
            stream.collect()
        assert wait_for(lambda: pid_gone(escapee), timeout=10), "the escapee outlived the timeout kill"


@needs_cgroup
def test_a_descendant_that_left_the_process_group_dies_at_a_clean_shutdown() -> None:
    worker = lw.Worker(lw.SessionKey(FAULTS), FAST)
    stream = worker.stream("escapee", {"ignore_cancel": False})
    escapee = next(stream).payload["escapee"]
    stream.close()  # cooperative cancel: the worker stays warm, the escapee lives on
    assert not pid_gone(escapee)
    assert worker.shutdown().how == "graceful"
    assert wait_for(lambda: pid_gone(escapee), timeout=10), "the escapee outlived a clean shutdown"


@needs_cgroup
def test_a_descendant_that_left_the_process_group_dies_with_a_sigkilled_parent() -> None:
    parent = run_parent("""
        import time
        import leanworker as lw
        worker = lw.Worker(lw.SessionKey("leanworker.fixtures.faults:capability"))
        stream = worker.stream("escapee", timeout=600)
        print(next(stream).payload["escapee"], flush=True)
        time.sleep(600)
    """)
    try:
        assert parent.stdout is not None
        escapee = int(parent.stdout.readline())
        kill_parent_and_expect_no_survivor(parent, [escapee, *[p.pid for p in descendants(parent.pid)]])
    finally:
        close_parent(parent)


def test_doctor_says_what_is_contained() -> None:
    expected = "pass" if cgroup_base() is not None else "warning"
    with lw.Worker(lw.SessionKey(FAULTS), FAST) as worker:
        checks = {check.name: check for check in worker.doctor().checks}
        assert checks["containment"].status == expected
        assert checks["parent_death_signal"].status == "pass" and checks["guardian"].status == "pass"
    grouped = lw.WorkerConfig(containment="group")
    with lw.Worker(lw.SessionKey(FAULTS), grouped) as worker:
        checks = {check.name: check for check in worker.doctor().checks}
        assert checks["containment"].status == "warning" and "setsid" in checks["containment"].message


def test_worker_cgroups_are_removed_after_use() -> None:
    base = cgroup_base()
    if base is None:
        pytest.skip("no writable cgroup v2 with cgroup.kill here")
    mine = f"leanworker-{os.getpid()}-"
    with lw.Worker(lw.SessionKey(FAULTS), FAST):
        assert any(path.name.startswith(mine) for path in base.iterdir())
    assert wait_for(lambda: not any(path.name.startswith(mine) for path in base.iterdir()), timeout=10)
