"""A slot's decisions as pure policies, without processes: the request state machine of its admission gate, restart
intensity, memory ceilings, what a stream makes of its terminal record (docs/semantics.md, Requests and outcomes;
Generations and fencing; Restarts, intensity and cycling; Memory). End-to-end tests over real worker processes:
test_worker_outcomes.py, test_worker_faults.py, test_cycling_memory.py."""

from __future__ import annotations

import leanworker as lw
from leanworker.actors.slot.channel import DIAG, PROGRESS, ROWS, RequestChannel, Terminal
from leanworker.actors.slot.connection import Connection
from leanworker.actors.slot.counters import Counters
from leanworker.actors.slot.generation import Generation
from leanworker.actors.slot.gate_state import GateState
from leanworker.actors.slot.intensity import RestartIntensity
from leanworker.actors.slot.memory_ceilings import HARD, SOFT, MemoryCeilings
from leanworker.actors.slot.reading import (
    StreamEvents,
    committed,
    end_of_iteration,
    stream_summary,
    terminal_result,
)
from leanworker.actors.slot.slot_life import SlotLife


def open_gate(budget: int | None = None, notify_every_done: bool = False) -> GateState:
    state = GateState(notify_every_done)
    state.latest_generation = 1
    state.open(1, budget)
    return state


def test_one_request_at_a_time_a_second_is_not_admitted_while_one_is_in_flight() -> None:
    state = open_gate()
    assert state.admissible(None) and state.admit(1)
    assert not state.admissible(None)
    assert state.done(1, "ok") == (True, False)
    assert state.admissible(None)


def test_request_ids_rise_on_the_wire() -> None:
    state = open_gate()
    assert state.admit(5)
    state.done(5, "ok")
    assert not state.admit(4), "an id below one already written must be replaced by a new one"
    assert state.admit(6)


def test_one_terminal_outcome_a_late_done_loses_the_race_to_a_timeout() -> None:
    state = open_gate()
    state.admit(1)
    assert state.fail(1), "the timeout ends the request first"
    assert state.done(1, "ok") == (False, False), "the late done ends nothing and tells nobody"
    assert (state.requests_ok, state.requests_failed, state.served) == (0, 1, 0)


def test_one_terminal_outcome_a_timeout_after_the_done_changes_nothing() -> None:
    state = open_gate()
    state.admit(1)
    assert state.done(1, "ok")[0]
    assert not state.fail(1), "the done came first: the timeout is not the request's terminal"
    assert state.requests_ok == 1 and state.inflight is None


def test_generation_fencing_a_closed_gate_admits_nothing_until_the_next_generation_opens() -> None:
    state = open_gate()
    state.close()
    assert not state.admissible(None)
    state.latest_generation = 2
    state.open(2, None)
    assert not state.admissible(1), "a lease of generation 1 is stale on generation 2"
    assert state.admissible(2) and state.admissible(None)


def test_generation_fencing_a_lease_is_current_from_its_generations_start_until_its_process_exits() -> None:
    """A pool's lease compares its generation with the gate's live one (actors/pool/slot_leases.py)."""
    state = GateState()
    state.start(1)
    state.open(1, 1)
    assert state.live_generation == 1
    state.admit(1)
    state.done(1, "ok")
    assert not state.is_open and state.live_generation == 1, "closed after its budget, not ended: the lease waits"
    state.exited(1)
    assert state.live_generation == 0, "its process exited: a lease of it is stale"
    state.start(2)
    assert state.live_generation == 2 and state.latest_generation == 2
    state.exited(1)
    assert state.live_generation == 2, "a late word of an older generation's exit changes nothing"
    state.start(3)
    assert state.live_generation == 3, "a later start makes generation 2's lease stale, exited or not"


def test_generation_fencing_a_done_of_a_request_not_in_flight_is_dropped() -> None:
    state = open_gate()
    state.admit(3)
    assert state.done(2, "ok") == (False, False)
    assert state.inflight == 3


def test_cycling_max_requests_closes_the_gate_as_the_last_request_ends_and_tells_the_supervisor() -> None:
    state = open_gate(budget=2)
    state.admit(1)
    assert state.done(1, "ok") == (True, False)
    state.admit(2)
    assert state.done(2, "error") == (True, True)
    assert not state.is_open


def test_cycling_a_cycle_waits_for_the_request_in_flight() -> None:
    state = open_gate()
    assert state.cycle_when_idle(), "idle: cycle now"
    state.admit(1)
    assert not state.cycle_when_idle()
    assert state.done(1, "ok") == (True, True) and not state.is_open


def test_rows_lost_a_protocol_outcome_closes_the_gate() -> None:
    state = open_gate()
    state.admit(1)
    assert state.done(1, "protocol") == (True, True)
    assert not state.is_open


def test_the_handshake_done_always_reaches_the_supervisor_and_counts_no_request() -> None:
    state = GateState()
    state.begin_handshake(1)
    assert state.done(1, "ok") == (True, True)
    assert state.requests_ok == 0 and state.last_id == 1
    assert not state.admit(1)


def test_every_done_reaches_the_supervisor_when_a_policy_watches() -> None:
    state = open_gate(notify_every_done=True)
    state.admit(1)
    assert state.done(1, "ok") == (True, True)


def test_restart_intensity_past_max_restarts_in_the_window_the_slot_is_exhausted_until_the_oldest_leaves() -> None:
    intensity = RestartIntensity(max_restarts=2, window=10.0)
    assert intensity.record(0.0) is None and intensity.record(4.0) is None
    assert intensity.record(5.0) == 5.0, "three in the window: try again when the first (t=0) leaves it"
    assert intensity.record(20.0) is None, "the window slid past the old restarts"
    assert intensity.count == 1


def test_memory_a_sample_that_cannot_be_read_decides_nothing() -> None:
    ceilings = MemoryCeilings(lw.RestartPolicy(rss_soft_limit_mib=100, rss_hard_limit_mib=200))
    assert ceilings.verdict(None, cycle_pending=False) is None


def test_memory_over_the_hard_ceiling_kills_and_over_the_soft_one_cycles_once() -> None:
    ceilings = MemoryCeilings(lw.RestartPolicy(rss_soft_limit_mib=100, rss_hard_limit_mib=200))
    assert ceilings.verdict(250.0, cycle_pending=False) == HARD
    assert ceilings.verdict(250.0, cycle_pending=True) == HARD, "a pending cycle does not save the request"
    assert ceilings.verdict(150.0, cycle_pending=False) == SOFT
    assert ceilings.verdict(150.0, cycle_pending=True) is None, "a cycle already pending is not asked again"
    assert ceilings.verdict(100.0, cycle_pending=False) is None, "at the ceiling is not over it"
    assert MemoryCeilings(lw.RestartPolicy()).verdict(10_000.0, cycle_pending=False) is None


def test_start_up_a_slot_that_never_became_ready_fails_and_is_not_restarted() -> None:
    life = SlotLife(lw.RestartPolicy())
    assert life.exited("startup", planned=False, started=False, closing=False, now=0.0) == "failed"
    assert life.state == "failed" and not life.restarts


def test_restarts_a_failed_start_after_a_ready_generation_is_a_counted_restart() -> None:
    life = SlotLife(lw.RestartPolicy())
    life.ready()
    assert life.exited("startup", planned=False, started=False, closing=False, now=0.0) == "restart"
    assert life.restarts == {"startup": 1}


def test_restarts_past_the_intensity_the_slot_is_exhausted_and_starts_again_after_retry_after() -> None:
    life = SlotLife(lw.RestartPolicy(max_restarts=1, restart_window=10.0))
    life.ready()
    assert life.exited("crash", planned=False, started=True, closing=False, now=0.0) == "restart"
    assert life.exited("crash", planned=False, started=True, closing=False, now=2.0) == "exhausted"
    assert life.retry_after == 8.0 and life.state == "exhausted"
    assert not life.may_start_again(9.0)
    assert life.may_start_again(10.0) and life.intensity.count == 0


def test_cycling_planned_restarts_do_not_count_toward_the_intensity() -> None:
    life = SlotLife(lw.RestartPolicy(max_restarts=0, restart_window=10.0))
    life.ready()
    for reason in ("max_requests", "idle", "memory_soft", "cycle"):
        assert life.exited(reason, planned=True, started=True, closing=False, now=1.0) == "restart"
    assert life.intensity.count == 0 and sum(life.restarts.values()) == 4


def test_shutdown_an_exit_while_closing_closes_the_slot_whatever_else_happened() -> None:
    life = SlotLife(lw.RestartPolicy())
    assert life.exited("crash", planned=False, started=False, closing=True, now=0.0) == "closed"
    assert life.state == "closed" and not life.restarts


def generation() -> Generation:
    return Generation(1, None, Connection(1, Counters()), 0.0)  # type: ignore[arg-type]  # no child actor here


def test_start_up_a_broken_hello_is_a_handshake_error_and_a_broken_handshake_step_keeps_its_error() -> None:
    gen = generation()
    error = lw.ProtocolError("not a hello")
    failure = gen.startup_violation(error)
    assert isinstance(failure, lw.HandshakeError) and str(failure) == "not a hello"
    assert gen.hello() and gen.phase == "configuring"
    assert gen.startup_violation(error) is error
    assert gen.step_done() == "opening" and gen.step_done() == "ready" and gen.started
    assert gen.startup_violation(error) is None, "once ready, a violation is the request's, not the start-up's"


def test_start_up_a_missed_hello_or_handshake_step_is_a_startup_timeout_until_the_step_is_done() -> None:
    gen = generation()
    assert isinstance(gen.startup_deadline("startup", 0, 10.0), lw.StartupTimeout)
    gen.hello()
    assert gen.startup_deadline("startup", 0, 10.0) is None, "the hello came: that deadline no longer applies"
    gen.handshake = RequestChannel(7, 1, "configure", False, 16, Counters())
    timeout = gen.startup_deadline("session", 7, 10.0)
    assert isinstance(timeout, lw.StartupTimeout) and "configure" in str(timeout)
    assert gen.startup_deadline("session", 6, 10.0) is None, "an older step's deadline"


def test_start_up_a_missed_step_says_which_bound_it_missed_and_what_sets_it() -> None:
    gen = generation()
    gen.hello()
    gen.handshake = RequestChannel(7, 1, "configure", False, 16, Counters())
    assert "configure did not finish within 10 s" in str(gen.startup_deadline("session", 7, 10.0, 300.0))
    gen.step_done()
    gen.handshake = RequestChannel(8, 1, "open", False, 16, Counters())
    said = str(gen.startup_deadline("session", 8, 10.0, 300.0))
    assert "session open did not finish within 300 s" in said and "WorkerConfig.open_timeout" in said


def test_shutdown_a_generation_is_killed_at_once_until_its_session_is_open() -> None:
    gen = generation()
    seen = [gen.before_ready]
    gen.hello()  # configuring
    seen.append(gen.before_ready)
    gen.step_done()  # opening: the capability's open runs, the worker reads no frame
    seen.append(gen.before_ready)
    gen.step_done()  # ready: a stop is read, and the shutdown ladder begins with it
    seen.append(gen.before_ready)
    gen.end("shutdown", planned=False)
    assert seen + [gen.before_ready] == [True, True, True, False, False]


def test_generations_a_generation_ends_once_and_the_first_reason_stands() -> None:
    gen = generation()
    assert gen.end("timeout", planned=False)
    assert not gen.end("idle", planned=True)
    assert (gen.ending, gen.planned, gen.phase) == ("timeout", False, "ending")
    gen.startup_error = lw.StartupTimeout("no hello")
    assert not gen.started, "a generation whose start-up failed never started"


def test_rows_are_tentative_committed_and_summary_only_after_ok() -> None:
    ok = Terminal("ok", {"n": 3}, counts={"decls": 2, "probes": 1}, elapsed=0.5)
    assert committed(ok)
    assert stream_summary(ok) == lw.StreamSummary(3, {"decls": 2, "probes": 1}, 0.5, {"n": 3})
    for outcome in ("error", "cancelled", "timeout", "crashed", "memory", "protocol", "shutdown"):
        failed = Terminal(outcome, error=lw.LeanWorkerError(outcome), counts={"decls": 2})
        assert not committed(failed) and stream_summary(failed) is None, outcome
    assert not committed(None) and stream_summary(None) is None, "nothing is committed before the end"


def test_rows_are_tentative_a_failed_stream_raises_its_error_the_callers_own_cancel_ends_quietly() -> None:
    end_of_iteration(Terminal("ok"), cancel_requested=False)
    end_of_iteration(Terminal("cancelled", error=lw.Cancelled("asked")), cancel_requested=True)
    timeout = lw.RequestTimeout("late")
    for terminal, asked in ((Terminal("timeout", error=timeout), True),
                            (Terminal("cancelled", error=lw.Cancelled("not by this reader")), False)):
        try:
            end_of_iteration(terminal, cancel_requested=asked)
        except lw.LeanWorkerError as error:
            assert error is terminal.error
        else:
            raise AssertionError(f"{terminal.outcome} ended quietly")


def test_requests_and_outcomes_a_stream_result_is_the_terminal_metadata_or_the_typed_error() -> None:
    assert terminal_result(Terminal("ok", {"fixture": "x"})) == {"fixture": "x"}
    crashed = lw.WorkerCrashed("gone")
    try:
        terminal_result(Terminal("crashed", error=crashed))
    except lw.WorkerCrashed as error:
        assert error is crashed
    else:
        raise AssertionError("a crashed request returned a result")


def test_a_stream_keeps_diagnostics_and_progress_in_order_and_hands_each_to_its_callback() -> None:
    seen: list[object] = []
    events = StreamEvents(seen.append, seen.append)
    first, second = lw.Diagnostic("warning", "w1", "one"), lw.Diagnostic("error", "e1", "two")
    tick = lw.Progress("index", 1, 2)
    for item in ((DIAG, first), (ROWS, 0, 0, [b"row"]), (PROGRESS, tick), (DIAG, second)):
        events.take(item)
    assert events.diagnostics == [first, second] and events.progress == [tick]
    assert seen == [first, tick, second], "a row is not an event"
    quiet = StreamEvents()
    quiet.take((DIAG, first))
    assert quiet.diagnostics == [first]
