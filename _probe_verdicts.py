"""What each stage of ``leanworker probe`` judges, from what the stage measured (pure; probe.py measures, the tests in
tests/test_probe_verdicts.py check each rule without a worker).

A stage passes unless it raised, took longer than its bound, or one of its checks failed; the first failed check is
the error the report shows. A stage that cannot run here is *skipped*, saying why, and is not a failure. The run
passes only if every stage does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from leanworker.errors import WorkerCrashed

RATE_MIN_S = 0.1  # a rows/s figure needs at least this long a stream (the pool stage is mostly start-up: none)
STAGE_BOUND_S = 20.0  # every stage takes about a second or less on a 2-core machine; far longer means a stall
NAIVE_SAMPLE = 16  # modules the naive path (a fresh worker and session each) runs
LEAN_REPL_STATUSES = ["ok", "sorry", "error", "timeout", "ok"]  # the simulator's five items, in order
REAL_LEAN_STATUSES = ["ok", "error"]  # a good file and a bad one


@dataclass
class StageResult:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    passed: bool = True
    error: str | None = None
    skipped: str | None = None  # why the stage could not run here (not a failure)

    def check(self, condition: bool, what: str) -> None:
        """A failed check fails the stage; the first one says why."""
        if not condition and self.passed:
            self.passed = False
            self.error = what

    def as_json(self) -> dict[str, Any]:
        status = "failed" if not self.passed else "skipped" if self.skipped else "passed"
        return {"status": status, **self.figures, **({"error": self.error} if self.error else {}),
                **({"reason": self.skipped} if self.skipped else {})}


class Span(Protocol):
    """A batch's time on a worker (``lw.BatchResult``)."""

    @property
    def started_at(self) -> float: ...

    @property
    def finished_at(self) -> float: ...


def expected_rows(modules: int) -> int:
    """The fixture's index pattern: N declarations, N features, N-1 probes."""
    return 3 * modules - 1 if modules else 0


def run_passed(results: Sequence[StageResult]) -> bool:
    return all(result.passed for result in results)


def judge_time(result: StageResult, wall: float, bound_s: float) -> None:
    result.check(wall <= bound_s, f"took {wall:.1f} s, over its bound of {bound_s:g} s (something stalled)")


def naive_bound(modules: int, import_ms: int) -> float:
    """The naive stage's bound: the usual one plus three simulated imports a module of its sample."""
    return STAGE_BOUND_S + 3 * min(modules, NAIVE_SAMPLE) * import_ms / 1000


def rows_per_s(rows: int, elapsed: float) -> int | None:
    """A rate, only over a stream long enough for it to be a figure rather than noise."""
    return round(rows / elapsed) if elapsed >= RATE_MIN_S else None


def overlapped(spans: Sequence[Span]) -> bool:
    """Whether some two batches ran at the same time (one batch alone counts as concurrent)."""
    return len(spans) < 2 or any(a.started_at < b.finished_at and b.started_at < a.finished_at
                                 for i, a in enumerate(spans) for b in spans[i + 1:])


def judge_single_worker(result: StageResult, *, committed: bool, rows: int, expected: int) -> None:
    result.check(committed, "the index run did not commit")
    result.check(rows == expected, f"{rows} rows, expected {expected}")


def judge_pool(result: StageResult, *, uncommitted: Sequence[str], rows: int, expected: int, sessions_opened: int,
               keys: int) -> None:
    """Every batch committed, every row came, and no key opened more than one session more than it needs."""
    result.check(not uncommitted, "a batch did not commit: " + "; ".join(uncommitted))
    result.check(rows == expected, f"{rows} rows, expected {expected}")
    result.check(sessions_opened <= keys + 1, f"{sessions_opened} sessions opened for {keys} keys")


def judge_naive_vs_planned(result: StageResult, *, sample: int, naive_rows: int, planned_rows: int, naive_s: float,
                           planned_s: float, naive_sessions: int, planned_sessions: int) -> None:
    """The same rows both ways; the planned path faster and opening fewer sessions."""
    result.check(naive_rows == planned_rows == 2 * sample, "naive and planned rows differ")
    result.check(planned_s < naive_s, "the planned path was not faster")
    result.check(planned_sessions < naive_sessions, "planning did not save session opens")


def judge_cancellation(result: StageResult, *, outcome: str | None, committed: bool, stayed_warm: bool) -> None:
    result.check(outcome == "cancelled", f"outcome {outcome}")
    result.check(not committed, "cancelled rows were committed")
    result.check(stayed_warm, "the worker did not stay warm")


def judge_fatal_exit(result: StageResult, *, raised: BaseException | None, committed: bool, next_rows: int,
                     expected_next: int, replaced: bool, stale: bool) -> None:
    """A killed worker's request raises ``WorkerCrashed`` uncommitted, its lease goes stale, and the key's next lease
    works on a new process."""
    result.check(isinstance(raised, WorkerCrashed), f"no WorkerCrashed (got {raised!r})")
    result.check(not committed, "rows of a crashed request were committed")
    result.check(next_rows == expected_next and replaced, "the next lease on the key did not work")
    result.check(stale, "the lease of the killed worker did not become stale")


def judge_cycle(result: StageResult, *, identical: bool, replaced: bool) -> None:
    result.check(identical, "the replay after the cycle returned different rows")
    result.check(replaced, "the worker was not replaced")


def judge_slow_sink(result: StageResult, *, seen: int, count: int, committed: bool, waits: int) -> None:
    result.check(seen == count and committed, f"{seen} of {count} rows")
    result.check(waits > 0, "no backpressure wait was counted")


def judge_statuses(result: StageResult, statuses: list[str], expected: list[str]) -> None:
    result.check(statuses == expected, f"statuses {statuses}, expected {expected}")
