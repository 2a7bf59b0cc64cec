"""One supervised worker: every request ends in exactly one terminal outcome; rows are tentative until success.

Crashes and hangs are injected into the throughput fixture's real worker processes with ``leanworker.testing``."""

from __future__ import annotations

import threading

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, MATHLIB, THROUGHPUT, faulted
from leanworker.testing import Fault


def test_index_on_the_fallback_modules_streams_47_rows_and_commits(mathlib_worker: lw.Worker) -> None:
    seen_diagnostics: list[lw.Diagnostic] = []
    with mathlib_worker.stream("index", on_diagnostic=seen_diagnostics.append) as stream:
        rows = list(stream)
    assert len(rows) == 47 and stream.committed and stream.outcome == "ok"
    assert stream.summary == lw.StreamSummary(
        47, {"declarations": 16, "features": 16, "probes": 15}, stream.summary.elapsed,
        {"fixture": "mathlib_scale", "command": "index", "rows": 47, "modules": 16, "simulated": True})
    assert [d.code for d in seen_diagnostics] == ["index.start", "index.finish"]
    assert [(p.current, p.total) for p in stream.progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    for name in ("declarations", "features", "probes"):
        assert [r.seq for r in rows if r.stream == name] == list(range(len([r for r in rows if r.stream == name])))


def test_n_requested_modules_follow_the_same_pattern(mathlib_worker: lw.Worker) -> None:
    modules = [f"Mathlib.Fixture.M{i}" for i in range(40)]
    stream = mathlib_worker.stream("index", {"modules": modules})
    rows = stream.collect()
    assert len(rows) == 40 + 40 + 39
    assert stream.summary is not None and stream.summary.metadata["modules"] == 40
    assert len(stream.progress) == 4


def test_call_returns_the_result_and_a_command_error_keeps_the_worker(faults_worker: lw.Worker) -> None:
    assert faults_worker.call("echo", {"a": [1, 2.5, None, b"x"]}) == {"a": [1, 2.5, None, b"x"]}
    pid = faults_worker.snapshot().pid
    with pytest.raises(lw.CommandError) as info:
        faults_worker.call("raise", {"message": "nope"})
    assert info.value.code == "exception" and "nope" in info.value.message
    assert faults_worker.call("echo", 2) == 2
    assert faults_worker.snapshot().pid == pid, "a command error does not restart the worker"


def test_metadata_and_doctor_are_typed(mathlib_worker: lw.Worker) -> None:
    meta = mathlib_worker.metadata()
    assert meta.name == "leanworker.fixtures.mathlib_scale" and "probe" in meta.commands
    report = mathlib_worker.doctor()
    assert report.ok and {c.name for c in report.checks} >= {"python", "session", "simulation"}


@pytest.mark.parametrize(("how", "exit_code", "signal"), [("exit", 3, None), ("signal", None, 9), ("abort", None, 6)])
def test_crash_mid_stream_gives_worker_crashed_and_rows_stay_uncommitted(how: str, exit_code: int | None,
                                                                        signal: int | None) -> None:
    key, plan = faulted(Fault("crash", command="rows", after_rows=5, how=how))
    with lw.Worker(key, FAST) as worker:
        first_pid = worker.snapshot().pid
        stream = worker.stream("rows", {"count": 50})
        rows = []
        with pytest.raises(lw.WorkerCrashed) as info:
            for row in stream:
                rows.append(row)
        assert [r.payload["i"] for r in rows] == [0, 1, 2, 3, 4], "rows that arrived before the crash: tentative"
        assert not stream.committed and stream.outcome == "crashed" and stream.summary is None
        assert (info.value.exit_code, info.value.signal) == (exit_code, signal)
        assert "injected crash" in info.value.stderr_tail
        assert worker.wait_ready(30) >= 2
        assert worker.call("echo", "after") == "after"
        snapshot = worker.snapshot()
        assert snapshot.pid != first_pid and snapshot.restarts == {"crash": 1}
    assert [(f.kind, f.nth, f.pid) for f in plan.fired()] == [("crash", 1, first_pid)]


def test_hang_then_timeout_kills_and_replaces_the_worker() -> None:
    key, _ = faulted(Fault("hang", nth=1, after_rows=2))
    with lw.Worker(key, FAST) as worker:
        pid = worker.snapshot().pid
        stream = worker.stream("rows", {"count": 10}, timeout=0.5)
        with pytest.raises(lw.RequestTimeout):
            stream.collect()
        assert stream.outcome == "timeout" and not stream.committed
        worker.wait_ready(30)
        assert worker.call("echo", 1) == 1 and worker.snapshot().pid != pid
        assert worker.snapshot().restarts == {"timeout": 1}


def test_cooperative_cancel_ends_cancelled_and_keeps_the_worker_warm() -> None:
    key, _ = faulted(Fault("hang", nth=1, after_rows=3))
    with lw.Worker(key, FAST) as worker:
        pid = worker.snapshot().pid
        stream = worker.stream("rows", {"count": 10})
        rows = [next(stream) for _ in range(3)]
        stream.cancel()
        assert list(stream) == [] and stream.outcome == "cancelled" and not stream.committed
        assert len(rows) == 3
        assert worker.call("echo", "warm") == "warm"
        snapshot = worker.snapshot()
        assert snapshot.pid == pid and snapshot.generation == 1 and snapshot.restarts == {}


def test_leaving_the_with_block_early_cancels_and_frees_the_worker(mathlib_worker: lw.Worker) -> None:
    modules = [f"Mathlib.M{i}" for i in range(200)]
    with mathlib_worker.stream("index", {"modules": modules, "row_delay_ms": 5}) as stream:
        next(iter(stream))
    assert stream.outcome == "cancelled" and not stream.committed
    assert mathlib_worker.call("version")["fixture"] == "mathlib_scale"
    assert mathlib_worker.snapshot().generation == 1


def test_a_worker_that_ignores_cancel_is_killed_and_replaced() -> None:
    key, _ = faulted(Fault("hang", nth=1, after_rows=1, ignore_cancel=True))
    with lw.Worker(key, FAST) as worker:
        pid = worker.snapshot().pid
        stream = worker.stream("rows", {"count": 10})
        next(stream)
        stream.cancel()
        assert stream.collect() == [], "after the caller's cancel, iteration ends quietly"
        assert stream.outcome == "cancelled" and not stream.committed
        assert isinstance(stream.error, lw.Cancelled) and "ignored cancel" in str(stream.error)
        worker.wait_ready(30)
        assert worker.call("echo", 1) == 1
        snapshot = worker.snapshot()
        assert snapshot.pid != pid and snapshot.restarts == {"cancel": 1}


def test_a_second_concurrent_request_is_refused_with_worker_busy() -> None:
    key, _ = faulted(Fault("hang", nth=1))
    with lw.Worker(key, FAST) as worker:
        with worker.stream("rows", {"count": 1}):
            with pytest.raises(lw.WorkerBusy):
                worker.call("echo", 1)
        assert worker.call("echo", 1) == 1


def test_every_request_ends_in_exactly_one_terminal_outcome() -> None:
    key, _ = faulted(Fault("hang", nth=2, after_rows=1), Fault("crash", nth=3, after_rows=1),
                     capability=FAULTS)
    cases = [
        ("echo", 1, None, "ok"),
        ("slow_rows", {"count": 3, "delay_ms": 1}, 0.3, "timeout"),
        ("slow_rows", {"count": 3, "delay_ms": 1}, None, "crashed"),
        ("raise", {}, None, "error"),
        ("slow_rows", {"count": 2, "delay_ms": 1}, None, "ok"),
    ]
    outcomes = []
    with lw.Worker(key, FAST) as worker:
        for command, request, timeout, expected in cases:
            worker.wait_ready(30)
            stream = worker.stream(command, request, timeout=timeout)
            try:
                stream.collect()
            except lw.LeanWorkerError:
                pass
            outcomes.append(stream.outcome)
            assert stream.committed == (expected == "ok")
        snapshot = worker.snapshot()
    assert outcomes == [c[3] for c in cases]
    assert snapshot.requests_ok == 2 and snapshot.requests_failed == 3


def test_restart_intensity_exhaustion_gives_restart_limit_exceeded() -> None:
    policy = lw.RestartPolicy(max_restarts=2, restart_window=60.0)
    key, _ = faulted(Fault("crash", command="rows"))
    with lw.Worker(key, FAST, policy) as worker:
        for _ in range(2):
            with pytest.raises(lw.WorkerCrashed):
                worker.call("rows")
            worker.wait_ready(30)
        with pytest.raises(lw.WorkerCrashed):
            worker.call("rows")
        with pytest.raises(lw.RestartLimitExceeded) as info:
            worker.wait_ready(30)
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 60
        with pytest.raises(lw.RestartLimitExceeded, match="may be tried again"):
            worker.call("echo", 1)
        assert worker.snapshot().state == "exhausted"


def test_backpressure_bounds_the_buffer_and_loses_nothing() -> None:
    config = lw.WorkerConfig(buffer_rows=64)
    with lw.Worker(lw.SessionKey(THROUGHPUT), config) as worker:
        stream = worker.stream("rows", {"count": 20_000, "payload_bytes": 16})
        gate = threading.Event()
        gate.wait(0.3)  # let the worker run ahead until the pipe and the buffer are full
        seen = [row.payload["i"] for row in stream]
        assert seen == list(range(20_000)) and stream.committed
        snapshot = worker.snapshot()
        assert snapshot.backpressure_waits > 0 and snapshot.rows_delivered == 20_000


def test_shutdown_ends_a_request_in_flight_with_a_typed_outcome() -> None:
    key, _ = faulted(Fault("hang"))
    worker = lw.Worker(key, FAST)
    stream = worker.stream("rows", {"count": 1})
    report = worker.shutdown()
    assert report.how == "graceful"
    with pytest.raises(lw.WorkerClosed):
        stream.collect()
    assert stream.outcome == "shutdown"
    with pytest.raises(lw.WorkerClosed):
        worker.call("echo", 1)
    assert worker.shutdown() is report, "shutdown is idempotent"


def test_a_session_key_with_options_opens_the_simulated_import() -> None:
    key = lw.SessionKey(THROUGHPUT, options=(("import_ms", 50), ("import_mib", 8)))
    with lw.Worker(key) as worker:
        assert worker.call("info")["sessions_opened"] == 1
        assert worker.snapshot().sessions_opened == 1


def test_a_session_open_that_fails_raises_at_construction() -> None:
    key = lw.SessionKey(MATHLIB, options=(("import_ms", -5),))
    with pytest.raises(lw.CommandError, match="import_ms"):
        lw.Worker(key, FAST)


def test_a_request_times_out_at_its_own_timeout_whatever_the_requests_before_it_had() -> None:
    # One timer per slot watches the request in flight (actors/slot/gate.py): a shorter timeout than the one it is
    # armed for arms it again earlier, and a longer one is watched on when an earlier request's deadline comes.
    with lw.Worker(lw.SessionKey(FAULTS), FAST) as worker:
        assert worker.call("echo", 1) == 1  # the watch is armed for FAST's 20 s
        with pytest.raises(lw.RequestTimeout, match="within 0.3 s"):
            worker.call("hang", timeout=0.3)
        worker.wait_ready(30)
        assert worker.call("echo", 2, timeout=1.0) == 2  # the watch is armed for 1 s from now
        with pytest.raises(lw.RequestTimeout, match="within 1.5 s"):
            worker.call("hang", timeout=1.5)  # still in flight when the watch fires: watched on to its deadline
        worker.wait_ready(30)
        assert worker.call("echo", 3) == 3 and worker.snapshot().restarts == {"timeout": 2}
