"""Exactly-once output on the journal itself, without processes (docs/semantics.md, Exactly-once output): a result
is committed when its journal line is whole; a resume cuts a torn journal tail and the rows never journaled, refuses
a journal of another plan and output changed behind the journal, and ``committed_modules`` reads without changing
anything. The end-to-end tests (a parent SIGKILLed mid-run, twice) are in test_plan_output.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leanworker.actors.core.results import Row
from leanworker.actors.run.journal import OutputJournal, ResumeMismatch, committed_modules

PLAN = "plan-fingerprint-1"


def rows(*payloads: object) -> tuple[Row, ...]:
    return tuple(Row("out", seq, payload) for seq, payload in enumerate(payloads))


def committed_once(output: Path) -> tuple[Path, Path]:
    """An output with batch A committed (two rows), then closed as a run ends."""
    journal = OutputJournal(output, PLAN, resume=False)
    journal.commit("A", ("M.a", "M.b"), rows(1, 2))
    journal.close()
    return output, output.with_name(output.name + ".journal")


def payloads(output: Path) -> list[tuple[str, object]]:
    return [(line["batch"], line["payload"]) for line in map(json.loads, output.read_text().splitlines())]


def test_exactly_once_output_a_result_is_committed_by_its_journal_line_after_its_rows(tmp_path: Path) -> None:
    output, journal_path = committed_once(tmp_path / "out.jsonl")
    header, line = map(json.loads, journal_path.read_text().splitlines())
    assert header["plan"] == PLAN
    assert (line["batch"], line["modules"], line["rows"]) == ("A", ["M.a", "M.b"], 2)
    assert line["end"] == output.stat().st_size, "the journal names the output's size after the result's rows"
    assert payloads(output) == [("A", 1), ("A", 2)]
    journal = OutputJournal(output, PLAN, resume=False)
    journal.close()
    assert output.read_bytes() == b"" and len(journal_path.read_text().splitlines()) == 1, "no resume: afresh"


def test_exactly_once_output_resume_cuts_a_torn_journal_tail_and_the_rows_never_journaled(tmp_path: Path) -> None:
    output, journal_path = committed_once(tmp_path / "out.jsonl")
    whole = journal_path.read_bytes()
    with output.open("ab") as out:  # a crash after B's rows were written, before its journal line was whole
        out.write(b'{"batch": "B", "payload": "never journaled"}\n{"batch": "B", "pay')
    with journal_path.open("ab") as journal:
        journal.write(b'{"batch": "B", "modules": ["M.c"], "rows": 2, "en')
    journal = OutputJournal(output, PLAN, resume=True)
    assert journal.committed == {"A": {"M.a", "M.b"}} and journal.rows_recovered == 2
    assert journal_path.read_bytes() == whole, "the torn line is cut off the journal"
    assert payloads(output) == [("A", 1), ("A", 2)], "the output is cut back to the last committed size"
    journal.commit("B", ("M.c",), rows(3))
    journal.close()
    assert payloads(output) == [("A", 1), ("A", 2), ("B", 3)], "every committed row exactly once"
    assert committed_modules(output, PLAN) == {"A": {"M.a", "M.b"}, "B": {"M.c"}}


def test_exactly_once_output_a_journal_of_another_plan_is_refused_and_left_alone(tmp_path: Path) -> None:
    output, journal_path = committed_once(tmp_path / "out.jsonl")
    before = (output.read_bytes(), journal_path.read_bytes())
    with pytest.raises(ResumeMismatch, match="resume the same plan") as refused:
        OutputJournal(output, "another-plan", resume=True)
    assert str(refused.value) == (f"{journal_path} belongs to plan {PLAN[:16]}, not another-plan; resume the same "
                                  "plan, or run without resume")
    with pytest.raises(ResumeMismatch, match="resume the same plan"):
        committed_modules(output, "another-plan")
    assert (output.read_bytes(), journal_path.read_bytes()) == before
    journal_path.write_bytes(b'{"plan": "torn')
    with pytest.raises(ResumeMismatch, match="no readable header"):
        OutputJournal(output, PLAN, resume=True)


def test_exactly_once_output_output_changed_behind_the_journal_is_refused(tmp_path: Path) -> None:
    output, journal_path = committed_once(tmp_path / "out.jsonl")
    output.write_bytes(output.read_bytes()[:-5])  # shorter than the journal committed
    with pytest.raises(ResumeMismatch, match="changed outside leanworker"):
        OutputJournal(output, PLAN, resume=True)
    output.unlink()
    with pytest.raises(ResumeMismatch, match="changed outside leanworker"):
        OutputJournal(output, PLAN, resume=True)


def test_exactly_once_output_committed_modules_reads_and_changes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    assert committed_modules(output, PLAN) == {}, "no journal: nothing committed"
    assert not output.exists()
    output, journal_path = committed_once(output)
    with output.open("ab") as out:
        out.write(b'{"batch": "B", "payload": "never journaled"}\n')
    with journal_path.open("ab") as journal:
        journal.write(b'{"batch": "B", "modules": ["M.c"], "ro')
    before = (output.read_bytes(), journal_path.read_bytes())
    assert committed_modules(output, PLAN) == {"A": {"M.a", "M.b"}}, "a torn line commits nothing"
    assert (output.read_bytes(), journal_path.read_bytes()) == before, "read only: no tail is cut"
