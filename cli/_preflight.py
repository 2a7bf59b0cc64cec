"""Checks made before any work: every file the command line reads or writes, the REPL it would start, a Ray
address. Each failure is a :class:`UsageError`: one line naming the path (or value) and the reason, exit status 2.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

from leanworker.cli._output import UsageError
from leanworker.serve.config import SIMULATOR_MODULE
from leanworker.serve.config import simulator_command as simulator_argv

RAY_ADDRESS = re.compile(r"(ray://)?[A-Za-z0-9._-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}")


def readable_file(path: str, what: str) -> Path:
    """``path`` is an existing file this process may read."""
    file = Path(path)
    if not file.exists():
        raise UsageError(f"{what} {path}: no such file")
    if file.is_dir():
        raise UsageError(f"{what} {path}: is a directory, not a file")
    if not os.access(file, os.R_OK):
        raise UsageError(f"{what} {path}: not readable (permission denied)")
    return file


def writable_file(path: str, what: str) -> Path:
    """``path`` can be created or overwritten: not a directory, its directory exists and may be written."""
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"{what} {path}: is a directory (name a file in it)")
    parent = file.parent
    if not parent.exists():
        raise UsageError(f"{what} {path}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{what} {path}: {parent} is not a directory")
    if file.exists() and not os.access(file, os.W_OK):
        raise UsageError(f"{what} {path}: not writable (permission denied)")
    if not file.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot create files in {parent} (permission denied)")
    return file


def existing_directory(path: str, what: str) -> Path:
    directory = Path(path)
    if not directory.exists():
        raise UsageError(f"{what} {path}: no such directory")
    if not directory.is_dir():
        raise UsageError(f"{what} {path}: not a directory")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise UsageError(f"{what} {path}: not readable (permission denied)")
    return directory.resolve()


def ray_address(text: str) -> str:
    """``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    if text in ("local", "auto") or RAY_ADDRESS.fullmatch(text):
        return text
    raise UsageError(f"--ray {text}: not a Ray address (use 'local', 'auto', HOST:PORT or ray://HOST:PORT)")


def simulator_command() -> str:
    """The bundled REPL simulator, run by the interpreter leanworker runs on, as one command line."""
    return shlex.join(simulator_argv())


def is_simulator(command: str) -> bool:
    return SIMULATOR_MODULE in command


def executable_command(command: str, what: str, workspace: str | None = None) -> str:
    """``command`` (a command line) starts with a program that exists and may be run (a relative path starts at
    the workspace, where the worker runs it)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"{what} {command!r}: not a command line ({exc})") from None
    if not argv:
        raise UsageError(f"{what}: empty command")
    program = argv[0]
    if workspace is not None and os.sep in program and not os.path.isabs(program):
        program = os.path.join(workspace, program)
    if shutil.which(program) is None:
        where = "no such file" if os.sep in program and not os.path.exists(program) else (
            "not executable" if os.path.exists(program) else "not found on PATH")
        raise UsageError(f"{what} {program}: {where}")
    return command
