"""A worker's bad output is a typed outcome, never a dead reader; the parent never sends what a worker refuses;
the host never emits what its parent refuses (issue 8, items 1 to 3)."""

from __future__ import annotations

import datetime
import decimal
import json
import sys
from typing import Any

import pytest

import leanworker as lw
from conftest import FAST, FAULTS, THROUGHPUT

SCRIPTED = (sys.executable, "-m", "leanworker.fixtures.scripted_worker")


def scripted_key(open_script: list[dict[str, Any]] | None = None) -> lw.SessionKey:
    options = (("open_script", json.dumps(open_script)),) if open_script is not None else ()
    return lw.SessionKey(FAULTS, command=SCRIPTED, options=options)


def script(*steps: dict[str, Any]) -> dict[str, str]:
    return {"script": json.dumps(list(steps))}


def done(**fields: Any) -> dict[str, Any]:
    return {"msg": {"type": "done", "id": "$id", "outcome": "ok", "result": None, "error": None, "counts": {},
                    "elapsed": 0.0, **fields}}


@pytest.fixture
def scripted() -> Any:
    with lw.Worker(scripted_key(), FAST) as worker:
        yield worker


def assert_serves_again(worker: lw.Worker) -> None:
    worker.wait_ready(30)
    assert worker.call("next", script({"done": True})) is None


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), "3", -1, 2**63])
def test_a_done_with_bad_counts_is_a_protocol_error_and_the_worker_is_replaced(scripted: lw.Worker,
                                                                               value: Any) -> None:
    with pytest.raises(lw.ProtocolError, match="done.counts"):
        scripted.call("x", script(done(counts={"rows": value})))
    assert_serves_again(scripted)
    assert scripted.snapshot().restarts == {"protocol": 1}


def test_a_second_hello_mid_session_is_a_protocol_error(scripted: lw.Worker) -> None:
    hello = {"msg": {"type": "hello", "protocol": 1, "host": "again", "pid": 1}}
    with pytest.raises(lw.ProtocolError, match="second hello"):
        scripted.call("x", script(hello, {"done": True}))
    assert_serves_again(scripted)


def test_rows_for_a_call_that_asked_for_none_are_a_protocol_error(scripted: lw.Worker) -> None:
    rows = {"msg": {"type": "rows", "id": "$id", "stream": "s", "seq": 0, "payloads": [1]}}
    with pytest.raises(lw.ProtocolError, match="asked for no rows"):
        scripted.call("x", script(rows, done(counts={"s": 1})))
    assert_serves_again(scripted)


def test_bytes_after_the_cbor_item_of_a_frame_are_a_protocol_error(scripted: lw.Worker) -> None:
    body = "a2647479706564706f6e676269640101"  # {"type": "pong", "id": 1} then a stray byte 0x01
    with pytest.raises(lw.ProtocolError, match="after its one CBOR item"):
        scripted.call("x", script({"frame_hex": body}, {"done": True}))
    assert_serves_again(scripted)


def test_a_bad_done_during_the_session_open_fails_the_worker_with_a_protocol_error() -> None:
    with pytest.raises(lw.ProtocolError, match="done.counts"):
        lw.Worker(scripted_key([done(counts={"rows": None})]), FAST)


def test_a_pool_of_one_keeps_serving_after_a_protocol_error() -> None:
    with lw.WorkerPool(lw.PoolConfig(max_workers=1, worker=FAST)) as pool:
        with pool.lease(scripted_key()) as lease:
            with pytest.raises(lw.ProtocolError):
                lease.call("x", script(done(elapsed=float("nan"))))
        with pool.lease(scripted_key(), timeout=30) as lease:
            assert lease.call("x", script({"done": True})) is None
        assert pool.snapshot().restarts == {"protocol": 1}


# -- the parent never sends what a worker would refuse ------------------------------------------------------------


def nested_lists(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


NOT_PLAIN: list[tuple[str, Any, type]] = [
    ("nested 20,000 deep", nested_lists(20_000), ValueError),
    ("nested 64 deep", nested_lists(64), ValueError),
    ("an int of 2**64", 2**64, ValueError),
    ("a negative int below -2**64", -(2**64) - 1, ValueError),
    ("a set", {1, 2}, TypeError),
    ("a Decimal", decimal.Decimal("1.5"), TypeError),
    ("an aware datetime", datetime.datetime.now(datetime.timezone.utc), TypeError),
    ("a tuple key", {(1, 2): 3}, TypeError),
    ("a lone surrogate", "\ud800", ValueError),
    ("an object", object(), TypeError),
]


@pytest.mark.parametrize(("label", "value", "kind"), NOT_PLAIN, ids=[label for label, _, _ in NOT_PLAIN])
def test_a_request_that_is_not_plain_data_is_refused_before_anything_is_sent(label: str, value: Any,
                                                                            kind: type) -> None:
    with lw.Worker(lw.SessionKey(THROUGHPUT), FAST) as worker:
        before = worker.snapshot()
        with pytest.raises(lw.NotPlainData) as info:
            worker.call("echo", {"payload": [value]})
        assert isinstance(info.value, kind)
        assert info.value.path.startswith("request['payload'][0]")
        after = worker.snapshot()
        assert (after.generation, after.restarts) == (before.generation, {})
        assert (after.requests_ok, after.requests_failed) == (before.requests_ok, before.requests_failed)
        assert worker.call("echo", "still warm") == "still warm"


def test_nesting_up_to_the_limit_is_sent_and_comes_back() -> None:
    with lw.Worker(lw.SessionKey(THROUGHPUT), FAST) as worker:
        value = nested_lists(62)  # the call message (1) and the request (1 + 62 levels): 64 in all
        assert worker.call("echo", [value]) == [value]


def test_a_request_too_large_for_one_frame_is_refused_before_sending() -> None:
    with lw.Worker(lw.SessionKey(THROUGHPUT), FAST) as worker:
        with pytest.raises(lw.UnencodableValue, match="does not fit in one frame"):
            worker.call("echo", b"\0" * (2 * 1024 * 1024))
        assert worker.snapshot().restarts == {}


# -- the host never emits what its parent refuses ------------------------------------------------------------------

BAD_OUTPUT = [
    ("result", kind, "unencodable_result") for kind in ("set", "decimal", "bigint", "tuple_key", "deep", "datetime",
                                                         "surrogate", "huge")
] + [
    ("row", "set", "bad_row"), ("row", "bigint", "bad_row"), ("coalesced", "decimal", "bad_row"),
    ("flusher", "tuple_key", "bad_row"), ("flusher", "huge", "bad_row"), ("swallowed", "set", "bad_row"),
    ("diagnostic", "set", "bad_diagnostic"), ("diagnostic", "deep", "bad_diagnostic"),
    ("progress", "nan", "bad_progress"), ("progress", "set", "bad_progress"),
]


def test_output_the_parent_would_refuse_is_a_command_error_and_the_worker_stays_warm() -> None:
    with lw.Worker(lw.SessionKey(FAULTS), FAST) as worker:
        for via, kind, code in BAD_OUTPUT:
            row_path = code == "bad_row"  # call() counts rows without encoding them: only a stream sends rows
            for streaming in (True,) if row_path else (False, True):
                request = {"kind": kind, "via": via}
                with pytest.raises(lw.CommandError) as info:
                    if streaming:
                        worker.stream("unencodable", request).collect()
                    else:
                        worker.call("unencodable", request)
                assert info.value.code == code, (via, kind, streaming, info.value)
        snapshot = worker.snapshot()
        assert snapshot.generation == 1 and snapshot.restarts == {}, "no bad value may cost a restart"
        assert worker.call("echo", "warm") == "warm"
