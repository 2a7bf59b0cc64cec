"""One process (a Lean check) run to its end under a deadline and a memory limit, inside a worker.

The process leads a process group of its own (actors/core/process_tree.py): at the deadline, past the memory limit or on
a cancel, its whole tree is killed together (its group, and descendants that left it, such as the ``lean --worker``
children of ``lean --server``), then reaped. Memory is the RSS of the tree, sampled every ``sample_interval``
seconds; the peak is reported. Lean cannot bound itself: an address-space limit under ~6 GiB breaks it and its
``-M`` did not stop a run before 1.4 GiB (docs/lean.md). One thread: a selector over stdout, stderr and (while
there is input to write) stdin, so a Lean that never reads its input cannot block the worker past the deadline.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from leanworker.actors.core.process_tree import kill_tree, reap, sample_tree_mib, signal_group, spawn_group

STDERR_TAIL_BYTES = 4096
SAMPLE_INTERVAL = 0.05
POLL_WITHOUT_PIDFD = 0.002
_CHUNK = 65536
_DRAIN_AFTER_EXIT = 1.0  # a descendant that keeps stdout open after the leader exited is given this long


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: ``exit`` is the return code, or minus the signal that ended it; ``stopped_for`` is
    ``"timeout"``, ``"memory"`` or ``"cancelled"`` when leanworker killed it, else None."""

    exit: int | None
    stopped_for: str | None
    elapsed_s: float
    peak_rss_mib: float | None
    stderr_tail: str


def run_bounded(argv: Sequence[str], *, on_stdout: Callable[[bytes], None], stdin: bytes | None = None,
                cwd: str | None = None, env: Mapping[str, str] | None = None, timeout: float | None = None,
                memory_mib: float | None = None, cancelled: Callable[[], bool] = lambda: False,
                sample_interval: float = SAMPLE_INTERVAL) -> RunOutcome:
    """Run ``argv`` with ``stdin`` as its input (None: no input), pass stdout's bytes to ``on_stdout`` as they come,
    keep the last ``STDERR_TAIL_BYTES`` of stderr. Raises ``OSError`` when the process cannot start."""
    started = time.monotonic()
    process = spawn_group(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
    run = _Run(process, stdin, on_stdout)
    deadline = started + timeout if timeout is not None else None
    next_sample = started + sample_interval / 5  # not at once: a process just forked holds next to nothing
    stopped_for: str | None = None
    peak: float | None = None
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and (run.exit_seen or _has_exited(process.pid)):
                exited_at = now
            if exited_at is not None and (run.done() or now - exited_at > _DRAIN_AFTER_EXIT):
                break
            if exited_at is not None:
                pass  # it ended on its own: only its output is still being read
            elif deadline is not None and now >= deadline:
                stopped_for = "timeout"
            elif cancelled():
                stopped_for = "cancelled"
            elif now >= next_sample:
                sample = sample_tree_mib(process.pid)
                if sample is not None:
                    peak = sample if peak is None else max(peak, sample)
                    if memory_mib is not None and sample > memory_mib:
                        stopped_for = "memory"
                next_sample = now + sample_interval
            if stopped_for is not None:
                break
            wake = min(next_sample, deadline) if deadline is not None else next_sample
            run.pump(max(0.0, min(wake - now, sample_interval)))
    finally:
        if exited_at is None or stopped_for is not None:
            kill_tree(process.pid, signal.SIGKILL)  # before the reap: its group id is still ours
            exit_status = reap(process, 10.0)
        else:  # it ended on its own: its children were re-parented, only its group can still hold leftovers
            signal_group(process.pid, signal.SIGKILL)
            exit_status = process.wait()  # it has exited: a plain wait returns at once (no polling with sleeps)
        run.finish()
    return RunOutcome(exit_status, stopped_for, time.monotonic() - started, peak, run.stderr_text())


def _has_exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (its group id stays ours until the reap)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid != 0


class _Run:
    """The pipes of one run: input written as the process reads it, output read as it comes."""

    def __init__(self, process: subprocess.Popen[bytes], stdin: bytes | None,
                 on_stdout: Callable[[bytes], None]) -> None:
        assert process.stdout is not None and process.stderr is not None
        self.process = process
        self.on_stdout = on_stdout
        self.stderr = bytearray()
        self.selector = selectors.DefaultSelector()
        self.selector.register(process.stdout.fileno(), selectors.EVENT_READ, "stdout")
        self.selector.register(process.stderr.fileno(), selectors.EVENT_READ, "stderr")
        self.pending = memoryview(stdin or b"")
        self.open_outputs = 2
        self.exit_seen = False
        self.pidfd: int | None = None
        try:  # readable when the process exits (Linux 5.3+): the loop wakes at once, not at its next tick
            self.pidfd = os.pidfd_open(process.pid)
            self.selector.register(self.pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):
            self.pidfd = None
        if process.stdin is not None:
            os.set_blocking(process.stdin.fileno(), False)
            self.selector.register(process.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
            if not self.pending:
                self._close_stdin()

    def done(self) -> bool:
        """Both outputs reached end of file."""
        return self.open_outputs == 0

    def pump(self, wait: float) -> None:
        """Move bytes for at most ``wait`` seconds, or until the process exits."""
        if not self.selector.get_map():  # no pipe open and no pidfd: poll for the exit in short steps
            time.sleep(min(wait, POLL_WITHOUT_PIDFD))
            return
        for key, _ in self.selector.select(wait):
            if key.data == "stdin":
                self._write()
            elif key.data == "exit":
                self.exit_seen = True
                self.selector.unregister(key.fd)
            else:
                self._read(key.fd, key.data)

    def _write(self) -> None:
        assert self.process.stdin is not None
        try:
            written = os.write(self.process.stdin.fileno(), self.pending[:_CHUNK])
        except BlockingIOError:
            return
        except OSError:  # it closed its input (or died): what it did not read is not needed
            written = len(self.pending)
        self.pending = self.pending[written:]
        if not self.pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.selector.unregister(self.process.stdin.fileno())
        self.process.stdin.close()

    def _read(self, fd: int, name: str) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(fd)
            self.open_outputs -= 1
        elif name == "stdout":
            self.on_stdout(data)
        else:
            self.stderr += data
            if len(self.stderr) > 2 * STDERR_TAIL_BYTES:
                del self.stderr[:-STDERR_TAIL_BYTES]

    def finish(self) -> None:
        """After the kill: read what is left in the pipes (bounded), then close them."""
        give_up = time.monotonic() + _DRAIN_AFTER_EXIT
        while not self.done() and time.monotonic() < give_up:
            self.pump(0.05)
        self.selector.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def stderr_text(self) -> str:
        return bytes(self.stderr[-STDERR_TAIL_BYTES:]).decode("utf-8", errors="replace")
