"""Ctrl-C, as a terminal sends it (SIGINT to the whole foreground process group), once work is under way
(issue 20): exit status 130, no traceback, every process the command started is gone, and one line says what was
committed and which command resumes; that command then finishes the work exactly once."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from console import cli, gone, interrupt_when, person_env, runs_a_worker

SLOW_TOOL = """
import time
from leanworker.host import Capability

capability = Capability("slow-tool", version="1.0.0")

@capability.session
def open_session(spec):
    time.sleep(float(spec.options.get("open_s", 0)))
    return None

@capability.command("index")
def index(ctx, request):
    for module in request["modules"]:
        time.sleep(0.05)
        ctx.row("declarations", {"module": module})
    return {"modules": len(request["modules"])}
"""
MODULES = [f"Mathlib.Area{i}.Topic{j}" for i in range(4) for j in range(6)]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    from leanworker.fixtures.mathlib_tree import build_mathlib_tree

    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "slow_tool.py").write_text(SLOW_TOOL)
    build_mathlib_tree(folder / "project", MODULES)
    return folder


def has_content(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def resume_command(line: str, command: str) -> list[str]:
    prefix = f"leanworker {command}: interrupted: "
    assert line.startswith(prefix) and " resume with: leanworker " in line, line
    argv = shlex.split(line.split(" resume with: ", 1)[1])
    assert argv[0] == "leanworker" and argv[-1] == "--resume", argv
    return argv[1:]


def modules_in(output: Path) -> list[str]:
    return [json.loads(line)["payload"]["module"] for line in output.read_text().splitlines()]


def run_args(*extra: str) -> tuple[str, ...]:
    return ("run", "project", "--capability", "slow_tool:capability", "--command", "index", "--max-batch-modules",
            "3", "--output", "rows.jsonl", *extra)


def test_ctrl_c_in_run_commits_what_finished_and_the_printed_command_resumes_exactly_once(home: Path) -> None:
    done, started = interrupt_when(run_args(), home, lambda pid: has_content(home / "rows.jsonl"))
    assert done.code == 130 and done.out == "" and len(done.err_lines) == 1, done.err
    assert " of 9 committed to rows.jsonl;" in done.err_lines[0]
    assert started and gone(started), "every worker stopped"
    before = modules_in(home / "rows.jsonl")
    assert 0 < len(before) < len(MODULES)
    resumed = cli(*resume_command(done.err_lines[0], "run"), cwd=home)
    assert resumed.code == 0, resumed.err
    after = modules_in(home / "rows.jsonl")
    assert sorted(after) == sorted(["Mathlib", *MODULES]), "each module's row exactly once"
    assert after[:len(before)] == before, "what was committed stays as it was"


def test_ctrl_c_before_any_batch_committed_still_says_how_to_resume(home: Path) -> None:
    (home / "slow_open.py").write_text(SLOW_TOOL.replace('spec.options.get("open_s", 0)', "30"))
    args = ("run", "project", "--capability", "slow_open:capability", "--command", "index", "--output", "rows.jsonl")
    done, started = interrupt_when(args, home, runs_a_worker)
    assert done.code == 130 and len(done.err_lines) == 1, done.err
    assert done.err_lines[0].startswith("leanworker run: interrupted: 0 batches committed to rows.jsonl; resume with:")
    assert gone(started)


def ctrl_c_on_import(home: Path, module: str) -> dict[str, str]:
    """An environment in which the command presses Ctrl-C on itself (SIGINT, as a terminal sends it) the moment it
    starts to import ``module``: a moment of its start-up found without timing."""
    (home / "sitecustomize.py").write_text(
        "import os, signal, sys\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, CtrlC())\n")
    return person_env(PYTHONPATH=str(home))


def test_ctrl_c_while_the_command_is_still_loading_is_one_line_and_exit_130(home: Path) -> None:
    done = cli("check", "items.jsonl", "--simulator", cwd=home, env=ctrl_c_on_import(home, "leanworker.cli._main"))
    assert (done.code, done.out, done.err) == (130, "", "leanworker: interrupted\n")


def test_ctrl_c_before_the_work_starts_still_says_what_was_kept_and_how_to_resume(home: Path) -> None:
    env = ctrl_c_on_import(home, "leanworker.planner.discovery")  # run: during discovery
    done = cli(*run_args(), cwd=home, env=env)
    assert done.code == 130 and done.out == "" and len(done.err_lines) == 1, done.err
    assert resume_command(done.err_lines[0], "run") == [*run_args(), "--resume"]
    (home / "items.jsonl").write_text('{"id": 1, "code": "theorem a : True := trivial"}\n')
    (home / "results.jsonl").write_text("earlier results\n")
    env = ctrl_c_on_import(home, "leanworker.lean.items")  # check: after reading the items, before any session
    done = cli("check", "items.jsonl", "--simulator", "--output", "results.jsonl", cwd=home, env=env)
    assert done.code == 130 and len(done.err_lines) == 1, done.err
    assert done.err_lines[0].startswith("leanworker check: interrupted before any item was checked: results.jsonl is "
                                        "as it was; resume with: leanworker check items.jsonl"), done.err
    assert (home / "results.jsonl").read_text() == "earlier results\n"


def test_ctrl_c_in_check_keeps_each_result_written_and_resume_checks_the_rest_once(home: Path) -> None:
    items = [{"id": f"i{n}", "code": ("import Mathlib\n" if n % 2 else "") + f"theorem t{n} : True := trivial SLOW80"}
             for n in range(30)]
    (home / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    args = ("check", "items.jsonl", "--simulator", "--output", "results.jsonl")
    done, started = interrupt_when(args, home, lambda pid: has_content(home / "results.jsonl"))
    assert done.code == 130 and done.out == "" and len(done.err_lines) == 1, done.err
    assert " of 30 items have results in results.jsonl;" in done.err_lines[0]
    assert started and gone(started)
    written = (home / "results.jsonl").read_text().splitlines()
    assert 0 < len(written) < 30, "results are written as they arrive, not per batch"
    resumed = cli(*resume_command(done.err_lines[0], "check"), cwd=home)
    assert resumed.code == 0, resumed.err
    ids = [json.loads(line)["id"] for line in (home / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(item["id"] for item in items)


def test_ctrl_c_under_ray_local_stops_ray_and_every_worker(home: Path) -> None:
    pytest.importorskip("ray")
    done, started = interrupt_when(run_args("--ray", "local"), home, lambda pid: has_content(home / "rows.jsonl"),
                                   timeout=90)
    assert done.code == 130 and len(done.err_lines) == 1, (done.code, done.err)
    assert " committed to rows.jsonl; resume with: " in done.err_lines[0] and "--ray local" in done.err_lines[0]
    assert len(started) > 3 and gone(started, timeout=20), "Ray's processes and the workers are gone"
