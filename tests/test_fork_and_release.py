"""A forked child refuses the pools it inherited and exits at once (issue 8, item 9); a lease is one holder's:
releasing it from another thread cancels the call in flight before the worker is handed on (item 10)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

import leanworker as lw
from conftest import FAST, THROUGHPUT, faulted, wait_for
from leanworker.testing import Fault

FORK = textwrap.dedent("""
    import os, sys, time
    import leanworker as lw
    key = lw.SessionKey("leanworker.fixtures.throughput:capability")
    with lw.WorkerPool(lw.PoolConfig(max_workers=1)) as pool:
        lease = pool.lease(key)
        worker = lw.Worker(key)
        assert lease.call("echo", 1) == 1
        pid = os.fork()
        if pid == 0:
            for name, use in [("pool.lease", lambda: pool.lease(key, timeout=5)), ("lease.call",
                              lambda: lease.call("echo", 2)), ("worker.call", lambda: worker.call("echo", 3)),
                              ("pool.snapshot", pool.snapshot)]:
                try:
                    use()
                    print("child", name, "NOT REFUSED", flush=True)
                except lw.UsedAfterFork as exc:
                    print("child", name, "refused:", exc, flush=True)
            lease.release()
            sys.exit(0)  # leaves the with block (pool.shutdown) and runs the exit hooks
        started = time.monotonic()
        os.waitpid(pid, 0)
        print("child exited after", round(time.monotonic() - started, 1), flush=True)
        print("parent", lease.call("echo", "still mine"), worker.call("echo", "and this"), flush=True)
        lease.release()
        worker.shutdown()
""")


def test_a_forked_child_refuses_inherited_pools_and_exits_at_once() -> None:
    done = subprocess.run([sys.executable, "-c", FORK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    refused = [line for line in lines if line.startswith("child ") and "refused: this" in line]
    assert len(refused) == 4, done.stdout
    assert "created in process" in refused[0] and "os.fork()" in refused[0]
    exited = next(line for line in lines if line.startswith("child exited after"))
    assert float(exited.split()[-1]) < 10, exited  # it used to sit 54 s in the exit hook
    assert "parent still mine and this" in lines


def test_releasing_a_lease_from_another_thread_cancels_its_call_before_handing_the_worker_on() -> None:
    key, _ = faulted(Fault("hang", nth=1))
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST)) as pool:
        lease = pool.lease(key)
        caught: list[BaseException] = []

        def hold() -> None:
            try:
                lease.call("echo", "hangs", timeout=60)
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
                caught.append(exc)

        holder = threading.Thread(target=hold)
        holder.start()
        assert wait_for(lambda: pool.snapshot().requests_ok + pool.snapshot().busy > 0 and lease.snapshot().state
                        == "busy", timeout=10)
        lease.release()  # from this thread, while the call runs in the other
        holder.join(30)
        assert len(caught) == 1 and isinstance(caught[0], lw.Cancelled), caught
        with pool.lease(key, timeout=30) as next_holder:
            assert next_holder.call("echo", "mine now") == "mine now"  # never WorkerBusy
            assert next_holder.snapshot().generation == 1  # the cancel was cooperative: still warm


def test_a_call_after_release_is_refused_as_stale() -> None:
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST)) as pool:
        lease = pool.lease(lw.SessionKey(THROUGHPUT))
        lease.release()
        with pytest.raises(lw.StaleLease):
            lease.call("echo", 1)
