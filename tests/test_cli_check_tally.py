"""How ``leanworker check`` counts results and what it concludes, as pure rules (no worker runs here):
tests/test_cli_check.py, test_cli_interrupts.py and test_cli_chaos.py run the command end to end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import leanworker as lw
from leanworker.cli._check_tally import (
    CHAOS_REQUEST_TIMEOUT,
    CheckTally,
    error_line,
    interrupted_line,
    open_timeout,
    request_timeout,
    resume_command,
)
from leanworker.cli._results import Item, item_key


@dataclass
class Payload:
    payload: dict[str, Any]


@dataclass
class Batch:
    """The part of ``lw.BatchResult`` the tally reads."""

    modules: tuple[str, ...]
    committed: bool = True
    rows: list[Payload] = field(default_factory=list)
    error: BaseException | None = None
    injected: bool = False


def items(count: int) -> list[Item]:
    return [Item(f"t{i}", f"theorem t{i} : True := trivial", None, item_key(f"t{i}", f"{i:064x}"), i + 1)
            for i in range(count)]


def as_given(payload: dict[str, Any], index: int) -> dict[str, Any]:
    return dict(payload)


def verdict(index: int, status: str) -> Batch:
    return Batch((str(index),), rows=[Payload({"id": index, "status": status})])


def test_a_checked_item_is_written_with_its_id_and_code_hash_and_counted_by_status() -> None:
    todo = items(2)
    tally = CheckTally(2, todo, simulated=False, by_status={})
    written = tally.take(verdict(1, "sorry"), as_given)
    assert written == [{"id": "t1", "status": "sorry", "code_sha256": f"{1:064x}"}]
    assert tally.by_status == {"sorry": 1} and tally.done_now == 1 and tally.checked == 1


def test_simulated_verdicts_are_marked_simulated_on_every_result() -> None:
    tally = CheckTally(1, items(1), simulated=True, by_status={})
    assert tally.take(verdict(0, "ok"), as_given)[0]["simulated"] is True


def test_a_batch_that_did_not_commit_leaves_its_items_unchecked_with_the_first_line_of_its_error() -> None:
    tally = CheckTally(3, items(3), simulated=False, by_status={})
    lost = Batch(("0", "2"), committed=False, error=lw.WorkerCrashed("worker exited (signal 9)\nstderr tail ..."),
                 injected=True)
    assert tally.take(lost, as_given) == [], "nothing of an uncommitted batch is written"
    assert tally.unchecked == [{"id": "t0", "error": "WorkerCrashed: worker exited (signal 9)", "injected": True},
                               {"id": "t2", "error": "WorkerCrashed: worker exited (signal 9)", "injected": True}]
    assert tally.done_now == 2 and tally.checked == 0 and tally.injected == tally.unchecked
    assert error_line(lw.RequestTimeout("")) == "RequestTimeout: "


def test_the_run_is_ok_only_when_every_item_has_a_verdict_and_none_is_unchecked() -> None:
    tally = CheckTally(3, items(2), simulated=False, by_status={"ok": 1})  # one item done before (--resume)
    assert tally.skipped == 1
    tally.take(verdict(0, "error"), as_given)
    assert tally.status() == "failed", "an item of the file has no result yet"
    tally.take(verdict(1, "ok"), as_given)
    assert tally.status() == "ok", "error is a verdict: Lean said the code is wrong"
    timed_out = CheckTally(1, items(1), simulated=False, by_status={})
    timed_out.take(verdict(0, "timeout"), as_given)
    assert timed_out.status() == "failed", "a timeout is not a verdict"
    lost = CheckTally(1, items(1), simulated=False, by_status={})
    lost.take(Batch(("0",), committed=False, error=lw.WorkerCrashed("gone")), as_given)
    assert lost.status() == "failed"


def test_the_resume_command_is_the_same_command_with_resume_once() -> None:
    assert resume_command(["check", "items.jsonl", "--output", "out file.jsonl"]) == (
        "leanworker check items.jsonl --output 'out file.jsonl' --resume")
    assert resume_command(["check", "i.jsonl", "--resume", "--output", "o"]).count("--resume") == 1


def test_after_ctrl_c_one_line_says_what_has_results_and_how_to_resume() -> None:
    argv = ["check", "items.jsonl", "--output", "out.jsonl"]
    assert interrupted_line("out.jsonl", argv, None, 0) == (
        "interrupted before any item was checked: out.jsonl is as it was; resume with: "
        "leanworker check items.jsonl --output out.jsonl --resume")
    assert interrupted_line(None, ["check", "items.jsonl"], None, 0) == "interrupted before any item was checked"
    assert interrupted_line("out.jsonl", argv, 3, 10) == (
        "interrupted: 3 of 10 items have results in out.jsonl; resume with: "
        "leanworker check items.jsonl --output out.jsonl --resume")
    assert interrupted_line(None, ["check", "items.jsonl"], 1, 1) == (
        "interrupted: 1 of 1 item checked (printed above); to be able to resume, use --output FILE")


def test_a_request_has_no_deadline_of_its_own_but_an_injected_hang_ends_at_the_chaos_bound() -> None:
    assert request_timeout(False, 5.0) is None and request_timeout(False, None) is None
    assert request_timeout(True, None) == CHAOS_REQUEST_TIMEOUT
    assert request_timeout(True, 40.0) == 80.0, "twice the item's own deadline when that is later"


def test_a_session_open_is_bounded_past_two_header_imports_and_file_mode_opens_no_repl() -> None:
    assert open_timeout("repl", 300.0) == 660.0
    assert open_timeout("file", 300.0) is None
