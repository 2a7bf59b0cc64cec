"""Running the installed ``leanworker`` console script as a person does: from a folder of their own (never the
repository), with a PATH that does not hold the virtual environment, judged on the exit status and what it printed.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

VENV_BIN = Path(sys.executable).parent  # not resolved: the venv's bin, not the base interpreter's
LEANWORKER = VENV_BIN / "leanworker"
COLUMNS = 100


def person_env(**extra: str) -> dict[str, str]:
    """The environment of a shell without the venv: PATH without its bin, no PYTHONPATH, a 100-column terminal."""
    venv = str(VENV_BIN)
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and entry != venv]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LEANWORKER_REPL", "LEANWORKER_MATHLIB_ROOT")}
    env.update({"PATH": os.pathsep.join(path) or os.defpath, "COLUMNS": str(COLUMNS)})
    env.update(extra)
    return env


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120,
               prefix: tuple[str, ...] = ()) -> Done:
    """Run ``leanworker ARGS`` in ``cwd``; never a traceback, whatever the outcome."""
    done = subprocess.run([*prefix, str(LEANWORKER), *args], cwd=cwd, env=env or person_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    result = Done(done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in result.out + result.err, result.err
    return result


def cli_in_process(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Done:
    """``leanworker ARGS`` as :func:`cli` runs it (in ``cwd``, with ``env`` or a person's environment), but through
    ``leanworker.cli.main`` in this process: ~100 ms of CPU less than a process of its own (an interpreter and its
    imports). Only for a command that stops before any work (bad usage, ``--help``, a file checked first, a trace
    rendered): every test that uses it keeps a case run by :func:`cli`, the console script end to end. What ``main``
    changes in its process is put back: the working directory, the environment, ``sys.path`` (it adds the working
    directory), ``sys.stdout`` and ``sys.stderr``. That it put back what it changes itself (SIGINT's handler and
    wakeup fd, ``sys.stdout``) and left nothing else behind (a process or a thread still running, a logging handler, a
    module imported from ``cwd``) is asserted, so that one test never changes another. (Its one exit hook,
    lean/session.py's, is added when that module is first imported, by any test: it closes the REPL sessions still
    open at exit.) A warning the command raises goes to its stderr, as the console script's interpreter prints it;
    pytest would otherwise take it unseen. What a command module prints when it is first imported reaches only the
    first test of a process that loads it: nothing does today."""
    from leanworker.cli import main

    environment = env or person_env()
    saved_cwd, saved_env, saved_path = os.getcwd(), dict(os.environ), list(sys.path)
    saved_stdout, saved_stderr, saved_modules = sys.stdout, sys.stderr, set(sys.modules)
    root = logging.getLogger()
    saved_logging = (list(root.handlers), root.level)
    main_thread = threading.current_thread() is threading.main_thread()
    saved_sigint = signal.getsignal(signal.SIGINT)
    saved_wakeup = signal.set_wakeup_fd(-1) if main_thread else -1
    if main_thread:
        signal.set_wakeup_fd(saved_wakeup)
    saved_threads = set(threading.enumerate())
    saved_children = {child.pid for child in psutil.Process().children(recursive=True)}
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environment)
        sys.stdout, sys.stderr = out, err
        with warnings.catch_warnings(record=True) as warned:
            fresh_interpreter_warning_filters()
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse: bad usage (2), --help or --version (0)
                if isinstance(exit_.code, str):
                    err.write(exit_.code + "\n")
                code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
        for warning in warned:  # on stderr, where the console script's interpreter prints them
            err.write(warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno,
                                             warning.line))
        left = [what for what, changed in (
            ("sys.stdout", sys.stdout is not out), ("sys.stderr", sys.stderr is not err),
            ("SIGINT's handler", signal.getsignal(signal.SIGINT) is not saved_sigint),
            ("logging", (list(root.handlers), root.level) != saved_logging),
            ("a thread", any(t.is_alive() for t in set(threading.enumerate()) - saved_threads)),
            ("a process", bool({c.pid for c in psutil.Process().children(recursive=True)} - saved_children)),
            ("a module from cwd", any(str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(cwd))
                                      for name in set(sys.modules) - saved_modules))) if changed]
        if main_thread:
            wakeup = signal.set_wakeup_fd(saved_wakeup)
            if wakeup != saved_wakeup:
                left.append("SIGINT's wakeup fd")
    finally:
        sys.stdout, sys.stderr = saved_stdout, saved_stderr
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        if main_thread and saved_sigint is not None:
            signal.signal(signal.SIGINT, saved_sigint)
        root.handlers[:], root.level = saved_logging
        for name in set(sys.modules) - saved_modules:
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(str(cwd)):
                del sys.modules[name]
    assert not left, f"leanworker {' '.join(args)} in this process left changed: {', '.join(left)}"
    result = Done(code, out.getvalue(), err.getvalue())
    assert "Traceback" not in result.out + result.err, result.err
    return result


def fresh_interpreter_warning_filters() -> None:
    """The warning filters a new interpreter starts with (no -W, no PYTHONWARNINGS): each warning shown once per
    place, but deprecation, import and resource warnings, which are not shown."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)


def one_line_error(done: Done, command: str) -> str:
    """The single stderr line of a command that stopped before any work (exit 2, nothing on stdout)."""
    assert done.code == 2, (done.code, done.out, done.err)
    assert done.out == "" and len(done.err_lines) == 1, done.err
    line = done.err_lines[0]
    assert line.startswith(f"leanworker {command}: "), line
    return line[len(f"leanworker {command}: "):]


def ctrl_c(pid: int) -> None:
    """Press Ctrl-C as a terminal does: SIGINT to the whole foreground process group (the command's)."""
    os.killpg(pid, signal.SIGINT)


def ctrl_c_taken_by_another_thread(pid: int) -> None:
    """Ctrl-C as the kernel may deliver it: SIGINT to the process, taken by one of its threads that is not the main
    one (``kill`` of a thread's id prefers that thread). Python runs the handler only in the main thread, which
    must not sleep through it."""
    for thread in psutil.Process(pid).threads():
        if thread.id != pid:
            try:
                os.kill(thread.id, signal.SIGINT)
                return
            except ProcessLookupError:
                continue  # that thread has just ended
    raise AssertionError("the command has no thread but its main one")


def with_sigint(disposition: str) -> list[str]:
    """A prefix that runs a program with SIGINT ``"SIG_DFL"``, as in a terminal's foreground job (whatever this test
    process was started with: a suite run as a script's background job has it ignored, and a program inherits
    that), or ``"SIG_IGN"``, as in a script's background job."""
    return [sys.executable, "-c", f"import os, signal, sys; signal.signal(signal.SIGINT, signal.{disposition}); "
                                  "os.execv(sys.argv[1], sys.argv[1:])"]


def interrupt_when(args: tuple[str, ...], cwd: Path, started: Callable[[int], bool], env: dict[str, str] | None = None,
                   timeout: float = 120, press: Callable[[int], None] = ctrl_c, within: float | None = None,
                   stdout: Any = subprocess.PIPE, sigint: str = "SIG_DFL") -> tuple[Done, list[psutil.Process]]:
    """Start ``leanworker ARGS`` in its own session (a terminal's foreground job; ``sigint="SIG_IGN"``: started as a
    script's background job, with SIGINT ignored), wait until ``started()`` says work is under way (it is given the
    command's pid), press Ctrl-C (``press``: by default SIGINT to the whole process group, as a terminal does), and
    return what it printed and every process it had started. The command must end within ``within`` seconds of the
    press (default ``timeout``). ``stdout``: where its standard output goes (by default read into ``Done.out``; any
    other target leaves that empty)."""
    process = subprocess.Popen([*with_sigint(sigint), str(LEANWORKER), *args], cwd=cwd, env=env or person_env(),
                               stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not started(process.pid):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the work never started"
            time.sleep(0.02)
        children = psutil.Process(process.pid).children(recursive=True)
        press(process.pid)
        bound = timeout if within is None else within
        try:
            out, err = process.communicate(timeout=bound)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"leanworker {args[0]} did not end within {bound:g} s of Ctrl-C") from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    done = Done(process.returncode, out or "", err)
    assert "Traceback" not in done.out + done.err, done.err
    return done, children


def gone(processes: list[psutil.Process], timeout: float = 10.0) -> bool:
    """Every one of ``processes`` has exited (waited for up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return not alive
        time.sleep(0.05)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def runs_a_worker(pid: int) -> bool:
    """A worker host process runs below ``pid``."""
    try:
        return any("leanworker.host" in " ".join(child.cmdline()) for child in psutil.Process(pid).children(True))
    except psutil.Error:
        return False
