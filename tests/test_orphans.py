"""No orphans: a worker whose parent is SIGKILLed goes away on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from conftest import close_parent, pid_gone, wait_for

PARENT = textwrap.dedent("""
    import sys, time
    import leanworker as lw
    worker = lw.Worker(lw.SessionKey("leanworker.fixtures.faults:capability"))
    stream = worker.stream("grandchild", {"ignore_cancel": True})
    pids = next(stream).payload
    print(pids["worker"], pids["grandchild"], flush=True)
    time.sleep(600)
""")


def test_the_worker_and_its_grandchild_die_when_the_parent_is_sigkilled() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker_pid, grandchild_pid = map(int, parent.stdout.readline().split())
        assert not pid_gone(worker_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert wait_for(lambda: pid_gone(worker_pid), timeout=5), "worker outlived its SIGKILLed parent"
        assert wait_for(lambda: pid_gone(grandchild_pid), timeout=5), "grandchild outlived the worker's group"
    finally:
        close_parent(parent)


EXIT_WITH_LIVE_POOL = textwrap.dedent("""
    import leanworker as lw
    pool = lw.WorkerPool(lw.PoolConfig(max_workers=2))
    a = pool.lease(lw.SessionKey("leanworker.fixtures.throughput:capability"))
    b = pool.lease(lw.SessionKey("leanworker.fixtures.throughput:capability", imports=("B",)))
    print(a.call("info")["pid"], b.call("info")["pid"], flush=True)
    worker = lw.Worker(lw.SessionKey("leanworker.fixtures.throughput:capability"))
    print(worker.call("info")["pid"], flush=True)
    # no shutdown, no release: the interpreter exits with everything live
""")


def test_interpreter_exit_with_a_live_pool_and_worker_leaves_no_process_behind() -> None:
    done = subprocess.run([sys.executable, "-c", EXIT_WITH_LIVE_POOL], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 3
    assert wait_for(lambda: all(pid_gone(pid) for pid in pids), timeout=5)
