"""The reading side of one REPL process: a thread that reads its stdout and stderr in large blocks and watches
for its exit, and hands the driver whole answers, faults and the exit, in order, as events.

- stdout is read with ``os.read`` in blocks of up to 1 MiB as soon as the selector says it is readable, and cut into
  answers by :class:`~leanworker.lean.framing.AnswerFramer` (with its cap on an answer's size).
- Answers are *expected*: the driver says how many it is about to ask for (:meth:`ReplReader.expect`) before it
  writes. Any output past what was expected is *unsolicited*: it is recorded, reading stdout stops there (so memory
  stays bounded whatever a stray process writes), and the driver replaces the REPL before its next request.
- The REPL's exit is seen the moment it happens, through a pidfd, even while a process it started keeps its stdout
  open: the REPL is reaped, what it had already written is read, stderr is read to its end (or for
  :data:`STDERR_END_WAIT` seconds at most, when a process it started holds stderr open), and only then does
  :class:`Exited` carry its real exit status: the report of a crash never misses the last words it wrote.
- The end of stdout while nothing is asked (a REPL that closed its output and keeps running) is unsolicited too: the
  driver replaces that REPL before its next request rather than charge that request for it.
- stderr is drained continuously into a bounded tail (a pipe nobody reads would block the REPL).
"""

from __future__ import annotations

import errno
import os
import queue
import select
import selectors
import subprocess
import threading
import time
from dataclasses import dataclass

from leanworker.lean.framing import AnswerFramer, EmptyLine, Overflow

READ_BLOCK = 1 << 20
STDERR_TAIL_BYTES = 16 * 1024
_POLL_WITHOUT_PIDFD = 0.05
_EXIT_AFTER_EOF = 2.0  # stdout closed: how long to wait for the exit, to report its status rather than "closed"
CLOSED_WHILE_IDLE = "closed its output while nothing was asked"
STDERR_END_WAIT = 1.0  # the REPL exited: how long its stderr may stay open (held by a process it started)
_OPEN, _EOF, _STOPPED = "open", "eof", "stopped"


@dataclass(frozen=True)
class Exited:
    """The REPL exited (``status``: its exit status, or minus the signal that killed it)."""

    status: int | None


@dataclass(frozen=True)
class Closed:
    """The REPL closed its stdout and did not exit."""


Event = bytes | EmptyLine | Overflow | Exited | Closed


class ReplReader:
    """Reads one REPL on a daemon thread of its own (started by the constructor); :meth:`stop` ends it."""

    def __init__(self, process: subprocess.Popen[bytes], stdout_fd: int, stderr_fd: int,
                 max_answer_bytes: int) -> None:
        self.process = process
        self.events: queue.Queue[Event] = queue.Queue()
        self._framer = AnswerFramer(max_answer_bytes)
        self._lock = threading.Lock()
        self._outstanding = 0
        self._unsolicited: str | None = None
        self._stderr = bytearray()
        self._stderr_ended = False
        self._closed = False  # the thread has ended and closed the pipes
        self._fds = {"stdout": stdout_fd, "stderr": stderr_fd}
        for fd in self._fds.values():
            os.set_blocking(fd, False)
        self._wake_read, self._wake_write = os.pipe()
        self._pidfd = _pidfd(process.pid)
        self._thread = threading.Thread(target=self._run, name=f"leanworker-repl-{process.pid}", daemon=True)
        self._thread.start()

    # -- what the driver asks ------------------------------------------------------------------------------------

    def expect(self, answers: int) -> None:
        """``answers`` more answers are about to be asked for (call before writing the request)."""
        with self._lock:
            self._outstanding += answers

    @property
    def unsolicited(self) -> str | None:
        """What the REPL did while nothing was asked (``"wrote an answer while nothing was asked (...)"``), or None."""
        with self._lock:
            return self._unsolicited

    def output_ended(self) -> bool:
        """Whether the REPL's stdout has no writer left (it closed its output, or exited), seen from the pipe
        itself: true as soon as that happened, whether or not the thread has read to the end yet."""
        with self._lock:
            if self._closed:
                return True
            poller = select.poll()
            poller.register(self._fds["stdout"], select.POLLIN)
            return any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, mask in poller.poll(0))

    def stderr_text(self) -> str:
        with self._lock:
            return self._stderr.decode("utf-8", errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (it closes the REPL's stdout and stderr); safe to call more than once."""
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the thread ----------------------------------------------------------------------------------------------

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            self._loop(selector)
        finally:
            selector.close()
            with self._lock:
                self._closed = True
            for fd in (*self._fds.values(), self._wake_read, self._wake_write,
                       *((self._pidfd,) if self._pidfd is not None else ())):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _loop(self, selector: selectors.BaseSelector) -> None:
        for name, fd in self._fds.items():
            selector.register(fd, selectors.EVENT_READ, name)
        selector.register(self._wake_read, selectors.EVENT_READ, "stop")
        if self._pidfd is not None:
            selector.register(self._pidfd, selectors.EVENT_READ, "exit")
        closed_since: float | None = None  # stdout reached end of file at this time, and the REPL has not exited
        while True:
            timeout = None if self._pidfd is not None else _POLL_WITHOUT_PIDFD
            if closed_since is not None:
                timeout = max(0.0, closed_since + _EXIT_AFTER_EOF - time.monotonic())
            names = {key.data for key, _ in selector.select(timeout)}
            if "stop" in names:
                return
            if "stderr" in names and not self._read_stderr():
                selector.unregister(self._fds["stderr"])
            if "stdout" in names:
                state = self._read_stdout()
                if state != _OPEN:
                    selector.unregister(self._fds["stdout"])
                if state == _EOF:
                    closed_since = time.monotonic()
                    self._closed_while_idle()
            if "exit" in names or (self._pidfd is None and self.process.poll() is not None):
                self._exited(selector)
                return
            if closed_since is not None and time.monotonic() >= closed_since + _EXIT_AFTER_EOF:
                self.events.put(Closed())
                closed_since = None

    def _read_stdout(self) -> str:
        """Read what stdout holds now: ``_OPEN``, ``_EOF``, or ``_STOPPED`` (unsolicited output, or overflow)."""
        fd = self._fds["stdout"]
        while True:
            try:
                data = os.read(fd, READ_BLOCK)
            except BlockingIOError:
                return _OPEN
            except OSError:
                return _EOF
            if not data:
                return _EOF
            if not self._take(data):
                return _STOPPED

    def _take(self, data: bytes) -> bool:
        """Frame ``data`` and pass the expected answers on; False when reading must stop."""
        pieces = self._framer.feed(data)
        with self._lock:
            for piece in pieces:
                if self._outstanding > 0:
                    self._outstanding -= 1
                    self.events.put(piece)
                elif self._unsolicited is None:
                    self._unsolicited = _describe_unsolicited(piece)
            if self._outstanding == 0 and self._framer.pending and self._unsolicited is None:
                self._unsolicited = f"wrote {self._framer.pending} bytes of output while nothing was asked"
            stop = self._unsolicited is not None or self._framer.overflowed
        return not stop

    def _closed_while_idle(self) -> None:
        with self._lock:
            if self._outstanding == 0 and self._unsolicited is None:
                self._unsolicited = CLOSED_WHILE_IDLE

    def _read_stderr(self) -> bool:
        """Read what stderr holds now; False once it has ended."""
        if self._stderr_ended:
            return False
        fd = self._fds["stderr"]
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                self._stderr_ended = True
                return False
            with self._lock:
                self._stderr += data
                if len(self._stderr) > STDERR_TAIL_BYTES:
                    del self._stderr[:len(self._stderr) - STDERR_TAIL_BYTES]

    def _exited(self, selector: selectors.BaseSelector) -> None:
        """The REPL has exited: reap it, take what it wrote before it went (stderr to its end, bounded), then
        report its status."""
        try:
            status: int | None = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        if not self._framer.overflowed and self.unsolicited is None:
            self._read_stdout()  # bounded: past the expected answers or the cap, reading stops
        for key in list(selector.get_map().values()):
            if key.data not in ("stderr", "stop"):  # the exit stays readable, stdout may too: wait on stderr alone
                selector.unregister(key.fileobj)
        give_up = time.monotonic() + STDERR_END_WAIT
        while self._read_stderr():  # until its end: what the REPL's tree wrote as it died may still be coming
            left = give_up - time.monotonic()
            if left <= 0:
                break
            names = {key.data for key, _ in selector.select(left)}
            if "stop" in names:
                break
        self.events.put(Exited(status))

    def wait_exited(self, timeout: float) -> Exited | Closed | None:
        """After a failed write: the reader's report of the exit (or of closed output), waited for at most
        ``timeout`` seconds; answers and faults met on the way are dropped (the REPL is going)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                return None
            if isinstance(event, (Exited, Closed)):
                return event


def _describe_unsolicited(piece: bytes | EmptyLine | Overflow) -> str:
    if isinstance(piece, EmptyLine):
        return "wrote an empty line while nothing was asked"
    if isinstance(piece, Overflow):
        return f"wrote {piece.size} bytes of output while nothing was asked"
    head = piece[:80].decode("utf-8", errors="replace").strip()
    return f"wrote an answer while nothing was asked ({head!r}{'...' if len(piece) > 80 else ''})"


def _pidfd(pid: int) -> int | None:
    """A pidfd for our child ``pid`` (Linux 5.3+), else None (the thread then polls for the exit)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.ESRCH):
            return None
        raise
