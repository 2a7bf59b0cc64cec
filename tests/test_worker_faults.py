"""Faults injected by the fault fixture: bad start-ups, bad bytes, runaway output, grandchildren, stale frames."""

from __future__ import annotations

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, fault_host, faulted, pid_gone, wait_for
from leanworker.testing import Fault

QUICK_START = lw.WorkerConfig(startup_timeout=1.0, request_timeout=10.0, cancel_grace=0.5, kill_wait=3.0)


def test_a_worker_that_never_says_hello_raises_startup_timeout() -> None:
    with pytest.raises(lw.StartupTimeout, match="hello"):
        lw.Worker(lw.SessionKey(FAULTS, command=fault_host("no-hello")), QUICK_START)


def test_a_hello_of_the_wrong_protocol_version_raises_handshake_error() -> None:
    with pytest.raises(lw.HandshakeError, match="protocol version 999"):
        lw.Worker(lw.SessionKey(FAULTS, command=fault_host("bad-version")), QUICK_START)


@pytest.mark.parametrize("mode", ["garbage-hello", "rows-first"])
def test_bytes_that_are_not_a_hello_raise_handshake_error(mode: str) -> None:
    with pytest.raises(lw.HandshakeError):
        lw.Worker(lw.SessionKey(FAULTS, command=fault_host(mode)), QUICK_START)


def test_a_worker_that_exits_at_start_raises_worker_crashed_with_its_stderr() -> None:
    with pytest.raises(lw.WorkerCrashed) as info:
        lw.Worker(lw.SessionKey(FAULTS, command=fault_host("exit")), QUICK_START)
    assert info.value.exit_code == 7 and "exiting at once" in info.value.stderr_tail


def test_a_worker_command_that_does_not_exist_raises_worker_crashed() -> None:
    with pytest.raises(lw.WorkerCrashed, match="cannot start"):
        lw.Worker(lw.SessionKey(FAULTS, command=("/nonexistent/leanworker-worker",)), QUICK_START)


def test_a_malformed_frame_mid_request_gives_protocol_error_and_a_fresh_worker() -> None:
    key, _ = faulted(Fault("garbage", nth=1))
    with lw.Worker(key, FAST) as worker:
        with pytest.raises(lw.ProtocolError):
            worker.call("echo", "garbage follows")
        worker.wait_ready(30)
        assert worker.call("echo", "ok") == "ok"
        assert worker.snapshot().restarts == {"protocol": 1}


def test_an_oversized_frame_is_refused_from_its_header(faults_worker: lw.Worker) -> None:
    with pytest.raises(lw.ProtocolError, match="exceeds the cap"):
        faults_worker.call("oversized")
    faults_worker.wait_ready(30)
    assert faults_worker.call("echo", 1) == 1


def test_grandchild_processes_die_with_their_worker(faults_worker: lw.Worker) -> None:
    stream = faults_worker.stream("grandchild", {"ignore_cancel": True}, timeout=1.0)
    pids = next(stream).payload
    with pytest.raises(lw.RequestTimeout):
        stream.collect()
    assert wait_for(lambda: pid_gone(pids["worker"]) and pid_gone(pids["grandchild"]), timeout=10)
    faults_worker.wait_ready(30)


def test_a_stderr_flood_does_not_block_the_worker_and_the_tail_stays_bounded() -> None:
    key, _ = faulted(Fault("crash", nth=2), capability=FAULTS)
    with lw.Worker(key, FAST) as worker:
        assert worker.call("stderr_flood", {"mib": 4}) == 4
        with pytest.raises(lw.WorkerCrashed) as info:
            worker.call("echo", "the end")
        tail = info.value.stderr_tail
        assert "END-OF-FLOOD" in tail and len(tail) <= 64 * 1024


def test_output_for_a_finished_request_is_dropped_and_counted(faults_worker: lw.Worker) -> None:
    assert faults_worker.call("late_rows") == "finished"
    assert wait_for(lambda: faults_worker.snapshot().stale_frames_dropped == 1, timeout=10)
    assert faults_worker.call("echo", "next") == "next", "the late frame did not leak into the next request"


def test_output_of_a_killed_generation_never_reaches_the_next_one() -> None:
    config = lw.WorkerConfig(buffer_rows=64, cancel_grace=0.3, kill_wait=3.0)
    with lw.Worker(lw.SessionKey(FAULTS), config) as worker:
        stream = worker.stream("flood")
        next(stream)
        stream.close()  # abandon + cancel; flood ignores cancel, so the grace expires and the worker is killed
        assert stream.outcome == "cancelled"
        worker.wait_ready(30)
        fresh = worker.stream("slow_rows", {"count": 5, "delay_ms": 1})
        assert [r.payload for r in fresh] == [{"i": i} for i in range(5)] and fresh.committed
        snapshot = worker.snapshot()
        assert snapshot.generation == 2 and snapshot.stale_frames_dropped > 0


def test_shutdown_reports_graceful_when_the_worker_obeys_stop() -> None:
    worker = lw.Worker(lw.SessionKey(FAULTS), FAST)
    report = worker.shutdown()
    assert report.how == "graceful" and report.exit_code == 0


def test_shutdown_reports_terminated_when_stop_is_ignored() -> None:
    config = lw.WorkerConfig(shutdown_timeout=0.3, kill_wait=5.0)
    worker = lw.Worker(faulted(Fault("hang", ignore_cancel=True))[0], config)
    worker.stream("rows", {"count": 1})
    assert worker.shutdown().how == "terminated"


def test_shutdown_reports_killed_when_sigterm_is_ignored_too() -> None:
    config = lw.WorkerConfig(shutdown_timeout=0.3, kill_wait=0.5)
    worker = lw.Worker(lw.SessionKey(FAULTS), config)
    stream = worker.stream("ignore_sigterm")
    report = worker.shutdown()
    assert report.how == "killed" and report.signal == 9
    assert stream.outcome == "shutdown"


def test_shutdown_reports_already_exited_after_a_crash_with_no_restart() -> None:
    worker = lw.Worker(faulted(Fault("crash"))[0], FAST, lw.RestartPolicy(max_restarts=0))
    with pytest.raises(lw.WorkerCrashed):
        worker.call("echo", 1)
    with pytest.raises(lw.RestartLimitExceeded):
        worker.wait_ready(10)
    assert worker.shutdown().how == "already_exited"


def test_shutdown_right_after_a_cycle_always_ends_with_a_report() -> None:
    # A cycle stops the child actor once its process exits; a shutdown that reaches the supervisor before that exit
    # report used to message the stopped child and wait forever. Every round here races the two.
    for _ in range(15):
        worker = lw.Worker(lw.SessionKey(FAULTS), FAST, lw.RestartPolicy(max_requests=1))
        assert worker.call("echo", 1) == 1  # the request budget is spent: the worker cycles now
        report = worker.shutdown(timeout=30)
        assert report.how in ("already_exited", "graceful", "terminated", "killed")
