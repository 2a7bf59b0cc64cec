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
