"""One Lean REPL process, driven by its own protocol (../shared/lean_repl_protocol.md), from inside a worker.

Framing: a request is compact JSON on one line, then exactly one blank line; a response is JSON over one or more
lines, ended by a blank line. The REPL has no deadline of its own: each request gets a wall-clock deadline here,
and past it the REPL is killed (:class:`ReplTimeout`). Its death (it dies on malformed JSON, printing
``uncaught exception: ...``) is detected at end of output and reported with its exit status and stderr
(:class:`ReplCrashed`). The REPL dies with its worker: it is in the worker's process group (and cgroup), which the
worker's guardian kills when the worker dies, and where ``setpriv`` exists it also gets its own parent-death signal
at spawn.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from typing import Any

from leanworker.actors.core.stderr import StderrTail, drain_into

_EOF = object()


class ReplError(Exception):
    """The REPL could not answer a request."""


class ReplTimeout(ReplError):
    """No answer within the request's deadline; the REPL was killed."""


class ReplCrashed(ReplError):
    """The REPL exited; ``exit_status`` and ``stderr`` say how."""

    def __init__(self, message: str, exit_status: int | None, stderr: str) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.stderr = stderr


class ReplProcess:
    """A running REPL: ``request(obj, timeout)`` sends one request and returns its response object."""

    def __init__(self, argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None) -> None:
        setpriv = shutil.which("setpriv")
        command = [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)
        self.argv = list(argv)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, cwd=cwd, env=env, bufsize=0)
        self.stderr_tail = StderrTail(16 * 1024)
        self._responses: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._read_stdout, name="leanworker-repl-stdout", daemon=True).start()
        threading.Thread(target=self._read_stderr, name="leanworker-repl-stderr", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        lines: list[bytes] = []
        for line in iter(self.process.stdout.readline, b""):
            if line.strip():
                lines.append(line)
            elif lines:
                self._responses.put(b"".join(lines))
                lines = []
        if lines:
            self._responses.put(b"".join(lines))
        self._responses.put(_EOF)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        drain_into(self.process.stderr.fileno(), self.stderr_tail)

    def request(self, body: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """Send ``body``; return the response object. Raises :class:`ReplTimeout` or :class:`ReplCrashed`."""
        assert self.process.stdin is not None
        line = json.dumps(body, ensure_ascii=False, separators=(",", ":"))  # escapes raw newlines in strings
        try:
            self.process.stdin.write(line.encode("utf-8") + b"\n\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._crashed() from None
        try:
            item = self._responses.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise ReplTimeout(f"the REPL did not answer within {timeout:g} s; it was killed") from None
        if item is _EOF:
            raise self._crashed()
        try:
            response = json.loads(item)
        except ValueError as exc:
            self.kill()
            raise ReplCrashed(f"the REPL printed something that is not JSON ({exc}); it was killed", None,
                              self.stderr_tail.text()) from None
        if not isinstance(response, dict):
            raise ReplCrashed("the REPL printed JSON that is not an object", None, self.stderr_tail.text())
        return response

    def _crashed(self) -> ReplCrashed:
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            status = self.process.returncode
        stderr = self.stderr_tail.text()
        lines = [line for line in stderr.splitlines() if line.strip()][-5:]
        detail = ("; stderr: " + " | ".join(lines)) if lines else ""
        return ReplCrashed(f"the REPL exited with status {status}{detail}", status, stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        """End of input (the REPL exits 0), then a kill if it lingers."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

