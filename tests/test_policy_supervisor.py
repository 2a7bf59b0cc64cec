"""A slot supervisor's decisions as pure policies, without processes: why a generation ends (endings.py), who waits
for a ready generation (waiting.py), the slot's door and failure (slot_life.py), a generation's start-up steps
(generation.py), the shutdown (closing.py), the gate's cancel and pending cycle (gate_state.py), and the memory
watch's judgement (memory_ceilings.py). Each test is named after the rule of docs/semantics.md it checks; the same
rules are checked end to end over real worker processes in test_worker_outcomes.py, test_worker_faults.py,
test_cycling_memory.py and test_async_pool.py."""

from __future__ import annotations

import re
from concurrent.futures import Future
from pathlib import Path

import pytest

import leanworker as lw
from leanworker.actors.core.results import ShutdownReport
from leanworker.actors.slot import endings
from leanworker.actors.slot.channel import CANCELLED, CRASHED, MEMORY, TIMEOUT, RequestChannel, Terminal
from leanworker.actors.slot.closing import Closing
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.endings import Ending
from leanworker.actors.slot.gate_state import GateState
from leanworker.actors.slot.generation import Generation
from leanworker.actors.slot.memory_ceilings import HARD, SOFT, MemoryCeilings
from leanworker.actors.slot.messages import Submit
from leanworker.actors.slot.slot_life import CLOSED, EXHAUSTED, FAILED, SlotLife
from leanworker.actors.slot.waiting import Waiting


def channel(request_id: int = 7, command: str = "index", timeout: float | None = 30.0) -> RequestChannel:
    made = RequestChannel(request_id, 1, command, False, 16, Counters())
    made.timeout = timeout
    return made


def generation() -> Generation:
    return Generation(1, None, Connection(1, Counters()), 0.0)  # type: ignore[arg-type]  # no child actor here


def submit(expect_generation: int | None = None) -> Submit:
    return Submit("echo", {}, False, None, expect_generation)


# -- Requests and outcomes -------------------------------------------------------------------------------------------


def test_requests_and_outcomes_a_missed_deadline_is_request_timeout_and_a_restart_that_kills() -> None:
    terminal, ending = endings.after_deadline("request", 7, channel(), "slot3/2", cancel_grace=1.0) or (None, None)
    assert terminal is not None and terminal.outcome == TIMEOUT and isinstance(terminal.error, lw.RequestTimeout)
    assert str(terminal.error) == "'index' (request slot3/2/7) did not finish within 30 s; the worker was killed"
    assert ending == Ending("timeout", planned=False, kill=True)


def test_requests_and_outcomes_a_deadline_of_a_request_no_longer_in_flight_names_no_command() -> None:
    expiry = endings.after_deadline("request", 6, channel(7), "slot3/2", cancel_grace=1.0)
    assert expiry is not None and "'?' (request slot3/2/6)" in str(expiry[0].error)
    assert endings.after_deadline("startup", 0, None, "slot3/2", 1.0) is None, "start-up deadlines are not requests'"


def test_requests_and_outcomes_a_crash_says_its_signal_or_exit_code_and_keeps_the_stderr_tail() -> None:
    killed = endings.crash_error(None, 9, "tail")
    assert str(killed) == "worker was killed by signal 9" and killed.signal == 9 and killed.stderr_tail == "tail"
    exited = endings.crash_error(3, None, "")
    assert str(exited) == "worker exited with code 3" and exited.exit_code == 3
    assert str(endings.crash_error(None, None, "")) == "worker could not be started"
    assert isinstance(exited, lw.WorkerLost)


def test_requests_and_outcomes_a_protocol_outcome_or_violation_ends_the_generation_as_a_restart() -> None:
    assert endings.after_done("protocol", gate_open=False, cycle_pending=None) == Ending.restart("protocol")
    assert endings.after_done("protocol", gate_open=True, cycle_pending="memory_soft") == Ending.restart("protocol")
    assert endings.after_violation() == Ending("protocol", planned=False, kill=True)
    assert endings.after_done("ok", gate_open=True, cycle_pending=None) is None, "a plain done decides nothing"


# -- Cancellation ladder ---------------------------------------------------------------------------------------------


def test_cancellation_ladder_a_cancel_ignored_past_the_grace_is_cancelled_and_a_restart_for_reason_cancel() -> None:
    expiry = endings.after_deadline("cancel", 7, channel(), "w/1", cancel_grace=0.5)
    assert expiry is not None
    terminal, ending = expiry
    assert terminal.outcome == CANCELLED and isinstance(terminal.error, lw.Cancelled)
    assert "ignored cancel for 0.5 s; the worker was killed" in str(terminal.error)
    assert ending == Ending("cancel", planned=False, kill=True)


def test_cancellation_ladder_a_cancel_is_sent_once_and_only_for_the_request_in_flight() -> None:
    state = GateState()
    state.latest_generation = 1
    state.open(1, None)
    assert not state.cancel(1), "nothing in flight: nothing to cancel"
    state.admit(1)
    assert not state.cancel(2), "another request's cancel is not sent"
    assert state.cancel(1) and not state.cancel(1), "asked once, sent once"
    state.done(1, "cancelled")
    state.admit(2)
    assert state.cancel(2), "the next request may be cancelled in its turn"


# -- Restarts, intensity and cycling ---------------------------------------------------------------------------------


def test_cycling_a_gate_that_closed_after_its_last_request_cycles_for_max_requests_or_the_pending_reason() -> None:
    assert endings.after_done("ok", gate_open=False, cycle_pending=None) == Ending("max_requests", True, False)
    assert endings.after_done("error", gate_open=False, cycle_pending="memory_soft") == Ending.cycle("memory_soft")


def test_cycling_a_cycle_asked_for_during_a_request_is_pending_until_the_next_generation_opens() -> None:
    state = GateState()
    state.latest_generation = 1
    state.open(1, None)
    state.admit(1)
    assert not state.cycle_when_idle("memory_soft") and state.cycle_reason == "memory_soft"
    state.fail(1)  # the request timed out instead: the generation ends for that
    state.close()
    state.latest_generation = 2
    state.open(2, None)
    assert state.cycle_reason is None, "a cycle pending on generation 1 is not generation 2's"
    assert state.cycle_when_idle("cycle"), "idle: cycle now, nothing left pending"
    assert state.cycle_reason is None


def test_restarts_a_process_that_exits_with_no_end_decided_is_a_crash_and_unplanned_ends_kill() -> None:
    assert endings.exit_reason(None) == "crash" and endings.exit_reason("idle") == "idle"
    for reason in ("timeout", "cancel", "protocol", "startup", "memory_hard"):
        assert Ending.restart(reason).kill and not Ending.restart(reason).planned
    for reason in ("max_requests", "idle", "memory_soft", "cycle"):
        assert Ending.cycle(reason).planned and not Ending.cycle(reason).kill, "a cycle uses the shutdown ladder"


def test_restarts_an_exhausted_slot_refuses_with_restart_limit_exceeded_until_its_retry_after() -> None:
    life = SlotLife(lw.RestartPolicy(max_restarts=0, restart_window=10.0), name="slot4")
    life.ready()
    assert life.exited("crash", planned=False, started=True, closing=False, now=100.0) == EXHAUSTED
    failure = life.failure
    assert isinstance(failure, lw.RestartLimitExceeded) and failure.retry_after == 10.0
    assert str(failure) == "worker slot4 restarted 1 times in 10 s (limit 0); it may be tried again in 10.0 s"
    with pytest.raises(lw.RestartLimitExceeded):
        life.door(closing=False, expect_generation=None, generation=2, now=105.0)
    assert life.refusal(closing=False) is failure, "a caller waiting for readiness gets it too"
    assert life.door(closing=False, expect_generation=None, generation=2, now=110.0), "its time has come: start"


# -- Start-up --------------------------------------------------------------------------------------------------------


def test_start_up_a_failed_step_keeps_the_first_error_and_ends_the_generation_as_a_startup_restart() -> None:
    gen = generation()
    first, second = lw.StartupTimeout("no hello"), lw.HandshakeError("bad")
    assert gen.startup_failed(first) == Ending("startup", planned=False, kill=True)
    gen.startup_failed(second)
    assert gen.startup_error is first, "the first start-up error is the one reported"


def test_start_up_configure_is_bounded_by_startup_timeout_and_the_session_open_by_open_timeout() -> None:
    config = lw.WorkerConfig(startup_timeout=3.0, request_timeout=20.0, open_timeout=300.0)
    gen = generation()
    gen.hello()
    assert gen.step_bound(config) == 3.0
    gen.step_done()
    assert gen.step_bound(config) == 300.0
    assert gen.step_bound(lw.WorkerConfig(request_timeout=20.0)) == 20.0, "no open_timeout: request_timeout"


def test_start_up_the_first_generations_error_reaches_those_waiting_and_fails_the_slot() -> None:
    waiting, life = Waiting(), SlotLife(lw.RestartPolicy())
    ready = waiting.await_ready(None, life.refusal(closing=False))
    held = waiting.hold(submit(), None, inflight=False, name="w")
    error = lw.StartupTimeout("worker did not say hello within 10 s")
    assert life.exited("startup", planned=False, started=False, closing=False, now=0.0, error=error) == FAILED
    waiting.fail(error)
    assert ready.exception() is error and held.exception() is error
    assert life.failure is error and life.refusal(closing=False) is error, "later callers get it at once"
    with pytest.raises(lw.StartupTimeout):
        life.door(closing=False, expect_generation=None, generation=1, now=1.0)


# -- Plain data: one request at a time, and waiting for a restart ----------------------------------------------------


def test_plain_data_a_request_sent_while_the_worker_restarts_waits_for_the_new_generation() -> None:
    waiting, admitted = Waiting(), []
    ready = waiting.await_ready(None, None)
    reply = waiting.hold(submit(), None, inflight=False, name="w")
    assert not reply.done() and not ready.done()

    def try_admit(request: Submit) -> RequestChannel:
        admitted.append(request)
        return channel(9)

    assert waiting.ready(2, try_admit)
    assert ready.result() == 2 and reply.result().request_id == 9 and len(admitted) == 1
    assert not waiting.ready(3, try_admit), "nothing waits any more"


def test_plain_data_a_second_request_while_one_runs_or_waits_is_worker_busy() -> None:
    waiting = Waiting()
    with pytest.raises(lw.WorkerBusy):
        waiting.hold(submit(), None, inflight=True, name="w")
    waiting.hold(submit(), None, inflight=False, name="w")
    with pytest.raises(lw.WorkerBusy):
        waiting.hold(submit(), None, inflight=False, name="w")


def test_plain_data_a_waiting_request_the_gate_refuses_on_the_new_generation_is_a_stale_lease() -> None:
    waiting = Waiting()
    reply = waiting.hold(submit(expect_generation=1), None, inflight=False, name="w")
    waiting.ready(2, lambda request: None)
    with pytest.raises(lw.StaleLease):
        reply.result()


# -- asyncio: a request withdrawn while it waits --------------------------------------------------------------------


def test_asyncio_a_request_withdrawn_while_it_waits_never_runs_and_one_admitted_meanwhile_is_cancelled() -> None:
    waiting, admitted = Waiting(), []
    reply: Future[RequestChannel] = Future()
    waiting.hold(submit(), reply, inflight=False, name="w")
    reply.cancel()
    waiting.ready(2, lambda request: admitted.append(request))  # type: ignore[func-returns-value]
    assert admitted == [], "withdrawn: nothing is sent"
    waiting.hold(submit(), None, inflight=False, name="w")  # its place is free again

    gave_up: Future[RequestChannel] = Future()
    gave_up.cancel()
    admitted_meanwhile = channel(11)
    assert Waiting.answer_later(gave_up, lambda: admitted_meanwhile) is admitted_meanwhile, "to be cancelled at once"
    answered: Future[RequestChannel] = Future()
    assert Waiting.answer_later(answered, lambda: admitted_meanwhile) is None
    assert answered.result() is admitted_meanwhile


# -- The pool: Leases (a lease of an ended generation) -------------------------------------------------------------


def test_leases_a_request_on_a_generation_that_has_ended_is_a_stale_lease_and_a_closed_slot_refuses() -> None:
    life = SlotLife(lw.RestartPolicy(), name="slot1", closed_error=lw.PoolClosed)
    life.ready()
    with pytest.raises(lw.StaleLease, match="generation 1 of slot1 has ended"):
        life.door(closing=False, expect_generation=1, generation=2, now=0.0)
    assert not life.door(closing=False, expect_generation=2, generation=2, now=0.0)
    with pytest.raises(lw.PoolClosed):
        life.door(closing=True, expect_generation=2, generation=2, now=0.0)
    assert isinstance(life.refusal(closing=True), lw.PoolClosed)


# -- Shutdown ladder -------------------------------------------------------------------------------------------------


def test_shutdown_ladder_with_no_live_process_the_report_is_already_exited_at_once() -> None:
    closing, reply = Closing(), Future[ShutdownReport]()
    assert closing.begin(reply) and closing.active
    closing.no_process(3)
    assert reply.result() == ShutdownReport("already_exited", 3, None, None, 0.0)


def test_shutdown_ladder_a_second_shutdown_gets_the_first_ones_report() -> None:
    closing, first, second = Closing(), Future[ShutdownReport](), Future[ShutdownReport]()
    closing.begin(first)
    assert not closing.begin(second), "only the first begins it"
    report = ShutdownReport("graceful", 2, 0, None, 0.1)
    first.set_result(report)
    assert second.result() == report


def test_shutdown_ladder_a_stop_that_could_not_be_delivered_is_answered_by_the_exit() -> None:
    closing, reply = Closing(), Future[ShutdownReport]()
    closing.begin(reply)
    closing.exited(2, 0, None)
    assert not reply.done(), "the child's ladder answers, not the exit"
    closing.stop_undelivered()
    closing.exited(2, None, 15)
    assert reply.result() == ShutdownReport("already_exited", 2, None, 15, 0.0)
    life = SlotLife(lw.RestartPolicy())
    assert life.exited("shutdown", planned=False, started=True, closing=True, now=0.0) == CLOSED
    assert not life.restarts, "an exit while closing is not a restart"


# -- Memory ----------------------------------------------------------------------------------------------------------


def test_memory_over_the_hard_ceiling_the_request_ends_memory_limit_exceeded_and_the_worker_is_killed() -> None:
    ceilings = MemoryCeilings(lw.RestartPolicy(rss_soft_limit_mib=100, rss_hard_limit_mib=200))
    judged = ceilings.judge(250.4, cycle_pending=False)
    assert judged is not None
    verdict, terminal, ending = judged
    assert verdict == HARD and terminal is not None and terminal.outcome == MEMORY
    assert isinstance(terminal.error, lw.MemoryLimitExceeded) and terminal.error.limit_mib == 200
    assert str(terminal.error) == "worker used 250 MiB, over the hard limit of 200 MiB"
    assert ending == Ending("memory_hard", planned=False, kill=True)
    assert ceilings.judge(150.0, cycle_pending=False) == (SOFT, None, Ending.cycle("memory_soft")), "cycle when idle"


def test_memory_a_sample_of_a_generation_that_is_not_serving_decides_nothing() -> None:
    ceilings = MemoryCeilings(lw.RestartPolicy(rss_soft_limit_mib=100, rss_hard_limit_mib=200))
    assert ceilings.judge(10_000.0, cycle_pending=False, ready=False) is None, "starting, or already being replaced"
    assert ceilings.judge(None, cycle_pending=False) is None, "unavailable"
    gen = generation()
    assert not gen.serving
    gen.hello()
    gen.step_done()
    gen.step_done()
    assert gen.serving
    gen.end("timeout", planned=False)
    assert not gen.serving and gen.replaceable is False


def test_restarts_a_generation_whose_process_exited_closes_its_requests_and_its_handshake_step() -> None:
    gen = generation()
    gen.hello()
    step = gen.begin_step(1, "configure", Counters())
    request = channel(2)
    gen.connection.register(request)
    crash = Terminal(CRASHED, error=endings.crash_error(None, 9, ""))
    assert gen.close(crash) == [request], "the requests are the gate's to fail; the handshake step ends here"
    assert step.terminal is crash and gen.exited and gen.connection.closed


def test_restarts_the_reasons_a_snapshot_counts_are_the_ones_the_page_names() -> None:
    page = (Path(lw.__file__).resolve().parent / "docs" / "semantics.md").read_text(encoding="utf-8")
    sentence = page.split("counts replacements by reason:", 1)[1].split(".", 1)[0]
    named = set(re.findall(r"`(\w+)`", sentence))
    reasons = {endings.CRASH, endings.TIMEOUT_REASON, endings.CANCEL_REASON, endings.MEMORY_HARD,
               endings.PROTOCOL_REASON, endings.STARTUP, endings.MAX_REQUESTS, endings.IDLE, endings.MEMORY_SOFT,
               endings.CYCLE}
    assert named == reasons, f"docs/semantics.md names {sorted(named)}, endings.py {sorted(reasons)}"


def test_start_up_a_steps_answer_fails_or_moves_the_start_up_on_and_once_it_is_ending_changes_nothing() -> None:
    gen = generation()
    gen.hello()
    gen.begin_step(1, "configure", Counters())
    assert gen.step_answered(Terminal("ok")) == "opening" and gen.handshake is None
    gen.begin_step(2, "open", Counters())
    failed = Terminal("error", error=lw.CommandError("session_open", "no such module"))
    assert gen.step_answered(failed) == "failed" and gen.handshake is None and gen.phase == "opening"
    late = generation()
    late.hello()
    late.begin_step(1, "configure", Counters())
    late.end("shutdown", planned=False)
    assert late.step_answered(Terminal("ok")) == "ignored", "shut down while the step ran"
    assert late.handshake is None and late.phase == "ending", "nothing moves on"
    ready = generation()
    ready.hello()
    ready.begin_step(1, "configure", Counters())
    ready.step_answered(Terminal("ok"))
    ready.begin_step(2, "open", Counters())
    assert ready.step_answered(Terminal("ok")) == "ready" and ready.serving
