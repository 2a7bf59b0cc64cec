"""No orphans: a worker whose parent is SIGKILLed goes away on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from conftest import pid_gone, wait_for

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
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
