"""Checks made before any work: every file the command line reads or writes, the REPL it would start, a Ray
address. Each failure is a :class:`UsageError`: one line naming the path (or value) and the reason, exit status 2.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
from pathlib import Path

from leanworker.cli._output import UsageError
from leanworker.serve.config import is_simulator as is_simulator  # re-exported: the CLI asks its preflight
from leanworker.serve.config import simulator_command as simulator_argv

RAY_ADDRESS = re.compile(r"(?:ray://)?(?:(?P<host>[A-Za-z0-9._-]+)|\[(?P<v6>[0-9a-fA-F:]+)\]):(?P<port>\d{1,5})")
RAY_CONNECT_TIMEOUT_S = 5.0
# A gRPC server (Ray's GCS, the Ray Client server) answers an HTTP/2 client preface with a SETTINGS frame.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + an empty SETTINGS frame
HTTP2_SETTINGS = 4


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


def writable_file(path: str, what: str, regular: str | None = None) -> Path:
    """``path`` can be created or overwritten: not a directory, its directory exists and may be written. With
    ``regular`` (why it must be), an existing ``path`` must also be a regular file, not a pipe or a device."""
    file = Path(path)
    if file.is_dir():
        raise UsageError(f"{what} {path}: is a directory (name a file in it)")
    if regular is not None and file.exists() and not file.is_file():
        raise UsageError(f"{what} {path}: not a regular file ({regular})")
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


def not_an_input(path: str, what: str, inputs: dict[str, Path]) -> None:
    """``path`` (a file about to be written) is none of ``inputs`` (what each is, by name -> its path): writing
    it would destroy what the command reads."""
    try:
        target = os.stat(path)
    except OSError:
        return  # not there yet: it cannot be an input
    for name, source in inputs.items():
        try:
            same = os.path.samestat(os.stat(source), target)
        except OSError:
            continue
        if same:
            raise UsageError(f"{what} {path}: is {name}; writing there would destroy it (name another file)")


def existing_directory(path: str, what: str) -> Path:
    directory = Path(path)
    if not directory.exists():
        raise UsageError(f"{what} {path}: no such directory")
    if not directory.is_dir():
        raise UsageError(f"{what} {path}: not a directory")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise UsageError(f"{what} {path}: not readable (permission denied)")
    return directory.resolve()


def ray_address(text: str, connect: bool = True) -> str:
    """``local``, ``auto``, or ``HOST:PORT`` / ``ray://HOST:PORT`` where (with ``connect``) a Ray cluster answers.
    Ray's own connect to an address where nothing answers as Ray retries for about ten minutes, and the command
    line holds Ctrl-C back while Ray starts up (_run.py): so check first."""
    if text in ("local", "auto"):
        return text
    match = RAY_ADDRESS.fullmatch(text)
    if match is None:
        raise UsageError(f"--ray {text}: not a Ray address (use 'local', 'auto', HOST:PORT or ray://HOST:PORT)")
    host, port = match["host"] or match["v6"], int(match["port"])
    if not 0 < port < 65536:
        raise UsageError(f"--ray {text}: port {port} is out of range (1 to 65535)")
    if not connect:
        return text
    problem = grpc_problem(host, port, RAY_CONNECT_TIMEOUT_S)
    if problem is not None:
        raise UsageError(f"--ray {text}: cannot connect: {problem}")
    return text


def grpc_problem(host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` accepts a connection and answers as a gRPC server does (Ray's GCS and its client
    server are gRPC servers); else why not, in words."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            connection.sendall(HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = connection.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except socket.gaierror as exc:
        return f"unknown host {host} ({exc.strerror})"
    except ConnectionRefusedError:
        return f"nothing listens at {where} (connection refused)"
    except TimeoutError:
        return f"no answer from {where} within {timeout:g} s"
    except OSError as exc:
        return f"{where}: {exc.strerror or exc}"
    if len(head) < 9 or head[3] != HTTP2_SETTINGS:
        return f"{where} answers, but not as a Ray cluster does (it is no gRPC server: check the port)"
    return None


def simulator_command() -> str:
    """The bundled REPL simulator, run by the interpreter leanworker runs on, as one command line."""
    return shlex.join(simulator_argv())


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
