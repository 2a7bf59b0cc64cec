"""Ctrl-C, as a terminal sends it (SIGINT to the whole foreground process group), once work is under way
(issue 20): exit status 130, no traceback, every process the command started is gone, and one line says what was
committed and which command resumes; that command then finishes the work exactly once."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from console import Done, cli, ctrl_c, ctrl_c_taken_by_another_thread, gone, interrupt_when, person_env, with_sigint

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

# A session open that writes "opening-<pid>" beside this module as it begins, then takes a minute (longer than the
# open's bound, request_timeout's 30 s): a command that waited for it would end after 30 s, not at once. The first
# $FAST_OPENS opens of each leanworker process (default none) are instant.
SLOW_OPEN = """@capability.session
def open_session(spec):
    time.sleep(float(spec.options.get("open_s", 0)))
    return None
"""
OPENING_TOOL = SLOW_TOOL.replace(SLOW_OPEN, """import os
from pathlib import Path

HERE = Path(__file__).parent

def fast_open():
    parent = os.environ["LEANWORKER_PARENT_PID"]
    for n in range(int(os.environ.get("FAST_OPENS", "0"))):
        try:
            os.close(os.open(HERE / f"fast-{parent}-{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            continue
    return False

@capability.session
def open_session(spec):
    if fast_open():
        return None
    marker = HERE / f"opening-{os.getpid()}"
    marker.with_suffix(".part").write_text(str(os.getpid()))
    marker.with_suffix(".part").replace(marker)
    time.sleep(60)
""")
assert OPENING_TOOL != SLOW_TOOL

# Holds a worker process before its host starts (Python's start-up imports this), as if the Ctrl-C came that early.
HOLD_AT_START = """
import os
import time
from pathlib import Path

if os.environ.get("LEANWORKER_PARENT_PID"):  # a worker process (the command itself goes on)
    marker = Path(__file__).parent / f"starting-{os.getpid()}"
    marker.with_suffix(".part").write_text(str(os.getpid()))
    marker.with_suffix(".part").replace(marker)
    time.sleep(60)
"""


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


def test_a_run_started_with_ctrl_c_ignored_runs_on_through_a_ctrl_c(home: Path) -> None:
    """A script's background job (`leanworker run ... &` in a shell script) starts with SIGINT ignored: a Ctrl-C
    meant for the script does not stop it once it has loaded either (as Python leaves it ignored at its start)."""
    done, started = interrupt_when(run_args(), home, lambda pid: has_content(home / "rows.jsonl"), sigint="SIG_IGN")
    assert done.code == 0 and done.err == "", done.err
    assert sorted(modules_in(home / "rows.jsonl")) == sorted(["Mathlib", *MODULES]), "every module's row once"


def opening(home: Path, prefix: str = "opening-") -> list[int]:
    """The pids of the worker processes that have begun a slow session open (or, with "starting-", are held)."""
    return [int(path.read_text()) for path in home.glob(f"{prefix}*") if path.suffix != ".part"]


def opening_run_args(*extra: str) -> tuple[str, ...]:
    return ("run", "project", "--capability", "opening_tool:capability", "--command", "index", "--output",
            "rows.jsonl", *extra)


INTERRUPTED_EARLY = "leanworker run: interrupted: 0 batches committed to rows.jsonl; resume with:"


@pytest.mark.parametrize("press", [ctrl_c, ctrl_c_taken_by_another_thread], ids=["terminal", "another_thread"])
def test_ctrl_c_before_any_batch_committed_still_says_how_to_resume(home: Path,
                                                                     press: Callable[[int], None]) -> None:
    """Ctrl-C while the first session opens ends the command at once (within 15 s; the open takes a minute, and its
    bound is 30 s), whichever of the command's threads the kernel gives the signal to."""
    (home / "opening_tool.py").write_text(OPENING_TOOL)
    done, started = interrupt_when(opening_run_args(), home, lambda pid: bool(opening(home)), press=press, within=15)
    assert done.code == 130 and len(done.err_lines) == 1, done.err
    assert done.err_lines[0].startswith(INTERRUPTED_EARLY)
    assert started and gone(started), "the worker opening the session is gone too"


def test_ctrl_c_that_reaches_a_worker_before_its_host_starts_still_says_how_to_resume(home: Path) -> None:
    """The worker process is killed by the same Ctrl-C before its Python has started the host (held in start-up
    here): the command still says it was interrupted, and nothing is left."""
    (home / "opening_tool.py").write_text(OPENING_TOOL)
    hold = home / "hold"
    hold.mkdir()
    (hold / "sitecustomize.py").write_text(HOLD_AT_START)

    def press(pid: int) -> None:
        # A terminal signals the worker and the command at the same moment: the command's Ctrl-C is pending before
        # the worker can die of its own. Sent one after the other, under load the command saw the worker's death,
        # reported it and exited before its Ctrl-C was sent, which no terminal does: so the command is stopped
        # while both are sent.
        os.killpg(pid, signal.SIGSTOP)
        try:
            ctrl_c(pid)
            for worker in opening(hold, "starting-"):
                os.kill(worker, signal.SIGINT)
        finally:
            os.killpg(pid, signal.SIGCONT)

    done, started = interrupt_when(opening_run_args(), home, lambda pid: bool(opening(hold, "starting-")),
                                   env=person_env(PYTHONPATH=str(hold)), press=press, within=15)
    assert done.code == 130 and len(done.err_lines) == 1, done.err
    assert done.err_lines[0].startswith(INTERRUPTED_EARLY)
    assert gone(started)


# Holds the command after its work is done (HOLD_ROWS rows in rows.jsonl), until the test lets it go: at the first
# reap of a worker as the pool stops them (the SIGKILL of its group before the reap, an audit event: "reap"), or once
# its main has returned, its --json output written ("exit"). "stopping-<pid>" beside this module says it is held.
HOLD_AFTER_THE_WORK = """
import atexit
import os
import signal
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
ONCE = threading.Lock()  # two workers' reaps may come at once: the first holds, the other waits for it

def hold():
    with ONCE:
        marker = HERE / f"stopping-{os.getpid()}"
        if marker.exists():
            return
        marker.with_suffix(".part").write_text(str(os.getpid()))
        marker.with_suffix(".part").replace(marker)
        deadline = time.monotonic() + 60
        while not (HERE / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.01)

def work_done():
    try:
        return len(Path("rows.jsonl").read_text().splitlines()) >= int(os.environ["HOLD_ROWS"])
    except OSError:
        return False

def at_a_reap(event, args):
    if event == "os.killpg" and args[1] == signal.SIGKILL and work_done():
        hold()

if not os.environ.get("LEANWORKER_PARENT_PID"):  # the command, not its workers
    if os.environ["HOLD_AT"] == "reap":
        sys.addaudithook(at_a_reap)
    else:
        atexit.register(hold)
"""


def ctrl_c_after_the_work(home: Path, held: str, args: tuple[str, ...],
                          stdout: Any = subprocess.PIPE) -> tuple[Done, list[psutil.Process]]:
    """Run ``leanworker ARGS`` held once every batch has its result (``held``: at a worker's reap, or at exit;
    HOLD_AFTER_THE_WORK), press Ctrl-C there, then let it go on."""
    hold = home / "hold"
    hold.mkdir()
    (hold / "sitecustomize.py").write_text(HOLD_AFTER_THE_WORK)

    def press(pid: int) -> None:
        ctrl_c(pid)
        (hold / "go").touch()

    env = person_env(PYTHONPATH=str(hold), HOLD_AT=held, HOLD_ROWS=str(len(MODULES) + 1))  # + Mathlib's row
    return interrupt_when(args, home, lambda pid: bool(opening(hold, "stopping-")), env=env, press=press, within=60,
                          stdout=stdout)


@pytest.mark.parametrize("held", ["reap", "exit"], ids=["while_the_workers_stop", "after_main_returned"])
def test_ctrl_c_after_the_work_finished_changes_nothing_and_the_json_is_printed_in_full(home: Path,
                                                                                      held: str) -> None:
    """Every batch has its result; the Ctrl-C comes while the command stops its workers, or once it has decided how
    it ends and is exiting: it still ends 0, prints its whole --json summary, and says nothing of an interrupt."""
    done, started = ctrl_c_after_the_work(home, held, run_args("--json"))
    assert done.code == 0, (done.code, done.out, done.err)
    assert "interrupted" not in done.err, done.err
    result = done.json()
    assert result["status"] == "ok" and result["summary"]["batches_committed"] == 9, result
    assert sorted(modules_in(home / "rows.jsonl")) == sorted(["Mathlib", *MODULES])
    assert gone(started)


def test_ctrl_c_after_the_work_finished_does_not_turn_a_later_error_into_an_interrupt(home: Path) -> None:
    """Every batch has its result; Ctrl-C comes while the command stops its workers; then its summary cannot be
    written (stdout is a full device): the command reports that error (exit 1), not an interrupt (130, "0 batches
    committed" and a resume line), though the Ctrl-C did reach it."""
    with open("/dev/full", "w") as full:
        done, started = ctrl_c_after_the_work(home, "reap", run_args(), stdout=full)
    assert done.code == 1, (done.code, done.err)
    assert "interrupted" not in done.err and "No space left on device" in done.err, done.err
    assert sorted(modules_in(home / "rows.jsonl")) == sorted(["Mathlib", *MODULES])
    assert gone(started)


AS_IN_A_TERMINAL = tuple(with_sigint("SIG_DFL"))  # SIGINT not ignored, whatever the suite was started with


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
    done = cli("check", "items.jsonl", "--simulator", cwd=home, env=ctrl_c_on_import(home, "leanworker.cli._main"),
               prefix=AS_IN_A_TERMINAL)
    assert (done.code, done.out, done.err) == (130, "", "leanworker: interrupted\n")


def test_ctrl_c_before_the_work_starts_still_says_what_was_kept_and_how_to_resume(home: Path) -> None:
    env = ctrl_c_on_import(home, "leanworker.planner.discovery")  # run: during discovery
    done = cli(*run_args(), cwd=home, env=env, prefix=AS_IN_A_TERMINAL)
    assert done.code == 130 and done.out == "" and len(done.err_lines) == 1, done.err
    assert resume_command(done.err_lines[0], "run") == [*run_args(), "--resume"]
    (home / "items.jsonl").write_text('{"id": 1, "code": "theorem a : True := trivial"}\n')
    (home / "results.jsonl").write_text("earlier results\n")
    env = ctrl_c_on_import(home, "leanworker.lean.items")  # check: after reading the items, before any session
    done = cli("check", "items.jsonl", "--simulator", "--output", "results.jsonl", cwd=home, env=env,
               prefix=AS_IN_A_TERMINAL)
    assert done.code == 130 and len(done.err_lines) == 1, done.err
    assert done.err_lines[0].startswith("leanworker check: interrupted before any item was checked: results.jsonl is "
                                        "as it was; resume with: leanworker check items.jsonl"), done.err
    assert (home / "results.jsonl").read_text() == "earlier results\n"


def test_ctrl_c_while_a_run_waits_for_a_worker_to_open_ends_the_run_and_resumes_exactly_once(
        home: Path) -> None:
    """The run's second worker opens a session of another key slowly (the first opened at once): Ctrl-C cancels the
    run without waiting for that open (no warm worker of its key can free up), says what was committed, and the
    printed command finishes the rest exactly once."""
    (home / "opening_tool.py").write_text(OPENING_TOOL)
    args = opening_run_args("--max-batch-modules", "3", "--workers", "2", "--mode", "per_header")
    done, started = interrupt_when(args, home, lambda pid: bool(opening(home)), env=person_env(FAST_OPENS="1"),
                                   within=15)
    assert done.code == 130 and len(done.err_lines) == 1, done.err
    assert " of 10 committed to rows.jsonl;" in done.err_lines[0]  # 8 batches of the modules, 1 of Mathlib
    assert gone(started)
    before = modules_in(home / "rows.jsonl") if (home / "rows.jsonl").exists() else []
    resumed = cli(*resume_command(done.err_lines[0], "run"), cwd=home, env=person_env(FAST_OPENS="99"))
    assert resumed.code == 0, resumed.err
    after = modules_in(home / "rows.jsonl")
    assert sorted(after) == sorted(["Mathlib", *MODULES]), "each module's row exactly once"
    assert after[:len(before)] == before


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
    """``--ray local`` starts a cluster for this run only, even where RAY_ADDRESS names another (here a port nothing
    listens on: Ray would connect there, and refuse the local cluster's settings), and a Ctrl-C stops all of it."""
    import socket

    pytest.importorskip("ray")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        elsewhere = f"127.0.0.1:{probe.getsockname()[1]}"
    ray_tmp = tempfile.mkdtemp(prefix="lwray", dir="/tmp")  # short (Ray's socket paths), and gone after the test
    try:
        done, started = interrupt_when(run_args("--ray", "local"), home, lambda pid: has_content(home / "rows.jsonl"),
                                       env=person_env(RAY_ADDRESS=elsewhere, RAY_TMPDIR=ray_tmp), timeout=90)
        assert done.code == 130 and len(done.err_lines) == 1, (done.code, done.err)
        assert " committed to rows.jsonl; resume with: " in done.err_lines[0] and "--ray local" in done.err_lines[0]
        assert len(started) > 3 and gone(started, timeout=20), "Ray's processes and the workers are gone"
        assert any(Path(ray_tmp).glob("ray/session_*")), "Ray kept its session under RAY_TMPDIR, not in /tmp/ray"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
