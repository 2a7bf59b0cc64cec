"""The worker host, spoken to frame by frame over real pipes (no actors in between)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import FAULTS, MATHLIB, THROUGHPUT, pid_gone, wait_for
from leanworker.protocol import messages as m
from leanworker.protocol.frames import FrameReader, encode_frame


class RawHost:
    """A worker process and the two ends of its protocol pipe."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "leanworker.host"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        assert self.process.stdout is not None
        self.reader = FrameReader(self.process.stdout.fileno())
        self.hello = self.read()

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(encode_frame(message))
        self.process.stdin.flush()

    def read(self) -> dict[str, Any]:
        message = self.reader.read()
        assert message is not None, "worker closed its stdout"
        return message

    def until_done(self, request_id: int) -> list[dict[str, Any]]:
        out = []
        while True:
            message = self.read()
            out.append(message)
            if message["type"] == "done" and message["id"] == request_id:
                return out

    def open(self, capability: str, **options: Any) -> dict[str, Any]:
        self.send(m.open_session(1, capability, None, [], options))
        return self.until_done(1)[-1]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, 9)
            except ProcessLookupError:
                pass
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            assert stream is not None
            stream.close()


@pytest.fixture
def host() -> Iterator[RawHost]:
    raw = RawHost()
    yield raw
    raw.close()


def test_host_says_hello_first_with_its_versions(host: RawHost) -> None:
    assert m.check_hello(host.hello)["pid"] == host.process.pid
    assert host.hello["python"].startswith("3.")


def test_configure_and_open_answer_done_ok(host: RawHost) -> None:
    host.send(m.configure(7, 128 * 1024))
    assert host.until_done(7)[-1]["result"] == {"max_frame_bytes": 128 * 1024}
    done = host.open(MATHLIB)
    assert done["outcome"] == "ok" and done["result"]["capability"] == "leanworker.fixtures.mathlib_scale"


def test_a_bad_frame_cap_is_refused_as_a_command_error(host: RawHost) -> None:
    host.send(m.configure(7, 10))
    done = host.until_done(7)[-1]
    assert done["outcome"] == "error" and done["error"]["code"] == "bad_configure"


def test_rows_arrive_coalesced_in_sequence_with_counts_in_done(host: RawHost) -> None:
    host.open(THROUGHPUT)
    host.send(m.call(2, "rows", {"count": 1000, "payload_bytes": 8}, True))
    frames = host.until_done(2)
    rows = [f for f in frames if f["type"] == "rows"]
    assert 1 < len(rows) < 1000, "rows are batched into frames"
    seqs = [i for f in rows for i in range(f["seq"], f["seq"] + len(f["payloads"]))]
    assert seqs == list(range(1000))
    assert [p["i"] for f in rows for p in f["payloads"]] == list(range(1000))
    assert frames[-1]["counts"] == {"rows": 1000} and frames[-1]["outcome"] == "ok"


def test_a_non_streaming_call_sends_no_rows_but_counts_them(host: RawHost) -> None:
    host.open(THROUGHPUT)
    host.send(m.call(2, "rows", {"count": 10, "payload_bytes": 1}, False))
    frames = host.until_done(2)
    assert [f["type"] for f in frames] == ["done"] and frames[0]["counts"] == {"rows": 10}


def test_a_slow_row_is_flushed_live_without_waiting_for_the_batch(host: RawHost) -> None:
    host.open(FAULTS)
    host.send(m.call(2, "slow_rows", {"count": 3, "delay_ms": 300}, True))
    first = host.read()
    assert first["type"] == "rows" and first["payloads"] == [{"i": 0}], "row 0 arrived before row 1 was made"
    frames = host.until_done(2)
    assert frames[-1]["outcome"] == "ok"


def test_cancel_ends_the_command_cancelled_and_the_worker_stays_warm(host: RawHost) -> None:
    host.open(FAULTS)
    host.send(m.call(2, "hang", {"after_rows": 0}, True))
    host.send(m.ping(3))
    assert host.read() == m.pong(3), "ping is answered while a command runs"
    host.send(m.cancel(2))
    assert host.until_done(2)[-1]["outcome"] == "cancelled"
    host.send(m.call(4, "echo", {"still": "warm"}, False))
    assert host.until_done(4)[-1]["result"] == {"still": "warm"}


def test_a_capability_exception_becomes_a_command_error_and_the_worker_stays_usable(host: RawHost) -> None:
    host.open(FAULTS)
    host.send(m.call(2, "raise", {"message": "boom"}, True))
    done = host.until_done(2)[-1]
    assert done["outcome"] == "error"
    assert {k: done["error"][k] for k in ("code", "message")} == {"code": "exception", "message": "RuntimeError: boom"}
    assert "Traceback (most recent call last)" in done["error"]["traceback"]  # the worker-side traceback
    host.send(m.call(3, "echo", 1, False))
    assert host.until_done(3)[-1]["result"] == 1


def test_unknown_command_and_missing_session_are_command_errors(host: RawHost) -> None:
    host.send(m.call(2, "echo", 1, False))
    assert host.until_done(2)[-1]["error"]["code"] == "no_session"
    host.open(FAULTS)
    host.send(m.call(3, "nope", 1, False))
    assert host.until_done(3)[-1]["error"]["code"] == "unknown_command"


def test_an_unknown_command_names_the_commands_the_capability_has(host: RawHost) -> None:
    host.open(THROUGHPUT)
    host.send(m.call(2, "ecko", 1, False))
    error = host.until_done(2)[-1]["error"]
    assert error == {"code": "unknown_command", "message": "'leanworker.fixtures.throughput' has no command 'ecko' "
                                                           "(its commands: echo, info, rows)"}


def test_a_capability_that_cannot_load_fails_the_open(host: RawHost) -> None:
    done = host.open("leanworker.fixtures.no_such_module:capability")
    assert done["outcome"] == "error" and done["error"]["code"] == "capability_load"


def test_print_inside_a_command_goes_to_stderr_not_the_protocol_pipe(host: RawHost) -> None:
    host.open(FAULTS)
    host.send(m.call(2, "print", None, False))
    assert host.until_done(2)[-1]["result"] == "printed"
    host.send(m.stop(3))
    assert host.read() == m.bye(3)
    assert host.process.wait(10) == 0
    assert host.process.stderr is not None
    err = host.process.stderr.read()
    assert b"printed by a command" in err and b"written to fd 1" in err


def test_builtin_metadata_and_doctor(host: RawHost) -> None:
    host.open(MATHLIB)
    host.send(m.call(2, "leanworker.metadata", None, False))
    meta = host.until_done(2)[-1]["result"]
    assert meta["name"] == "leanworker.fixtures.mathlib_scale" and "index" in meta["commands"]
    assert meta["protocol"] == m.PROTOCOL_VERSION
    host.send(m.call(3, "leanworker.doctor", None, False))
    checks = {c["name"]: c["status"] for c in host.until_done(3)[-1]["result"]["checks"]}
    assert checks["session"] == "pass" and checks["simulation"] == "warning"


def test_stdin_eof_ends_the_worker(host: RawHost) -> None:
    assert host.process.stdin is not None
    host.process.stdin.close()
    assert host.process.wait(10) is not None


def test_stop_answers_bye_and_exits_zero(host: RawHost) -> None:
    host.send(m.stop(9))
    assert host.read() == m.bye(9)
    assert host.process.wait(10) == 0


def test_sigterm_ends_the_worker_with_its_grandchildren(host: RawHost) -> None:
    host.open(FAULTS)
    host.send(m.call(2, "grandchild", {}, True))
    grandchild = host.read()["payloads"][0]["grandchild"]
    os.kill(host.process.pid, 15)
    host.process.wait(10)
    assert wait_for(lambda: pid_gone(grandchild), timeout=10)
