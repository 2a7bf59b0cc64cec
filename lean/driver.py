"""One Lean REPL process, driven by its own protocol (docs/lean_repl_protocol.md), from inside a worker.

Framing: a request is compact JSON on one line, then exactly one blank line; an answer is JSON over one or more
lines, then one blank line. Each request is sent together with a *fence* (lean/matching.py): the driver accepts an
answer only when it is the single answer between the request and its fence and carries the ``env`` the REPL's
numbering says it must. Output the driver did not ask for, an extra or missing answer, a wrong ``env``, an answer
that is not JSON, an answer past the size cap, a request past its deadline: each stops the REPL at once (its whole
process tree) and raises a :class:`~leanworker.lean.faults.ReplError` naming the reason, so no question is ever
given another's answer. The REPL's exit is seen when it happens (lean/reader.py), with its real exit status.

The REPL leads a process group of its own in the worker's session (actors/core/process_tree.py), so stopping it
ends its whole tree; the worker's guardian ends that group too when the worker dies (with the worker's cgroup,
where there is one), and where ``setpriv`` exists the REPL also gets its own parent-death signal at spawn.
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from leanworker.actors.core.process_tree import kill_tree, spawn_group
from leanworker.lean.faults import (
    ReplAnswerTooLarge,
    ReplBadAnswer,
    ReplCancelled,
    ReplError,
    ReplExited,
    ReplOutOfStep,
    ReplTimeout,
    ReplUnsolicited,
    describe_exit,
    stderr_summary,
)
from leanworker.lean.framing import EmptyLine, Overflow
from leanworker.lean.matching import EnvLedger, is_fence_answer, looks_like_fence_answer, new_fence
from leanworker.lean.orphans import OrphanSweeper
from leanworker.lean.reader import CLOSED_WHILE_IDLE, STDERR_END_WAIT, Closed, Exited, ReplReader

DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024
_CANCEL_POLL = 0.1
_CLOSE_WAIT = 2.0
_EXITING_WAIT = 0.5  # its output ended while nothing was asked: this long for the exit that may be under way


def encode_request(body: dict[str, Any]) -> bytes:
    """One request as the REPL reads it: compact JSON on one line (raw newlines in strings are escaped), then one
    blank line. Raises ``ValueError``/``TypeError`` for what JSON cannot carry (bytes, NaN, a surrogate)."""
    line = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return line.encode("utf-8") + b"\n\n"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


class ReplProcess:
    """A running REPL: :meth:`exchange` sends one request and returns its answer, matched, or raises."""

    def __init__(self, argv: list[str], cwd: str | None = None, env: dict[str, str] | None = None, *,
                 max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES, orphans: OrphanSweeper | None = None) -> None:
        setpriv = shutil.which("setpriv")
        command = [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)
        self.argv = list(argv)
        self.max_answer_bytes = max_answer_bytes
        self.orphans = orphans or OrphanSweeper(adopting=False)
        self.ledger = EnvLedger()
        self.exit_status: int | None = None
        self._dead = False
        self._stdin_open = True
        self.last_answer_bytes = 0
        stdin_read, self._stdin = os.pipe()
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        try:
            self.process = spawn_group(command, stdin=stdin_read, stdout=stdout_write, stderr=stderr_write, cwd=cwd,
                                       env=env)
        except BaseException:
            for fd in (self._stdin, stdout_read, stderr_read):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_read, stdout_write, stderr_write):
                os.close(fd)
        os.set_blocking(self._stdin, False)
        self.reader = ReplReader(self.process, stdout_read, stderr_read, max_answer_bytes)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Running, and still trusted with requests."""
        return not self._dead and self.process.poll() is None

    def stderr_text(self) -> str:
        return self.reader.stderr_text()

    # -- one exchange ---------------------------------------------------------------------------------------------

    def exchange(self, body: dict[str, Any], timeout: float | None,
                 cancelled: Callable[[], bool] | None = None) -> Any:
        """Send ``body`` and its fence; return the answer (parsed JSON, matched to ``body``). Raises a
        :class:`ReplError`, after which the REPL is stopped; :class:`ReplUnsolicited` means ``body`` was not sent
        (output nobody asked for was waiting), so it may go to a fresh REPL. ``TypeError``/``ValueError`` (nothing
        sent, the REPL kept) when ``body`` cannot be written as JSON."""
        fence, nonce = new_fence()
        payload = encode_request(body) + encode_request(fence)
        if self._dead:
            raise ReplExited("the REPL was already stopped", exit_status=self.exit_status)
        unsolicited = self.reader.unsolicited
        if unsolicited in (None, CLOSED_WHILE_IDLE) and self.reader.output_ended():
            # whether or not the reader saw the end first: a REPL that exited is reported as such (its status and
            # stderr), by the exchange below; one that only closed its output is replaced
            unsolicited = None if self._exits(_EXITING_WAIT) else CLOSED_WHILE_IDLE
        if unsolicited is not None:
            self.kill()
            raise ReplUnsolicited(f"the REPL {unsolicited}; it was replaced before this request was sent")
        expectation = self.ledger.expect(body)
        deadline = None if timeout is None else time.monotonic() + timeout
        self.reader.expect(2)
        try:
            self._write(payload, deadline, timeout, cancelled)
            answer = self._next_answer(deadline, timeout, cancelled, "its answer")
            answer_bytes = self.last_answer_bytes
            if is_fence_answer(answer, nonce):
                raise ReplOutOfStep("the REPL answered the fence that follows the request but not the request")
            closing = self._next_answer(deadline, timeout, cancelled, "the fence after its answer")
            if not is_fence_answer(closing, nonce):
                what = "an answer to another fence" if looks_like_fence_answer(closing) else "a second answer"
                raise ReplOutOfStep(f"two answers to one request: {what} came where only the fence's answer "
                                    "belongs, so either could be an answer out of turn")
            doubt = self.ledger.settle(expectation, answer)
            if doubt is not None:
                raise ReplOutOfStep(doubt)
        except ReplError:
            self.kill()
            raise
        self.last_answer_bytes = answer_bytes
        return answer

    def _exits(self, within: float) -> bool:
        """Whether the REPL has exited, or does within ``within`` seconds."""
        try:
            self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _write(self, payload: bytes, deadline: float | None, timeout: float | None,
               cancelled: Callable[[], bool] | None) -> None:
        view = memoryview(payload)
        while view:
            try:
                written = os.write(self._stdin, view)
                view = view[written:]
                continue
            except BlockingIOError:
                pass
            except OSError:  # the REPL closed its stdin or exited: its exit says more
                self._raise_exited(deadline, "while the request was being written")
            wait = self._wait_slice(deadline, timeout, cancelled)
            select.select([], [self._stdin], [], wait)

    def _next_answer(self, deadline: float | None, timeout: float | None, cancelled: Callable[[], bool] | None,
                     what: str) -> Any:
        while True:
            try:
                event = self.reader.events.get(timeout=self._wait_slice(deadline, timeout, cancelled))
            except queue.Empty:
                continue
            if isinstance(event, bytes):
                self.last_answer_bytes = len(event)
                return self._parse(event)
            if isinstance(event, Exited):
                self.exit_status = event.status
                raise ReplExited(f"the REPL {describe_exit(event.status)} before it gave {what}"
                                 f"{stderr_summary(self.stderr_text())}", exit_status=event.status,
                                 stderr=self.stderr_text())
            if isinstance(event, Closed):
                raise ReplExited(f"the REPL closed its output before it gave {what} (it was stopped)",
                                 stderr=self.stderr_text())
            if isinstance(event, Overflow):
                raise ReplAnswerTooLarge(
                    f"the REPL's answer passed {_mib(self.max_answer_bytes)} (the cap on an answer, session option "
                    f"max_answer_mib) without ending; it was stopped")
            if isinstance(event, EmptyLine):
                raise ReplOutOfStep("the REPL wrote an empty line where an answer belongs")

    def _parse(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            head = data[:60].decode("utf-8", errors="replace")
            raise ReplOutOfStep(f"the REPL wrote something that is not a JSON answer ({exc.__class__.__name__} "
                                f"at {head!r}...)") from None
        except RecursionError:  # valid JSON, but nested deeper than the parser recurses: its env cannot be read
            raise ReplBadAnswer(f"the REPL's answer ({_mib(len(data))}) is JSON nested too deeply to read (about "
                                f"{sys.getrecursionlimit()} levels or more); it was stopped") from None

    def _wait_slice(self, deadline: float | None, timeout: float | None,
                    cancelled: Callable[[], bool] | None) -> float | None:
        """How long to block before looking again; raises at the deadline or on a cancel."""
        if cancelled is not None and cancelled():
            raise ReplCancelled("the request was cancelled while the REPL worked on it; it was stopped")
        if deadline is None:
            return _CANCEL_POLL if cancelled is not None else None
        left = deadline - time.monotonic()
        if left <= 0:
            raise ReplTimeout(f"no answer within {timeout:g} s; the REPL was stopped")
        return min(left, _CANCEL_POLL) if cancelled is not None else left

    def _raise_exited(self, deadline: float | None, when: str) -> None:
        """The write failed: report the exit as the reader sees it (reaped, stderr read to its end), waiting for it
        at most until the deadline or :data:`_CLOSE_WAIT` plus the time stderr may take to end."""
        wait = _CLOSE_WAIT + STDERR_END_WAIT
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        event = self.reader.wait_exited(wait)
        if not isinstance(event, Exited):
            raise ReplExited(f"the REPL stopped reading its input {when} (it was stopped)",
                             stderr=self.stderr_text())
        self.exit_status = event.status
        raise ReplExited(f"the REPL {describe_exit(event.status)} {when}{stderr_summary(self.stderr_text())}",
                         exit_status=event.status, stderr=self.stderr_text())

    # -- the end --------------------------------------------------------------------------------------------------

    def kill(self) -> None:
        """Stop the REPL and every process it started; reap it; end its reader. Safe to call more than once."""
        self._dead = True
        kill_tree(self.process.pid)  # its group and its descendants, even after it exited
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.orphans.sweep()  # what it started, left its group and outlived it: adopted by the worker
        self.reader.stop()
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self._stdin_open:
            self._stdin_open = False
            os.close(self._stdin)

    def close(self) -> None:
        """End of input (the REPL exits 0), then a kill of whatever is left."""
        if not self._dead:
            self._close_stdin()
            try:
                self.process.wait(timeout=_CLOSE_WAIT)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
