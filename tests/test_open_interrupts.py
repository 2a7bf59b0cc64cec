"""A session open in progress never holds up a cancel, a caller that leaves its wait, or a shutdown
(docs/semantics.md, Start-up and The pool: Shutdown): the threaded pool, a single ``Worker``, and the asyncio pool,
over real worker processes whose open takes two minutes. Every wait below is bounded far under that, and each test
acts only once the worker is known to be inside its open (the fixture writes a marker as the open begins)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

import leanworker as lw
from conftest import MATHLIB, pid_gone, wait_for

OPEN_MS = 120_000  # the open's own length: nothing here may wait for it
BOUND = 20.0  # how long a cancel, a shutdown or a wait left early may take here: generous, and far under the open
CONFIG = lw.WorkerConfig(startup_timeout=10, request_timeout=20, open_timeout=300, cancel_grace=0.5,
                         shutdown_timeout=2, kill_wait=3)


def slow_key(marker: Path, open_ms: int = OPEN_MS) -> lw.SessionKey:
    return lw.SessionKey(MATHLIB, imports=("Mathlib",), options=(("import_ms", open_ms), ("open_marker", str(marker))))


def slow_plan(marker: Path, modules: int = 4) -> lw.ImportPlan:
    planner = lw.ImportPlanner(MATHLIB, ("Mathlib",), max_batch_modules=2,
                               options=(("import_ms", OPEN_MS), ("open_marker", str(marker))))
    return planner.plan([lw.WorkItem(f"Mathlib.M{i}") for i in range(modules)])


def inside_the_open(marker: Path) -> int:
    """Wait until a worker has begun its session open; its pid."""
    assert wait_for(marker.exists, timeout=BOUND), "no worker began its session open"
    return int(marker.read_text())


def in_thread(action: Callable[[], Any]) -> tuple[threading.Event, list[Any]]:
    """Run ``action`` in a thread of its own; an event set when it ends, and what it returned or raised."""
    ended, outcome = threading.Event(), []

    def body() -> None:
        try:
            outcome.append(action())
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)
        finally:
            ended.set()

    threading.Thread(target=body, daemon=True).start()
    return ended, outcome


class Interrupted(Exception):
    """What this module's SIGINT handler raises (in the main thread, as Python runs every signal handler)."""


def raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted


def signal_another_thread_once_inside_the_open(marker: Path) -> None:
    """From a thread that is not the main one: wait for the open, then send SIGINT to this very thread, as the
    kernel may hand a Ctrl-C to any thread of the process. The main thread's handler must still run at once."""
    def deliver() -> None:
        inside_the_open(marker)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    threading.Thread(target=deliver, daemon=True).start()


WRITE_MARKER = """
import sys
from leanworker.fixtures.importsim import write_marker
for _ in range(300):
    write_marker(sys.argv[1])
"""


def test_workers_that_open_at_once_all_write_the_shared_open_marker(tmp_path: Path) -> None:
    """Two workers opening at once (one per Ray agent) share the marker a test waits on: one renamed the other's part
    file away, and the other's open failed with FileNotFoundError (a flake of the scale-out cancel test)."""
    marker = tmp_path / "opening"
    writers = [subprocess.Popen([sys.executable, "-c", WRITE_MARKER, str(marker)], stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        errors = [writer.communicate(timeout=60)[1] for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.communicate()
    assert [writer.returncode for writer in writers] == [0, 0], errors
    assert int(marker.read_text()) in {writer.pid for writer in writers}
    assert [path.name for path in tmp_path.iterdir()] == ["opening"], "a part file was left behind"


# -- the threaded pool -------------------------------------------------------------------------------------------------


def test_cancelling_a_run_while_its_worker_opens_the_session_ends_the_run_without_waiting_for_the_open(
        tmp_path: Path) -> None:
    marker = tmp_path / "opening"
    the_plan = slow_plan(marker)
    pool = lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=CONFIG))
    try:
        run = pool.run(the_plan, "index")
        inside_the_open(marker)
        run.cancel()
        ended, outcome = in_thread(run.wait)
        assert ended.wait(BOUND), "the cancelled run waited for the session open"
        summary = outcome[0]
        assert isinstance(summary, lw.RunSummary), summary
        assert summary.cancelled and summary.batches_committed == 0 and summary.batches_failed == 0
        assert summary.batches_cancelled == len(the_plan.batches) == 2
        snapshot = pool.snapshot()
        assert snapshot.leases == 0 and snapshot.queue_depth == 0, "the run's claim was withdrawn"
    finally:
        closed, _ = in_thread(pool.shutdown)
        assert closed.wait(BOUND), "the pool's shutdown waited for the session open"
    assert pid_gone(int(marker.read_text()))


def test_shutting_down_a_pool_while_a_worker_opens_its_session_kills_that_worker_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "opening"
    tracer = lw.Tracer()
    pool = lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=CONFIG, trace=tracer))
    waiting, outcome = in_thread(lambda: pool.lease(slow_key(marker), timeout=4 * BOUND))
    try:
        pid = inside_the_open(marker)
    finally:
        closed, _ = in_thread(pool.shutdown)
        assert closed.wait(BOUND), "the pool's shutdown waited for the session open"
    assert waiting.wait(BOUND) and isinstance(outcome[0], lw.PoolClosed), outcome
    assert pid_gone(pid)
    ladders = [event.fields["how"] for event in tracer.events() if event.kind == "shutdown"]
    assert ladders == ["killed"], "no stop was asked of a worker that reads no frame while it opens"


def test_a_lease_wait_left_by_a_signal_another_thread_took_withdraws_the_claim_and_the_open_goes_on(
        tmp_path: Path) -> None:
    marker = tmp_path / "opening"
    key = slow_key(marker, open_ms=1500)
    previous = signal.signal(signal.SIGINT, raise_interrupted)
    try:
        with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=CONFIG)) as pool:
            signal_another_thread_once_inside_the_open(marker)
            with pytest.raises(Interrupted):
                pool.lease(key, timeout=4 * BOUND)  # in the main thread, as a script's Ctrl-C finds it
            snapshot = pool.snapshot()
            assert snapshot.queue_depth == 0 and snapshot.leases == 0, "the claim was withdrawn"
            assert snapshot.starting == 1, "the worker opens on, for the next lease of its key"
            with pool.lease(key, timeout=BOUND) as lease:
                assert lease.call("leanworker.metadata")["name"]
            assert pool.snapshot().sessions_opened == 1
    finally:
        signal.signal(signal.SIGINT, previous)


# -- one Worker --------------------------------------------------------------------------------------------------------


def test_a_worker_interrupted_while_it_opens_its_session_is_killed_and_the_interrupt_raised(tmp_path: Path) -> None:
    marker = tmp_path / "opening"
    previous = signal.signal(signal.SIGINT, raise_interrupted)
    try:
        signal_another_thread_once_inside_the_open(marker)
        with pytest.raises(Interrupted):
            lw.Worker(slow_key(marker), CONFIG)  # waits for the open in the main thread
    finally:
        signal.signal(signal.SIGINT, previous)
    assert wait_for(lambda: pid_gone(int(marker.read_text())), timeout=BOUND)


# -- asyncio -------------------------------------------------------------------------------------------------------------


async def inside_the_open_async(marker: Path) -> int:
    for _ in range(int(BOUND / 0.02)):
        if marker.exists():
            return int(marker.read_text())
        await asyncio.sleep(0.02)
    raise AssertionError("no worker began its session open")


def test_an_async_run_cancelled_while_its_worker_opens_the_session_ends_without_waiting_for_the_open(
        tmp_path: Path) -> None:
    marker = tmp_path / "opening"
    the_plan = slow_plan(marker)

    async def main() -> lw.RunSummary:
        pool = lw.AsyncWorkerPool(lw.PoolConfig(max_workers=1, worker=CONFIG))
        try:
            async with pool.run(the_plan, "index") as run:
                await inside_the_open_async(marker)
                run.cancel()
                return await asyncio.wait_for(run.wait(), BOUND)
        finally:
            await asyncio.wait_for(pool.aclose(), BOUND)

    summary = asyncio.run(main())
    assert summary.cancelled and summary.batches_committed == 0
    assert summary.batches_cancelled == len(the_plan.batches)
    assert pid_gone(int(marker.read_text()))


def test_closing_an_async_pool_while_a_worker_opens_its_session_fails_the_waiting_task_at_once(
        tmp_path: Path) -> None:
    marker = tmp_path / "opening"

    async def main() -> int:
        pool = lw.AsyncWorkerPool(lw.PoolConfig(max_workers=1, worker=CONFIG))
        waiting = asyncio.create_task(pool.lease(slow_key(marker), timeout=4 * BOUND).acquire())
        try:
            pid = await inside_the_open_async(marker)
        finally:
            await asyncio.wait_for(pool.aclose(), BOUND)
        with pytest.raises(lw.PoolClosed):
            await asyncio.wait_for(waiting, BOUND)
        return pid

    assert pid_gone(asyncio.run(main()))


ASYNC_SCRIPT = """
import asyncio, sys
import leanworker as lw

KEY = lw.SessionKey(sys.argv[1], imports=("Mathlib",), options=(("import_ms", {open_ms}), ("open_marker", sys.argv[2])))

async def main():
    async with lw.AsyncWorkerPool(lw.PoolConfig(max_workers=1, worker=lw.WorkerConfig(open_timeout=300))) as pool:
        async with pool.lease(KEY, timeout=300):
            print("leased", flush=True)

try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_that_another_thread_took_stops_an_asyncio_program_waiting_for_a_session_open(tmp_path: Path) -> None:
    """asyncio.run's loop sleeps in its selector while a task waits for the lease; the pool wakes it now and then
    so that Python runs the SIGINT handler, which the kernel handed to one of the pool's threads."""
    marker = tmp_path / "opening"
    script = tmp_path / "program.py"
    script.write_text(ASYNC_SCRIPT.format(open_ms=OPEN_MS))
    program = subprocess.Popen([sys.executable, str(script), MATHLIB, str(marker)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        worker = inside_the_open(marker)
        threads = [thread.id for thread in psutil.Process(program.pid).threads() if thread.id != program.pid]
        os.kill(threads[-1], signal.SIGINT)  # kill() of a thread's id prefers that thread
        out, err = program.communicate(timeout=BOUND)
    finally:
        if program.poll() is None:
            program.kill()
            program.communicate()
    assert out == "interrupted\n", (out, err)
    assert wait_for(lambda: pid_gone(worker), timeout=BOUND)
