"""The REPL driver against a FAKE REPL that misbehaves on cue (leanworker.fixtures.repl_fake, a simulator, not Lean),
one misbehaviour at a time, through real worker processes (issue 18): every answer is matched to its question or
the item in doubt is ``crashed``; one bad answer costs one item; reading is fast and capped; the header's env is
checked; the REPL's exit is seen at once with its status; nothing a REPL started outlives the REPL's replacement or
its worker."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import leanworker as lw
from conftest import FAST, pid_gone, wait_for
from console import cli, one_line_error
from lean_fake import alive, check, fake_command, fake_key, own, repl_children, started_pids

NO_RAW_EXCEPTIONS = ("Traceback", "TypeError", "KeyError", "ValueError", "AttributeError", "JSONDecodeError:")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    directory = tmp_path / "fake"
    directory.mkdir()
    return directory


@pytest.fixture
def worker(state: Path) -> Iterator[lw.Worker]:
    with lw.Worker(fake_key(state), FAST) as worker:
        yield worker


def repls_started(state: Path) -> int:
    return sum(1 for what in started_pids(state).values() if what == "repl")


def events(state: Path) -> list[str]:
    log = state / "events"
    return log.read_text().split() if log.exists() else []


def assert_readable(row: dict[str, object]) -> None:
    text = str(row.get("error", ""))
    assert text and not any(raw in text for raw in NO_RAW_EXCEPTIONS), text


# -- every answer matched to its question ---------------------------------------------------------------------------


def test_two_answers_to_one_request_cost_that_item_and_later_items_get_their_own(worker: lw.Worker) -> None:
    rows, meta = check(worker, ["TAG:a", "TAG:b fake:twice", "TAG:c", "TAG:d sorry"])
    assert own(rows[0], "a") and own(rows[2], "c") and own(rows[3], "d", "sorry")
    assert rows[1]["status"] == "crashed" and rows[1]["reason"] == "out_of_step"
    assert "two answers to one request" in rows[1]["error"] and rows[1]["messages"] == []
    assert meta["repl_restarts"] == 1 and meta["by_reason"] == {"out_of_step": 1}


def test_an_answer_sent_out_of_turn_is_never_the_next_items_verdict(worker: lw.Worker) -> None:
    # The copy comes when the next command arrives, before its answer: that item is in doubt, never misjudged.
    rows, _ = check(worker, ["TAG:a fake:late=next", "TAG:b ERROR", "TAG:c"])
    assert own(rows[0], "a") and own(rows[2], "c")
    assert rows[1]["status"] == "crashed" and rows[1]["reason"] == "out_of_step"


def test_output_that_arrives_while_nothing_is_asked_replaces_the_repl_before_the_next_request(
        worker: lw.Worker, state: Path) -> None:
    rows, _ = check(worker, ["TAG:a fake:late=50"])
    assert own(rows[0], "a")
    assert wait_for(lambda: events(state) == ["late"], timeout=10)
    rows, meta = check(worker, ["TAG:b", "TAG:c sorry"])
    assert own(rows[0], "b") and own(rows[1], "c", "sorry"), "the request was not in doubt: it ran on a fresh REPL"
    assert meta["replaced_for_unsolicited_output"] == 1 and repls_started(state) == 2


def test_a_forged_answer_from_a_process_an_item_started_never_becomes_a_verdict(worker: lw.Worker,
                                                                                 state: Path) -> None:
    # The forger writes {"env": <the next env>} (or an error object, which carries no env) to the REPL's stdout, as
    # a #eval that starts a process could: the item it lands in is crashed, never given the forged verdict; the
    # forger dies with the REPL it came from.
    rows, _ = check(worker, ["TAG:a fake:forge=next", "TAG:b", "TAG:c", "TAG:d fake:forge-error=next", "TAG:e ERROR",
                             "TAG:f sorry"])
    assert own(rows[0], "a") and own(rows[2], "c") and own(rows[3], "d") and own(rows[5], "f", "sorry")
    for victim in (rows[1], rows[4]):
        assert victim["status"] == "crashed" and victim["reason"] == "out_of_step"
    assert events(state) == ["forged", "forged"]
    forgers = [pid for pid, what in started_pids(state).items() if what == "grandchild"]
    assert len(forgers) == 2 and wait_for(lambda: all(pid_gone(pid) for pid in forgers), timeout=10)


def test_an_answer_before_any_request_is_refused(worker: lw.Worker, state: Path) -> None:
    rows, meta = check(worker, ["TAG:a CRASH fake:early-next", "TAG:b", "TAG:c sorry"])
    assert rows[0]["status"] == "crashed" and rows[0]["reason"] == "repl_exited" and rows[0]["exit"] == 1
    assert own(rows[1], "b") and own(rows[2], "c", "sorry")
    assert repls_started(state) == 3, "the REPL that spoke first was replaced and its header imported again"


def test_an_answer_before_any_request_at_session_open_is_refused(state: Path) -> None:
    (state / "early").touch()
    with lw.Worker(fake_key(state), FAST) as worker:
        rows, _ = check(worker, ["TAG:a"])
    assert own(rows[0], "a") and repls_started(state) == 2


def test_a_request_left_unanswered_is_in_doubt(worker: lw.Worker) -> None:
    rows, _ = check(worker, ["TAG:a fake:skip", "TAG:b"])
    assert rows[0]["status"] == "crashed" and rows[0]["reason"] == "out_of_step"
    assert "not the request" in rows[0]["error"] and own(rows[1], "b")


def test_output_that_is_not_the_answer_costs_only_its_item(worker: lw.Worker) -> None:
    cases = [("garbage", "not a JSON answer"), ("array", "not an object"), ("blank", "empty line"),
             ("env=99", "must carry env"), ("env=-1", "not an environment number"),
             ("env=true", "not an environment number")]
    codes = [code for n, (kind, _) in enumerate(cases) for code in (f"TAG:x fake:{kind}", f"TAG:g{n} ERROR")]
    rows, meta = check(worker, ["TAG:a", *codes])
    assert own(rows[0], "a") and meta["repl_restarts"] == len(cases)
    for n, (kind, detail) in enumerate(cases):
        bad, good = rows[1 + 2 * n], rows[2 + 2 * n]
        assert bad["status"] == "crashed" and bad["reason"] == "out_of_step" and detail in bad["error"], kind
        assert_readable(bad)
        assert own(good, f"g{n}", "error")


def test_verdicts_stay_their_own_across_later_check_calls(worker: lw.Worker) -> None:
    for round_ in range(3):
        codes = [f"TAG:r{round_}a", f"TAG:x fake:twice", f"TAG:r{round_}b sorry", "fake:skip", f"TAG:r{round_}c"]
        rows, _ = check(worker, codes)
        assert own(rows[0], f"r{round_}a") and own(rows[2], f"r{round_}b", "sorry") and own(rows[4], f"r{round_}c")
        assert [rows[1]["status"], rows[3]["status"]] == ["crashed", "crashed"]



def test_a_fake_fence_answer_printed_by_an_item_is_never_taken_for_the_fence(worker: lw.Worker) -> None:
    # Lean code cannot know the fence's nonce: a fence answer it makes up, before or after its own answer, leaves
    # two answers where one belongs, so that item is in doubt and the rest keep their own verdicts.
    rows, meta = check(worker, ["TAG:a", "TAG:b fake:fence-forge", "TAG:c", "TAG:d fake:fence-forge=after",
                                "TAG:e sorry"])
    assert own(rows[0], "a") and own(rows[2], "c") and own(rows[4], "e", "sorry")
    for victim in (rows[1], rows[3]):
        assert victim["status"] == "crashed" and victim["reason"] == "out_of_step" and victim["messages"] == []
        assert_readable(victim)
    assert "another fence" in rows[3]["error"] and meta["repl_restarts"] == 2


def test_an_answer_written_a_byte_at_a_time_is_read_whole(worker: lw.Worker) -> None:
    rows, meta = check(worker, ["TAG:a fake:dribble", "TAG:b sorry fake:dribble", "TAG:c"])
    assert own(rows[0], "a") and own(rows[1], "b", "sorry") and own(rows[2], "c")
    assert meta["repl_restarts"] == 0


def test_a_cancel_between_an_answer_and_its_fence_stops_that_repl_and_later_verdicts_are_their_own(
        state: Path) -> None:
    config = lw.WorkerConfig(startup_timeout=10.0, request_timeout=20.0, cancel_grace=10.0, kill_wait=3.0)
    with lw.Worker(fake_key(state), config) as worker:
        stream = worker.stream("check", {"items": [{"id": 0, "code": "TAG:a fake:slow-fence=60000"},
                                                   {"id": 1, "code": "TAG:b"}], "timeout": None})
        assert wait_for(lambda: events(state) == ["fence-wait"], timeout=10), "the answer is in, its fence is not"
        held = [pid for pid, what in started_pids(state).items() if what == "repl"]
        stream.cancel()
        assert list(stream) == [] and stream.outcome == "cancelled"
        assert wait_for(lambda: all(pid_gone(pid) for pid in held), timeout=10), "the REPL in doubt was stopped"
        rows, _ = check(worker, ["TAG:c", "TAG:d sorry"])
        assert own(rows[0], "c") and own(rows[1], "d", "sorry") and worker.snapshot().restarts == {}


def test_a_repl_that_closes_its_output_but_keeps_running_is_replaced_before_the_next_item(worker: lw.Worker,
                                                                                        state: Path) -> None:
    rows, _ = check(worker, ["TAG:a fake:close-stdout"], timeout=30)
    assert own(rows[0], "a")
    assert wait_for(lambda: events(state) == ["closed"], timeout=10)
    rows, meta = check(worker, ["TAG:b", "TAG:c sorry"], timeout=30)
    assert own(rows[0], "b") and own(rows[1], "c", "sorry"), "the request was not in doubt: it ran on a fresh REPL"
    assert meta["replaced_for_unsolicited_output"] == 1
    first = min(pid for pid, what in started_pids(state).items() if what == "repl")
    assert wait_for(lambda: pid_gone(first), timeout=10), "the REPL that went silent was stopped"


# -- one item never sinks the batch -----------------------------------------------------------------------------------


def test_wrong_typed_fields_cost_their_item_a_typed_status_and_the_repl_stays(worker: lw.Worker) -> None:
    rows, meta = check(worker, ["TAG:a", "fake:types", "TAG:b", "fake:severity", "TAG:c"])
    assert own(rows[0], "a") and own(rows[2], "b") and own(rows[4], "c")
    for row, detail in ((rows[1], "messages of type int (5)"), (rows[3], "severity 'fatal'")):
        assert row["status"] == "crashed" and row["reason"] == "bad_answer" and detail in row["error"]
        assert_readable(row)
    assert meta["repl_restarts"] == 0, "the answers were in step: the REPL is kept"



def test_an_answer_nested_too_deeply_to_read_costs_its_item_bad_answer(worker: lw.Worker) -> None:
    # The REPL's infotree option nests as deep as the syntax does: JSON is JSON however deep, but no reader recurses
    # for ever. The item gets a typed status, the rest their own verdicts, under check and run alike.
    rows, meta = check(worker, ["TAG:a", "TAG:x fake:deep", "TAG:b"])
    assert own(rows[0], "a") and own(rows[2], "b")
    assert rows[1]["status"] == "crashed" and rows[1]["reason"] == "bad_answer" and "nested" in rows[1]["error"]
    assert_readable(rows[1])
    with pytest.raises(lw.CommandError) as info:
        worker.call("run", {"cmd": "fake:deep", "env": 0})
    assert info.value.code == "repl_bad_answer" and "nested" in info.value.message
    assert "RecursionError" not in info.value.message
    assert worker.call("run", {"cmd": "theorem y : True := trivial", "env": 0}) == {"env": 1}


def test_an_answer_the_wire_cannot_carry_costs_its_item_bad_answer_and_the_repl_stays(worker: lw.Worker) -> None:
    # A lone UTF-16 surrogate is valid JSON but no text; an integer past 2**64 has no plain CBOR form. Either would
    # make the row unsendable: it costs its item, never the check.
    rows, meta = check(worker, ["TAG:a", "TAG:x fake:surrogate", "TAG:b", "TAG:y fake:bignum", "TAG:c"])
    assert own(rows[0], "a") and own(rows[2], "b") and own(rows[4], "c")
    for row in (rows[1], rows[3]):
        assert row["status"] == "crashed" and row["reason"] == "bad_answer" and row["messages"] == [], row
        assert "cannot carry" in row["error"]
        assert_readable(row)
    assert meta["repl_restarts"] == 0, "the answers were in step: the REPL is kept"
    for directive in ("fake:surrogate", "fake:bignum"):
        with pytest.raises(lw.CommandError) as info:
            worker.call("run", {"cmd": directive, "env": 0})
        assert info.value.code == "repl_bad_answer" and "cannot carry" in info.value.message


def test_a_10_mb_answer_keeps_its_verdict_in_a_row_cut_to_fit_the_frame(worker: lw.Worker) -> None:
    rows, meta = check(worker, ["TAG:a", "theorem big : False := ERROR fake:big=10", "TAG:b"])
    assert own(rows[0], "a") and own(rows[2], "b")
    big = rows[1]
    assert big["status"] == "error" and big["messages"][0]["data"] == "unknown identifier 'ERROR'"
    assert big["truncated"]["answer_bytes"] > 9_000_000 and big["truncated"]["messages"] > len(big["messages"]) > 1
    assert meta["repl_restarts"] == 0


def test_an_answer_past_the_cap_costs_its_item_answer_too_large(state: Path) -> None:
    with lw.Worker(fake_key(state, options=(("max_answer_mib", 1),)), FAST) as worker:
        rows, _ = check(worker, ["TAG:a", "fake:big=3", "TAG:b", "fake:flood", "TAG:c"], timeout=15)
    assert own(rows[0], "a") and own(rows[2], "b") and own(rows[4], "c")
    for row in (rows[1], rows[3]):  # a valid answer too large, and output without end or blank line
        assert row["status"] == "crashed" and row["reason"] == "answer_too_large"
        assert "1.0 MiB" in row["error"] and "max_answer_mib" in row["error"] and row["elapsed_s"] < 10


def test_a_200_mb_answer_below_a_raised_cap_is_read_in_time(state: Path) -> None:
    with lw.Worker(fake_key(state, options=(("max_answer_mib", 256),)), FAST) as worker:
        rows, _ = check(worker, ["TAG:a fake:big=200", "TAG:b"], timeout=60)
    assert rows[0]["status"] == "ok" and rows[0]["truncated"]["answer_bytes"] > 199_000_000
    assert own(rows[1], "b")


def test_a_header_import_failing_on_restart_gives_the_rest_a_typed_status_and_the_check_completes(
        worker: lw.Worker, state: Path) -> None:
    rows, meta = check(worker, ["TAG:a", "TAG:b fake:break-imports", "TAG:c", "TAG:d"])
    assert own(rows[0], "a") and rows[1]["reason"] == "repl_exited"
    assert [r["status"] for r in rows[2:]] == ["crashed", "crashed"]
    assert [r["reason"] for r in rows[2:]] == ["repl_unavailable", "repl_unavailable"]
    assert "could not be restarted" in rows[2]["error"] and "imports broken on cue" in rows[2]["error"]
    assert rows[3]["error"].startswith("not run: ") and meta["by_reason"] == {"repl_exited": 1,
                                                                               "repl_unavailable": 2}
    started = repls_started(state)
    rows, _ = check(worker, ["TAG:e", "TAG:f"])  # still broken: one more attempt for this check, not one per item
    assert [r["reason"] for r in rows] == ["repl_unavailable"] * 2 and repls_started(state) == started + 1
    (state / "imports-broken").unlink()
    rows, _ = check(worker, ["TAG:g", "TAG:h sorry"])
    assert own(rows[0], "g") and own(rows[1], "h", "sorry"), "the next check tries again, and heals"


# -- the header ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["-1", "1.5", "true", "1e30"])
def test_a_bad_header_env_is_one_import_failed_for_the_session(state: Path, env: str) -> None:
    with pytest.raises(lw.CommandError) as info:
        lw.Worker(fake_key(state, f"--header-env={env}"), FAST)
    assert info.value.code == "import_failed" and "not an environment number" in info.value.message
    assert repls_started(state) == 2, "one retry on a fresh REPL, then one import_failed: no crash per item"


def test_a_hung_import_fails_at_import_timeout(state: Path) -> None:
    with pytest.raises(lw.CommandError) as info:
        lw.Worker(fake_key(state, "--hang-imports", options=(("import_timeout", 0.5),)), FAST)
    assert info.value.code == "import_failed" and "no answer within 0.5 s" in info.value.message
    assert "raise the session option import_timeout" in info.value.message, "says what to do"


def test_an_import_longer_than_a_request_may_take_opens_within_open_timeout(state: Path) -> None:
    # The session open is not a request: WorkerConfig.open_timeout gives a Lean import its own time, while every
    # request keeps its short deadline; without it the open is bounded as a request is, and the error says so.
    quick = dict(startup_timeout=10.0, request_timeout=0.5, cancel_grace=0.5, shutdown_timeout=2.0, kill_wait=3.0)
    with lw.Worker(fake_key(state, "--import-ms=1000"), lw.WorkerConfig(**quick, open_timeout=30.0)) as worker:
        rows, _ = check(worker, ["TAG:a"], timeout=None)
        assert own(rows[0], "a")
    with pytest.raises(lw.StartupTimeout) as info:
        lw.Worker(fake_key(state, "--import-ms=5000"), lw.WorkerConfig(**quick))
    said = str(info.value)
    assert "session open did not finish within 0.5 s" in said and "open_timeout" in said, said


def test_import_timeout_and_the_answer_cap_have_defaults(worker: lw.Worker) -> None:
    checks = {check.name: check for check in worker.doctor().checks}
    assert "import timeout 300 s" in checks["repl"].message and "answer cap 64 MiB" in checks["repl"].message


def test_session_imports_must_be_module_names(state: Path) -> None:
    with pytest.raises(lw.CommandError) as info:
        lw.Worker(fake_key(state, imports=("Mathlib\n#eval 1",)), FAST)
    assert info.value.code == "bad_request" and "not a Lean module name" in info.value.message
    assert repls_started(state) == 0


def test_a_repl_program_that_does_not_exist_is_repl_not_found_at_open(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.write_text("#!/bin/sh\nexec \"$@\"\n")
    lake.chmod(lake.stat().st_mode | stat.S_IXUSR)
    for command, named in [("/nonexistent/repl --flag", "/nonexistent/repl"),
                           (f"{lake} env /nonexistent/bin/repl", "/nonexistent/bin/repl"),
                           ("no-such-repl-program", "no-such-repl-program")]:
        key = lw.SessionKey("leanworker.lean:repl", imports=("Mathlib",), options=(("repl", command),))
        with pytest.raises(lw.CommandError) as info:
            lw.Worker(key, FAST)
        assert info.value.code == "repl_not_found" and named in info.value.message, info.value.message


# -- processes -------------------------------------------------------------------------------------------------------


def test_a_repl_whose_grandchild_holds_its_stdout_is_seen_dead_when_it_exits(worker: lw.Worker,
                                                                             state: Path) -> None:
    # "escape": the process left the REPL's group and session before the REPL died, so only the worker's adopting
    # the orphan (a child subreaper) finds it.
    cases = [("exit", 3, "exited with status 3"), ("exit0", 0, "exited with status 0"),
             ("segv", -11, "killed by signal SIGSEGV (status -11)"), ("escape", 3, "exited with status 3")]
    codes = [code for n, (how, _, _) in enumerate(cases) for code in (f"fake:grandchild={how}", f"TAG:g{n}")]
    rows, _ = check(worker, codes, timeout=30)
    for n, (how, status, said) in enumerate(cases):
        row = rows[2 * n]
        assert row["status"] == "crashed" and row["reason"] == "repl_exited" and row["exit"] == status, how
        assert said in row["error"] and row["elapsed_s"] < 15, "seen at the exit, not at the 30 s deadline"
        assert own(rows[2 * n + 1], f"g{n}")
    grandchildren = [pid for pid, what in started_pids(state).items() if what == "grandchild"]
    assert len(grandchildren) == 4 and wait_for(lambda: all(pid_gone(pid) for pid in grandchildren), timeout=10), \
        "killed with the REPL they outlived, while the worker lives on"


def test_the_repls_own_exit_status_is_reported(worker: lw.Worker) -> None:
    rows, _ = check(worker, ["fake:exit=0", "TAG:b", "fake:segv", "TAG:d"])
    assert rows[0]["exit"] == 0 and "the REPL exited with status 0 before it gave its answer" in rows[0]["error"]
    assert rows[2]["exit"] == -11 and "was killed by signal SIGSEGV (status -11)" in rows[2]["error"]
    assert own(rows[1], "b") and own(rows[3], "d")



def test_a_crash_report_waits_for_the_last_words_on_stderr(worker: lw.Worker) -> None:
    # What the REPL's tree writes to stderr as it dies can arrive after its exit is seen: the report waits (bounded)
    # for stderr's end, so a loaded machine never loses the line that says why.
    rows, _ = check(worker, ["TAG:a", "fake:stderr-after-exit", "TAG:b"], timeout=30)
    assert own(rows[0], "a") and own(rows[2], "b")
    crash = rows[1]
    assert crash["status"] == "crashed" and crash["reason"] == "repl_exited" and crash["exit"] == 1
    assert "last words, written after the REPL exited" in crash["error"], crash["error"]


@pytest.mark.parametrize("ending", ["shutdown", "sigkill"])
def test_a_process_holding_the_repls_stdout_does_not_outlive_its_worker(state: Path, ending: str) -> None:
    # Process-group containment only (no cgroup): the machine the issue was found on.
    config = lw.WorkerConfig(startup_timeout=10.0, request_timeout=20.0, shutdown_timeout=2.0, kill_wait=3.0,
                             containment="group")
    worker = lw.Worker(fake_key(state), config)
    try:
        rows, _ = check(worker, ["TAG:a fake:forge=600000"])  # a process that sleeps with the REPL's stdout open
        assert own(rows[0], "a")
        assert worker.call("run", {"cmd": "TAG:b fake:forge=600000", "env": 0})["env"] == 2  # and under `run`
        pid = worker.snapshot().pid
        assert pid is not None and len(repl_children(pid)) == 1
        started = started_pids(state)
        assert sorted(started.values()) == ["grandchild", "grandchild", "repl"]
        assert not any(map(pid_gone, started))
        if ending == "sigkill":
            os.kill(pid, signal.SIGKILL)
    finally:
        worker.shutdown()
    assert wait_for(lambda: not alive(started), timeout=10), alive(started)


def test_run_matches_answers_too_and_a_doubt_is_a_typed_error(worker: lw.Worker) -> None:
    assert worker.call("run", {"cmd": "theorem x : True := trivial", "env": 0}) == {"env": 1}
    with pytest.raises(lw.CommandError) as info:
        worker.call("run", {"cmd": "fake:twice", "env": 0})
    assert info.value.code == "repl_out_of_step" and "two answers" in info.value.message
    assert worker.call("run", {"cmd": "theorem y : True := trivial", "env": 0}) == {"env": 1}, "a fresh REPL"
    with pytest.raises(lw.CommandError) as info:
        worker.call("run", {"cmd": "fake:exit=0", "env": 0})
    assert info.value.code == "repl_crashed" and "exited with status 0" in info.value.message


def test_the_fake_says_it_is_a_fake_and_a_simulator() -> None:
    done = subprocess.run([sys.executable, "-m", "leanworker.fixtures.repl_fake", "--help"], capture_output=True,
                          text=True, timeout=30)
    assert "FAKE" in done.stdout and "simulator" in done.stdout


def test_a_cancel_while_an_item_waits_on_the_repl_stops_that_repl_and_the_worker_stays_warm(state: Path) -> None:
    config = lw.WorkerConfig(startup_timeout=10.0, request_timeout=20.0, cancel_grace=10.0, kill_wait=3.0)
    with lw.Worker(fake_key(state), config) as worker:
        stream = worker.stream("check", {"items": [{"id": 0, "code": "TAG:a"}, {"id": 1, "code": "fake:hang"},
                                                   {"id": 2, "code": "TAG:c"}], "timeout": None})
        rows = iter(stream)
        assert own(next(rows).payload, "a")
        assert wait_for(lambda: events(state) == ["hang"], timeout=10), "the REPL is working on the item"
        hung = [pid for pid, what in started_pids(state).items() if what == "repl"]
        stream.cancel()
        assert list(rows) == [] and stream.outcome == "cancelled"
        assert wait_for(lambda: all(pid_gone(pid) for pid in hung), timeout=10), "the REPL on the item was stopped"
        rows_after, _ = check(worker, ["TAG:d"])
        assert own(rows_after[0], "d") and worker.snapshot().restarts == {}, "the worker itself stayed warm"


def test_leanworker_check_gives_a_slow_import_its_time_and_says_what_to_raise_when_it_is_past(tmp_path: Path) -> None:
    state = tmp_path / "fake"
    state.mkdir()
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"id": "a", "code": "import Mathlib\ntheorem a : True := trivial TAG:a"}) + "\n")
    repl = fake_command(state, "--import-ms=1000")  # twice the short --import-timeout below
    done = cli("check", str(items), "--repl", repl, "--import-timeout", "60", "--workers", "1", cwd=tmp_path)
    assert done.code == 0 and json.loads(done.out_lines[0])["status"] == "ok", done.err
    reason = one_line_error(cli("check", str(items), "--repl", repl, "--import-timeout", "0.5", cwd=tmp_path),
                            "check")
    assert "no answer within 0.5 s" in reason and "--import-timeout" in reason, reason


def test_a_repl_that_exited_before_its_first_request_is_reported_exited_with_its_status(tmp_path: Path) -> None:
    # The reader may see the end of the REPL's output before anything is asked (under load, before the header's
    # import is sent): that is an exit to report with its status and stderr, not output nobody asked for.
    from leanworker.lean.driver import ReplProcess
    from leanworker.lean.faults import ReplExited

    script = tmp_path / "fails.sh"
    script.write_text("#!/bin/sh\necho 'the REPL cannot run here' >&2\nexit 3\n")
    script.chmod(0o755)
    repl = ReplProcess([str(script)])
    try:
        assert wait_for(repl.reader.output_ended, timeout=30)
        with pytest.raises(ReplExited) as exited:
            repl.exchange({"cmd": "import Mathlib"}, 30)
    finally:
        repl.kill()
    assert "exited with status 3" in str(exited.value) and "the REPL cannot run here" in str(exited.value)
