"""The service's pure pieces, without HTTP and without processes: admission, keys, batching, single flight, the
Kimina and native shapes, request validation, the cache key, the policy after a worker is lost, the drain."""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any
from collections.abc import AsyncGenerator, Sequence

import pytest

pytest.importorskip("starlette")
pytest.importorskip("pydantic")

from leanworker.serve import kimina, native  # noqa: E402
from leanworker.serve.admission import Admission, Refusal, Ticket  # noqa: E402
from leanworker.serve.batcher import Batcher, batch_size  # noqa: E402
from leanworker.serve.cache import cache_key, cacheable  # noqa: E402
from leanworker.serve.checker import Row  # noqa: E402
from leanworker.serve.flight import SingleFlight  # noqa: E402
from leanworker.serve.keys import KeyRing, load_keys, parse_keys, presented_key  # noqa: E402
from leanworker.serve.lifecycle import Lifecycle  # noqa: E402
from leanworker.serve.losses import LossPolicy, lost_row  # noqa: E402
from leanworker.serve.refusals import HTTPRefusal  # noqa: E402

# -- admission -------------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_admission_admits_whole_requests_until_the_item_bound_then_refuses_with_429_and_retry_after() -> None:
    admission = Admission(max_items=10, max_bytes=10_000)
    first = admission.admit("k", 6, 60)
    assert isinstance(first, Ticket) and admission.items == 6
    refused = admission.admit("k", 5, 50)
    assert isinstance(refused, Refusal) and refused.status == 429 and refused.retry_after is not None
    assert refused.retry_after >= 1 and admission.items == 6  # refused whole: nothing of it was taken
    assert isinstance(admission.admit("other", 4, 40), Ticket)


def test_admission_gives_items_back_one_by_one_and_release_is_idempotent() -> None:
    admission = Admission(max_items=4, max_bytes=1000)
    ticket = admission.admit("k", 4, 40)
    assert isinstance(ticket, Ticket)
    admission.item_done(ticket, 10)
    assert admission.items == 3 and admission.size == 30
    assert isinstance(admission.admit("k", 1, 10), Ticket)
    admission.release(ticket)
    admission.release(ticket)
    admission.item_done(ticket, 10)  # after release: nothing more to give back
    assert admission.items == 1 and admission.size == 10 and admission.per_key == {"k": 1}


def test_a_request_that_can_never_fit_is_413_not_429() -> None:
    admission = Admission(max_items=10, max_bytes=100, max_items_per_key=5)
    for items, size in ((11, 1), (6, 1), (1, 101)):
        refused = admission.admit("k", items, size)
        assert isinstance(refused, Refusal) and refused.status == 413 and refused.retry_after is None


def test_the_per_key_limit_binds_one_key_and_not_the_others() -> None:
    admission = Admission(max_items=100, max_bytes=10_000, max_items_per_key=3)
    assert isinstance(admission.admit("a", 3, 3), Ticket)
    refused = admission.admit("a", 1, 1)
    assert isinstance(refused, Refusal) and refused.status == 429 and "this key" in refused.detail
    assert isinstance(admission.admit("b", 3, 3), Ticket)


def test_the_byte_bound_refuses_too() -> None:
    admission = Admission(max_items=100, max_bytes=100)
    assert isinstance(admission.admit("k", 1, 80), Ticket)
    refused = admission.admit("k", 1, 30)
    assert isinstance(refused, Refusal) and refused.status == 429


def test_retry_after_follows_the_completion_rate() -> None:
    clock = Clock()
    admission = Admission(max_items=10, max_bytes=10_000, clock=clock)
    ticket = admission.admit("k", 10, 10)
    assert isinstance(ticket, Ticket)
    for _ in range(2):  # 2 items completed over 2 s: about 1 item/s
        clock.now += 1.0
        admission.item_done(ticket, 1)
    refused = admission.admit("k", 9, 9)  # 8 held + 9 > 10: 7 over, at ~1/s
    assert isinstance(refused, Refusal) and 5 <= (refused.retry_after or 0) <= 10
    refused = admission.admit("k", 10, 1)  # fits no better: capped at 60 s at most
    assert isinstance(refused, Refusal) and (refused.retry_after or 0) <= 60


# -- keys ------------------------------------------------------------------------------------------------------------


def test_keys_come_from_the_environment_and_a_file_with_names_and_comments(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keyfile = tmp_path / "keys"
    keyfile.write_text("# team keys\n\nalice:s3cret-a\n  s3cret-b  \n")
    keys = load_keys(keyfile, {"LEANWORKER_API_KEYS": "ci:from-env, plain"})
    assert [k.id for k in keys][:2] == ["ci", keys[1].id] and len(keys) == 4
    ring = KeyRing(keys)
    assert ring.identify("s3cret-a") == "alice"
    assert ring.identify("from-env") == "ci"
    assert ring.identify("s3cret-b") is not None and ring.identify("s3cret-b") != "s3cret-b"  # named by a digest
    assert ring.identify("s3cret") is None and ring.identify("") is None


def test_an_empty_or_unreadable_key_file_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from leanworker.serve.keys import KeyFileError

    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(KeyFileError, match="holds no key"):
        load_keys(tmp_path / "empty", {})
    with pytest.raises(KeyFileError, match="cannot read"):
        load_keys(tmp_path / "missing", {})


def test_a_key_is_presented_as_bearer_as_a_bare_authorization_or_as_x_api_key() -> None:
    assert presented_key({"authorization": "Bearer abc"}) == "abc"
    assert presented_key({"authorization": "bearer  abc "}) == "abc"
    assert presented_key({"authorization": "abc"}) == "abc"  # what the Kimina server accepts too
    assert presented_key({"x-api-key": "xyz", "authorization": "Bearer abc"}) == "xyz"
    assert presented_key({}) is None and presented_key({"authorization": "Bearer "}) is None
    assert parse_keys(["name:", ":", "  "]) == []


# -- batching and single flight ---------------------------------------------------------------------------------------


def test_batch_size_spreads_a_burst_over_the_free_calls_and_respects_the_cap() -> None:
    assert batch_size(0, 2, 16) == 0
    assert batch_size(1, 2, 16) == 1
    assert batch_size(8, 2, 16) == 4
    assert batch_size(100, 2, 16) == 16
    assert batch_size(5, 0, 16) == 5


class HeldChecker:
    """A Checker double: each call waits until the test lets it go, then answers every body "ok"."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.identity = "held"
        self.simulated = True
        self.calls: list[tuple[tuple[str, ...], list[str], float | None]] = []
        self.go = asyncio.Event()

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def check(self, imports: tuple[str, ...], bodies: Sequence[str],
                    timeout: float | None) -> AsyncGenerator[tuple[int, Row], None]:
        self.calls.append((imports, list(bodies), timeout))
        await self.go.wait()
        for index, _ in enumerate(bodies):
            yield index, {"status": "ok", "messages": [], "sorries": [], "elapsed_s": 0.0}


def test_the_batcher_groups_waiting_items_by_header_and_timeout_and_never_exceeds_capacity() -> None:
    async def scenario() -> None:
        checker = HeldChecker(capacity=2)
        batcher = Batcher(checker, max_batch=16)
        early = [batcher.submit(("A",), f"a{i}", 5.0) for i in range(2)]  # each starts a call at once
        waiting = [batcher.submit(("A",), f"a{i}", 5.0) for i in range(2, 6)]
        other = batcher.submit(("B",), "b0", 5.0)
        other_timeout = batcher.submit(("A",), "a-t", 1.0)
        await asyncio.sleep(0)
        assert [c[1] for c in checker.calls] == [["a0"], ["a1"]]  # never more calls than capacity
        assert batcher.waiting == 6
        checker.go.set()
        rows = await asyncio.gather(*early, *waiting, other, other_timeout)
        assert all(row["status"] == "ok" for row in rows)
        # the items that waited went together, one call per (header, timeout), oldest group first
        assert checker.calls[2:] == [(("A",), ["a2", "a3", "a4", "a5"], 5.0), (("B",), ["b0"], 5.0),
                                     (("A",), ["a-t"], 1.0)]
        assert batcher.waiting == 0

    asyncio.run(scenario())


def test_inside_a_group_a_call_takes_items_round_robin_over_requests_so_a_small_one_is_not_starved() -> None:
    async def scenario() -> None:
        checker = HeldChecker(capacity=1)
        batcher = Batcher(checker, max_batch=2)
        big, small = object(), object()
        first = batcher.submit(("A",), "a0", None, big)
        rest = [batcher.submit(("A",), f"a{i}", None, big) for i in range(1, 10)]
        alone = batcher.submit(("A",), "b0", None, small)
        await asyncio.sleep(0)
        checker.go.set()
        await asyncio.gather(first, alone, *rest)
        assert checker.calls[1][1] == ["a1", "b0"]  # not a1, a2: the small request's item rides the next call
        assert [body for call in checker.calls[2:] for body in call[1]] == [f"a{i}" for i in range(2, 10)]

    asyncio.run(scenario())


def test_a_withdrawn_item_never_reaches_a_call_and_close_answers_the_waiting_as_unchecked() -> None:
    async def scenario() -> None:
        checker = HeldChecker(capacity=1)
        batcher = Batcher(checker)
        running = batcher.submit((), "x", None)
        withdrawn = batcher.submit((), "gone", None)
        waiting = batcher.submit((), "y", None)
        withdrawn.cancel()
        await asyncio.sleep(0)
        assert checker.calls == [((), ["x"], None)]
        await batcher.aclose()
        assert waiting.result()["status"] == "unchecked"
        assert running.result()["status"] == "unchecked" and "stopping" in running.result()["error"]

    asyncio.run(scenario())


def test_a_call_runs_in_the_context_of_the_request_whose_item_is_first_in_it() -> None:
    request: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")

    class Recording(HeldChecker):
        async def check(self, imports: tuple[str, ...], bodies: Sequence[str],
                        timeout: float | None) -> AsyncGenerator[tuple[int, Row], None]:
            seen.append((request.get(), list(bodies)))
            async for answer in super().check(imports, bodies, timeout):
                yield answer

    seen: list[tuple[str, list[str]]] = []

    async def submit(batcher: Batcher, name: str, body: str) -> asyncio.Future[Row]:
        request.set(name)  # as an HTTP request's span is current in its own task
        return batcher.submit((), body, None, name)

    async def scenario() -> None:
        checker = Recording(capacity=1)
        batcher = Batcher(checker)
        futures = [await asyncio.create_task(submit(batcher, name, body))
                   for name, body in (("r1", "a"), ("r2", "b"), ("r3", "c"))]
        checker.go.set()
        await asyncio.gather(*futures)
        # r1's call started in r1's task; the next call (r2 and r3 together) starts from r1's call ending, yet runs
        # in r2's context: its first item's
        assert seen == [("r1", ["a"]), ("r2", ["b", "c"])]

    asyncio.run(scenario())


def test_single_flight_starts_one_check_for_identical_items_and_cancels_only_when_every_waiter_left() -> None:
    async def scenario() -> None:
        flight = SingleFlight()
        started: list[asyncio.Future[Row]] = []

        def start() -> asyncio.Future[Row]:
            started.append(asyncio.get_running_loop().create_future())
            return started[-1]

        one = flight.join("k", start)
        two = flight.join("k", start)
        assert one is two and len(started) == 1 and flight.joined == 1
        flight.leave("k", one)
        assert not one.cancelled()
        flight.leave("k", two)
        assert one.cancelled() and len(flight) == 0
        three = flight.join("k", start)  # a new flight for the same key
        flight.leave("k", one)  # a late leave of the old flight does not touch the new one
        assert not three.done() and len(started) == 2
        three.set_result({"status": "ok"})
        await asyncio.sleep(0)
        assert len(flight) == 0

    asyncio.run(scenario())


# -- shapes -----------------------------------------------------------------------------------------------------------


def test_kimina_check_request_validation_gives_the_kimina_servers_422_details() -> None:
    def detail(payload: object) -> list[dict[str, object]]:
        with pytest.raises(HTTPRefusal) as caught:
            kimina.parse_check(payload)
        assert caught.value.status == 422
        return list(caught.value.detail)

    # each expected entry is what kimina-ast-server 2.1.3 answered to the same body (bench peer, by hand)
    assert detail({"snippets": []}) == [{"type": "value_error", "loc": ["body"], "msg": "Value error, `snippets` "
                                         "must be non empty", "input": {"snippets": []}, "ctx": {"error": {}}}]
    assert detail({"snippets": [{"id": "a", "code": "x"}, {"id": "a", "code": "y"}]})[0]["msg"] == \
        "Value error, `snippets` must have unique ids"
    assert detail({"snippets": [{"id": 1, "code": "x"}]}) == [
        {"type": "string_type", "loc": ["body", "snippets", 0, "id"], "msg": "Input should be a valid string",
         "input": 1}]
    assert detail({"snippets": [{"id": "a"}]})[0]["loc"] == ["body", "snippets", 0, "code"]
    assert detail({"snippets": [{"id": "a", "code": "x"}], "timeout": -1})[0]["type"] == "greater_than_equal"
    assert detail({"snippets": [{"id": "a", "code": "x"}], "timeout": 1.5})[0]["type"] == "int_from_float"
    assert detail({"snippets": [{"id": "a", "code": "x"}], "infotree": "bogus"})[0]["type"] == "enum"
    assert detail([])[0]["type"] == "model_attributes_type"
    parsed = kimina.parse_check({"snippets": [{"id": "a", "code": "x"}], "extra": 1})
    assert parsed.timeout == 30 and parsed.debug is False and parsed.reuse is True and parsed.infotree is None


def test_kimina_verify_accepts_proof_or_code_and_int_ids_and_refuses_what_kimina_answers_with_a_500() -> None:
    parsed = kimina.parse_verify({"codes": [{"custom_id": 7, "code": "c"},
                                                            {"custom_id": "a", "proof": "p"}]})
    assert [c.content for c in parsed.codes] == ["c", "p"] and parsed.timeout == 300
    with pytest.raises(HTTPRefusal, match="neither `proof` nor `code`"):
        kimina.parse_verify({"codes": [{"custom_id": "a"}]})
    with pytest.raises(HTTPRefusal, match="unique custom ids"):
        kimina.parse_verify({"codes": [{"custom_id": 1, "proof": "x"}, {"custom_id": "1",
                                                                                        "proof": "y"}]})


OK: Row = {"status": "ok", "messages": [], "sorries": [], "elapsed_s": 0.25}
SORRY_IN_CODE: Row = {"status": "sorry", "messages": [], "elapsed_s": 0.5, "sorries": [
    {"pos": {"line": 4, "column": 2}, "endPos": {"line": 4, "column": 7}, "goal": "⊢ True", "proofState": 0}]}


def test_kimina_results_carry_the_response_or_the_error_and_diagnostics_only_under_debug() -> None:
    assert kimina.check_result("a", OK, "x", 30, debug=False, cached=False, simulated=True) == \
        {"id": "a", "time": 0.25, "response": {}}
    code = "import Mathlib\n\nimport Aesop\ntheorem t :\n  sorry"
    result = kimina.check_result("s", SORRY_IN_CODE, code, 30, debug=True, cached=True, simulated=False)
    assert result["response"]["sorries"][0]["pos"] == {"line": 1, "column": 2}  # relative to Kimina's body
    assert result["diagnostics"] == {"status": "sorry", "cached": True}
    timeout = {"status": "timeout", "messages": [], "sorries": [], "elapsed_s": 5.0, "error": "killed"}
    assert kimina.check_result("t", timeout, "x", 5, debug=False, cached=False, simulated=False) == \
        {"id": "t", "time": 5.0, "error": "Lean REPL command timed out in 5.0 seconds"}
    crashed = {"status": "crashed", "messages": [], "sorries": [], "elapsed_s": 0.1, "error": "exited with status 1"}
    assert kimina.check_result("c", crashed, "x", 5, debug=False, cached=False, simulated=False)["error"] == \
        "Lean REPL crashed: exited with status 1"
    repl_error = {"status": "error", "messages": [], "sorries": [], "elapsed_s": 0.1, "error": "Unknown environment."}
    assert kimina.check_result("e", repl_error, "x", 5, debug=False, cached=False, simulated=False)["response"] == \
        {"message": "Unknown environment."}


def test_verify_results_put_the_time_inside_the_response_as_kimina_does() -> None:
    assert kimina.verify_result("7", OK, "x", 300) == {"custom_id": "7", "response": {"time": 0.25}}
    timeout = {"status": "timeout", "elapsed_s": 5.0, "error": "killed"}
    assert kimina.verify_result("7", timeout, "x", 5) == {"custom_id": "7",
                                                          "error": "Lean REPL command timed out in 5.0 seconds"}


def test_the_kimina_body_starts_after_the_leading_blank_and_import_lines() -> None:
    assert kimina.body_line_shift("theorem t") == 0
    assert kimina.body_line_shift("import A\n\n  import B\ntheorem t\nimport C") == 3
    assert kimina.body_line_shift("import A") == 1


def test_native_items_come_as_a_json_list_or_as_json_lines_and_bad_input_names_the_field() -> None:
    items = native.parse_items(b'[{"id": 1, "code": "a"}, {"id": "1", "code": "b", "x": 0}]', "application/json")
    assert [(i.id, i.code) for i in items] == [(1, "a"), ("1", "b")]
    lines = native.parse_items(b'{"id": "a", "code": "x"}\n\n{"id": "b", "code": "y"}\n', "application/x-ndjson")
    assert [i.id for i in lines] == ["a", "b"]

    def refused(body: bytes, content_type: str = "application/json") -> HTTPRefusal:
        with pytest.raises(HTTPRefusal) as caught:
            native.parse_items(body, content_type)
        return caught.value

    assert refused(b"[{").status == 400
    bad_line = refused(b'{"id": "a", "code": "x"}\n{nope\n', "application/x-ndjson")
    assert bad_line.status == 400 and bad_line.detail[0]["loc"][:2] == ["body", "line 2"]
    assert refused(b'{"id": "a", "code": "x"}').detail[0]["type"] == "list_type"
    assert refused(b'[{"id": "a", "code": 5}]').detail[0]["loc"] == ["body", 0, "code"]
    assert refused(b'[{"id": true, "code": "x"}]').status == 422
    assert refused(b"[]").detail[0]["msg"] == "no items"
    duplicate = refused(b'[{"id": "a", "code": "x"}, {"id": "a", "code": "y"}]')
    assert duplicate.status == 422 and duplicate.detail[0]["loc"] == ["body", 1, "id"]
    assert refused(b"\xff\xfe").status == 400


def test_the_native_timeout_is_positive_and_capped() -> None:
    assert native.parse_timeout(None, 60.0, 300.0) == 60.0
    assert native.parse_timeout("2.5", 60.0, 300.0) == 2.5
    assert native.parse_timeout("9999", 60.0, 300.0) == 300.0
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(HTTPRefusal) as caught:
            native.parse_timeout(bad, 60.0, 300.0)
        assert caught.value.status == 422 and caught.value.detail[0]["loc"] == ["query", "timeout"]


def test_a_native_result_line_says_simulated_and_cached_only_when_so() -> None:
    line = json.loads(native.result_line("a", OK, cached=False, simulated=False))
    assert line == {"id": "a", "status": "ok", "messages": [], "sorries": [], "elapsed_s": 0.25}
    marked = json.loads(native.result_line(3, {**OK, "error": "e"}, cached=True, simulated=True))
    assert marked["cached"] is True and marked["simulated"] is True and marked["error"] == "e"


# -- the cache key ----------------------------------------------------------------------------------------------------


def test_the_cache_key_changes_with_everything_that_decides_a_verdict() -> None:
    base = cache_key("repl=a; toolchain=x", ("Mathlib",), "theorem t := rfl")
    assert base == cache_key("repl=a; toolchain=x", ["Mathlib"], "theorem t := rfl")
    assert len({base, cache_key("repl=b; toolchain=x", ("Mathlib",), "theorem t := rfl"),
                cache_key("repl=a; toolchain=x", (), "theorem t := rfl"),
                cache_key("repl=a; toolchain=x", ("Mathlib",), "theorem t := rfl "),
                cache_key("repl=a; toolchain=x", ("Mathlib",), "theorem t := rfl", (("infotree", "full"),))}) == 5


def test_only_lean_verdicts_are_cacheable() -> None:
    assert cacheable(OK) and cacheable(SORRY_IN_CODE) and cacheable({"status": "error", "messages": [1]})
    for row in ({"status": "timeout"}, {"status": "crashed"}, {"status": "unchecked", "error": "x"},
                {"status": "error", "error": "Unknown environment."}):
        assert not cacheable(row)


# -- the command line's decisions ---------------------------------------------------------------------------------------


def test_the_sandbox_shows_the_repls_programs_and_the_whole_elan_when_it_runs_from_there(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from leanworker.serve.command import repl_paths

    elan_bin = tmp_path / ".elan" / "bin"
    elan_bin.mkdir(parents=True)
    (elan_bin / "lake").write_text("#!/bin/sh\n")
    repl = tmp_path / "proj" / "repl"
    repl.parent.mkdir()
    repl.write_text("")
    paths = repl_paths((str(elan_bin / "lake"), "env", str(repl), "--flag"))
    assert str(elan_bin) in paths and str(tmp_path / ".elan") in paths and str(repl.parent) in paths
    assert not any(p.endswith("env") or p.endswith("--flag") for p in paths)


def test_the_service_hides_its_key_file_and_its_cache_from_workers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from leanworker.serve.config import ServeConfig

    config = ServeConfig(api_keys_file=str(tmp_path / "keys"), cache_path=tmp_path / "c.sqlite3")
    assert config.hidden_paths == (str(tmp_path / "keys"), str(tmp_path / "c.sqlite3"),
                                   str(tmp_path / "c.sqlite3-wal"), str(tmp_path / "c.sqlite3-shm"))
    assert ServeConfig(cache=False).hidden_paths == ()
    assert ServeConfig().sandbox == "auto"


# -- a worker lost mid-call; the drain ------------------------------------------------------------------------------


def test_a_lost_worker_charges_the_item_it_was_checking_and_gives_it_up_at_its_last_strike() -> None:
    policy = LossPolicy(max_strikes=2)
    assert policy.lost([3, 4, 5]) is None  # item 3 was being checked: one strike, everything runs again
    assert policy.lost([3, 4, 5]) == 3  # lost again on it: answered on its own, the others run again
    assert policy.lost([4, 5]) is None and policy.strikes == {3: 2, 4: 1}
    assert policy.lost([]) is None
    row = lost_row(2, "WorkerCrashed: exit 3")
    assert row["status"] == "crashed" and "lost 2 times" in row["error"] and "WorkerCrashed" in row["error"]
    with pytest.raises(ValueError):
        LossPolicy(max_strikes=0)


def test_losses_are_bounded_by_strikes_so_a_call_never_loops() -> None:
    policy = LossPolicy(max_strikes=3)
    unanswered = list(range(5))
    losses = 0
    while unanswered:  # a worker that is lost on every item, every time
        losses += 1
        given_up = policy.lost(unanswered)
        if given_up is not None:
            unanswered.remove(given_up)
    assert losses == 15


def test_the_drain_waits_for_requests_in_flight_and_stops_the_rest_after_the_grace() -> None:
    async def scenario() -> None:
        stopped: list[bool] = []

        async def stop() -> None:
            stopped.append(True)

        quick = Lifecycle()
        quick.enter()
        asyncio.get_running_loop().call_later(0.05, quick.leave)
        await quick.drain(30, stop)
        assert quick.draining and not quick.stopping and not stopped  # done within the grace

        slow = Lifecycle()
        slow.enter()

        async def stop_slow() -> None:
            stopped.append(True)
            slow.leave()  # stopping answers what was left

        await slow.drain(0.05, stop_slow)
        assert slow.stopping and stopped == [True] and slow.in_flight == 0

        idle = Lifecycle()
        await idle.drain(30, stop)
        assert idle.draining and not idle.stopping

    asyncio.run(scenario())


# -- JSON bodies and what a refusal echoes ----------------------------------------------------------------------------


def test_json_bodies_refuse_what_is_not_plain_json_naming_where() -> None:
    from leanworker.serve import json_body

    def refused(text: str, expected: int = 422, status: int = 422) -> dict[str, Any]:
        with pytest.raises(HTTPRefusal) as caught:
            json_body.loads(text, status=status)
        assert caught.value.status == expected
        return dict(caught.value.detail[0])

    assert json_body.loads('{"a": [1, 2.5, "\\ud83d\\ude00", null]}') == {"a": [1, 2.5, "\U0001F600", None]}
    assert refused("[" * 5000 + "]" * 5000, 400)["msg"] == "JSON nested too deeply"  # 400 whatever the endpoint
    assert refused('{"t": NaN}', 400, status=400)["ctx"]["error"] == "NaN is not JSON"
    assert refused("[-Infinity]")["ctx"]["error"] == "-Infinity is not JSON"
    assert "out of range" in refused("[1e999]")["ctx"]["error"]
    assert refused("[" + "9" * 1001 + "]", 400)["ctx"]["error"] == "an integer of 1001 digits (at most 1000)"
    assert json_body.loads("[" + "9" * 1000 + "]") == [int("9" * 1000)]
    surrogate = refused('{"snippets": [{"id": "a", "code": "x\\udc00"}]}')
    assert surrogate["type"] == "string_unicode" and surrogate["loc"] == ["body", "snippets", 0, "code"]
    assert refused('{"\\ud800": 1}')["loc"] == ["body"]
    lines = json_body.parse_lines('{"id": 1, "code": "a\u2028b"}\r\n\n{"id": 2, "code": "c"}'.encode())
    assert [line["code"] for line in lines] == ["a\u2028b", "c"]  # U+2028 inside a string ends no line
    with pytest.raises(HTTPRefusal) as caught:
        json_body.parse_lines(b'{"id": 1, "code": "a"}\n{"id": NaN}')
    assert caught.value.status == 400 and caught.value.detail[0]["loc"] == ["body", "line 2"]
    with pytest.raises(HTTPRefusal) as caught:
        json_body.parse_body(b"  ")
    assert caught.value.status == 422 and caught.value.detail[0]["type"] == "missing"


def test_an_infinite_max_timeout_is_refused_at_start_so_every_timeout_asked_can_be_capped() -> None:
    # A Kimina timeout past a float's range (401 digits) is capped at --max-timeout; with --max-timeout inf it was
    # not capped but converted, an OverflowError and a 500.
    from leanworker.serve.config import ServeConfig

    for value in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="^--max-timeout must be a finite number of seconds$"):
            ServeConfig(max_timeout=value)
    assert ServeConfig(max_timeout=1e6, timeout=1e6).max_timeout == 1e6


def test_json_lines_skip_blank_lines_without_listing_them_and_stop_past_the_bound() -> None:
    import tracemalloc

    from leanworker.serve import json_body

    body = b"\n" * (8 * 2**20) + b'  {"id": 1, "code": "x"}\n\n{"id": 2, "code": "y"}\n'
    tracemalloc.start()
    try:
        lines = json_body.parse_lines(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [line["id"] for line in lines] == [1, 2]
    assert peak < 3 * len(body)  # the text and little more: 8 million blank lines listed would be 64 MB of pointers
    with pytest.raises(HTTPRefusal) as caught:
        json_body.parse_lines(b"\n\n  [1,\n")
    assert caught.value.detail[0]["loc"] == ["body", "line 3", 5]  # the line as given, its leading blanks counted
    assert len(json_body.parse_lines(b"1\n2\n3\n4\nnot JSON\n", most=2)) == 3  # read no further than most + 1


def test_a_refusal_echoes_small_inputs_whole_and_large_ones_described() -> None:
    from leanworker.serve.refusals import brief, field_error

    assert brief({"snippets": [{"id": "a", "code": "x"}]}) == {"snippets": [{"id": "a", "code": "x"}]}
    assert brief("y" * 201) == "y" * 200 + "... (201 characters)"
    assert brief(list(range(100))) == "(a list of 100 items)"
    assert brief({str(i): i for i in range(60)}) == "(an object of 60 keys)"
    nested: Any = "deep"
    for _ in range(12):
        nested = [nested]
    assert brief(nested) == "(a list of 1 items)"
    assert brief(float("inf")) == "(a float)" and brief(10**50) == "(a int)"
    assert field_error("t", ["body", "k" * 300], "m", "v")["loc"][1].endswith("(300 characters)")


def test_a_service_on_the_simulator_or_its_fake_says_it_is_simulated_whichever_way_the_repl_is_named() -> None:
    from leanworker.serve.config import ServeConfig

    assert ServeConfig(simulator=True).simulated
    assert ServeConfig(repl=("python3", "-m", "leanworker.fixtures.repl_sim")).simulated
    assert ServeConfig(repl=("python3", "-m", "leanworker.fixtures.repl_fake", "--misbehave")).simulated
    assert not ServeConfig(repl=("lake", "exe", "repl")).simulated
