"""A worker that stops reading its stdin never freezes the parent: the timeout fires, cancel and shutdown end
(issue 8, item 4). The worker is stopped with a real SIGSTOP; the request is larger than the 64 KiB a pipe holds."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator

import pytest

import leanworker as lw
from conftest import FAST, THROUGHPUT

BIG = b"x" * (512 * 1024)
# A stopped worker never answers the graceful stop: its wait is what the ladder costs here, so keep it short.
STOPPED = dataclasses.replace(FAST, shutdown_timeout=0.5)


@pytest.fixture
def worker() -> Iterator[lw.Worker]:
    with lw.Worker(lw.SessionKey(THROUGHPUT), STOPPED) as worker:
        yield worker


def stop(worker: lw.Worker) -> int:
    pid = worker.snapshot().pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    return pid


def test_a_timeout_fires_when_the_worker_stopped_reading_mid_request(worker: lw.Worker) -> None:
    stop(worker)
    with pytest.raises(lw.RequestTimeout):
        worker.call("echo", BIG, timeout=0.5)
    worker.wait_ready(30)
    assert worker.call("echo", "fresh") == "fresh"
    assert worker.snapshot().restarts == {"timeout": 1}


def test_a_cancel_reaches_its_grace_when_the_worker_stopped_reading(worker: lw.Worker) -> None:
    stop(worker)
    stream = worker.stream("echo", BIG, timeout=600)
    stream.cancel()
    stream.close()
    assert stream.outcome == "cancelled"
    worker.wait_ready(30)
    assert worker.call("echo", 1) == 1


def test_shutdown_ends_when_the_worker_stopped_reading_with_a_request_in_flight(worker: lw.Worker) -> None:
    stop(worker)
    stream = worker.stream("echo", BIG, timeout=600)
    report = worker.shutdown()
    assert report.how in ("terminated", "killed")
    assert stream.outcome == "shutdown"


def test_a_pool_shuts_down_with_a_stopped_worker_holding_a_big_request() -> None:
    pool = lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=STOPPED))
    lease = pool.lease(lw.SessionKey(THROUGHPUT))
    pid = lease.snapshot().pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    stream = lease.stream("echo", BIG, timeout=600)
    pool.shutdown()
    assert stream.outcome == "shutdown"
