"""Error texts a user can act on (issue 12, item 3), each checked as the user sees it."""

from __future__ import annotations

import subprocess
import sys

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, THROUGHPUT, faulted
from leanworker.testing import Fault


def test_a_missing_attribute_is_named_as_such() -> None:
    with pytest.raises(lw.CommandError) as info:
        lw.Worker(lw.SessionKey("leanworker.fixtures.faults:no_such_capability"), FAST)
    assert info.value.code == "capability_load"
    assert "module 'leanworker.fixtures.faults' has no attribute 'no_such_capability'" in info.value.message


def test_a_mistyped_capability_attribute_names_the_capabilities_its_module_holds() -> None:
    with pytest.raises(lw.CommandError) as info:
        lw.Worker(lw.SessionKey("leanworker.fixtures.faults:capabilty"), FAST)
    assert info.value.message.endswith("; its capabilities: leanworker.fixtures.faults:capability"), \
        info.value.message


def test_a_capability_exception_carries_the_worker_traceback(faults_worker: lw.Worker) -> None:
    with pytest.raises(lw.CommandError) as info:
        faults_worker.call("raise", {"message": "boom"})
    error = info.value
    assert error.code == "exception" and error.message == "RuntimeError: boom"
    assert error.traceback is not None and "in raise_" in error.traceback
    assert "worker traceback (last lines)" in str(error) and "RuntimeError: boom" in str(error).splitlines()[-1]


def test_a_request_timeout_names_the_command_the_timeout_and_a_pool_unique_request() -> None:
    key, _ = faulted(Fault("hang", nth=1))
    with lw.Worker(key, FAST) as worker:
        with pytest.raises(lw.RequestTimeout) as info:
            worker.call("echo", 1, timeout=0.5)
    text = str(info.value)
    assert text.startswith("'echo' (request worker") and "did not finish within 0.5 s" in text
    assert "/1/" in text  # worker name / generation / request id


def test_a_pool_snapshot_after_shutdown_returns_the_final_figures() -> None:
    pool = lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST))
    with pool.lease(lw.SessionKey(THROUGHPUT)) as lease:
        lease.call("echo", 1)
    pool.shutdown()
    final = pool.snapshot()
    assert final.requests_ok == 1 and final.sessions_opened == 1 and final.workers == 0


def test_doctor_reports_a_session_that_cannot_open_as_a_failed_check() -> None:
    done = subprocess.run([sys.executable, "-m", "leanworker", "doctor", "--capability",
                           f"{FAULTS.split(':')[0]}:no_such_capability"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    said = " ".join(done.stdout.split())  # the check is wrapped to the terminal
    assert "[error ] session_open: CommandError: capability_load: module 'leanworker.fixtures.faults' has no " \
           "attribute 'no_such_capability'" in said
