"""Exactly-once output (issue 9): committed rows reach the output file once, across parent SIGKILLs and
``resume=True`` reruns, with a torn tail repaired. The parent is a real subprocess, killed with a real signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

import leanworker as lw
from conftest import MATHLIB, close_parent

MODULES = [f"Mathlib.Out.M{i:02d}" for i in range(24)]

PARENT = textwrap.dedent("""
    import sys
    import leanworker as lw
    output, resume = sys.argv[1], sys.argv[2] == "resume"
    modules = [f"Mathlib.Out.M{i:02d}" for i in range(24)]
    plan = lw.ImportPlanner("leanworker.fixtures.mathlib_scale:capability", ("Mathlib",), max_batch_modules=3,
                            options=(("import_ms", 50),)).plan([lw.WorkItem(m) for m in modules])
    with lw.WorkerPool(lw.PoolConfig(max_workers=2)) as pool:
        with pool.run(plan, "index", {"row_delay_ms": 15}, output=output, resume=resume) as run:
            for result in run:
                print("committed", len(result.modules), flush=True)
        print("summary", run.summary.batches_skipped, run.summary.batches_committed, flush=True)
""")


def run_parent(output: Path, mode: str, kill_after: int | None) -> list[str]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(output), mode], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert parent.stdout is not None
        for line in parent.stdout:
            lines.append(line.strip())
            if kill_after is not None and len(lines) >= kill_after:
                os.kill(parent.pid, signal.SIGKILL)
                break
        parent.wait(60)
    finally:
        close_parent(parent)
    return lines


def check_exactly_once(output: Path) -> None:
    records = [json.loads(line) for line in output.read_text().splitlines()]
    keys = Counter((r["module_set"], r["stream"], r["seq"]) for r in records)
    assert all(count == 1 for count in keys.values()), [k for k, c in keys.items() if c > 1][:3]
    declared = sorted(r["payload"]["module"] for r in records if r["stream"] == "declarations")
    assert declared == MODULES, "every module's rows are in the output exactly once"


def test_output_is_exactly_once_across_parent_sigkills_and_resumes(tmp_path: Path) -> None:
    output = tmp_path / "rows.jsonl"
    first = run_parent(output, "fresh", kill_after=2)
    assert len(first) == 2 and all(line.startswith("committed") for line in first)
    second = run_parent(output, "resume", kill_after=3)
    assert len(second) == 3
    last = run_parent(output, "resume", kill_after=None)
    skipped, committed = map(int, last[-1].split()[1:])
    assert skipped >= 4 and skipped + committed == 8, last
    check_exactly_once(output)


def test_a_torn_tail_is_repaired_on_resume(tmp_path: Path) -> None:
    output = tmp_path / "rows.jsonl"
    run_parent(output, "fresh", kill_after=2)
    journal = output.with_name(output.name + ".journal")
    with open(output, "a", encoding="utf-8") as out:  # rows written but never journaled, the last line cut short
        out.write('{"batch": "x", "module_set": "y", "stream": "declarations", "seq": 0, "payload": {"module": "Z"}}\n')
        out.write('{"batch": "x", "module_set"')
    with open(journal, "a", encoding="utf-8") as log:
        log.write('{"batch": "torn", "modu')
    lines = run_parent(output, "resume", kill_after=None)
    assert lines[-1].startswith("summary")
    check_exactly_once(output)
    assert all(json.loads(line) for line in journal.read_text().splitlines())


def test_resuming_another_plan_is_refused(tmp_path: Path) -> None:
    output = tmp_path / "rows.jsonl"
    planner = lw.ImportPlanner(MATHLIB, ("Mathlib",))
    with lw.WorkerPool(lw.PoolConfig(max_workers=1)) as pool:
        pool.run(planner.plan([lw.WorkItem("Mathlib.A")]), "index", output=str(output)).wait()
        with pytest.raises(lw.ResumeMismatch, match="resume the same plan"):
            pool.run(planner.plan([lw.WorkItem("Mathlib.B")]), "index", output=str(output), resume=True)


# PARENT, holding its run open after each result until it reads a line (end of input: it reads on to the end).
HOLDING_PARENT = PARENT.replace('print("committed", len(result.modules), flush=True)',
                                'print("committed", len(result.modules), flush=True)\n'
                                '            sys.stdin.readline()')
assert HOLDING_PARENT != PARENT


def test_a_second_run_writing_the_same_output_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """The same command run twice at once (two terminals): the second is refused before it changes anything, the
    first commits every row exactly once, and once it has ended the output is free again."""
    output = tmp_path / "rows.jsonl"
    first = subprocess.Popen([sys.executable, "-c", HOLDING_PARENT, str(output), "fresh"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdin is not None and first.stdout is not None
        assert first.stdout.readline().startswith("committed")  # the first run is under way, held open
        written = (output.read_bytes(), output.with_name(output.name + ".journal").read_bytes())
        plan = lw.ImportPlanner(MATHLIB, ("Mathlib",), max_batch_modules=3).plan([lw.WorkItem(m) for m in MODULES])
        with lw.WorkerPool(lw.PoolConfig(max_workers=1)) as pool:
            for resume in (False, True):
                with pytest.raises(lw.UsageError, match=f"^{output} is being written by another run now"):
                    pool.run(plan, "index", output=str(output), resume=resume)
        # the first run goes on committing meanwhile (only its reading is held): what it had written stays, in front
        after = (output.read_bytes(), output.with_name(output.name + ".journal").read_bytes())
        assert after[0].startswith(written[0]) and after[1].startswith(written[1]), "the second run changed the output"
        first.stdin.close()  # the first run reads on to its end
        rest = first.stdout.read().splitlines()
        assert first.wait(60) == 0 and rest[-1] == "summary 0 8", rest
    finally:
        close_parent(first)
    check_exactly_once(output)
    assert run_parent(output, "resume", kill_after=None)[-1] == "summary 8 0", "the output is free once it ended"
