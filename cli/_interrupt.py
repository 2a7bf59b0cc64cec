"""Ctrl-C during work: stop cleanly, once.

While a run is being read, the first SIGINT does not raise anywhere: it asks the run to cancel (from a thread of
its own, never inside the signal handler), so the loop that reads results ends normally, the ``with`` blocks stop
every worker (and Ray), and the command prints one line saying what was committed and how to resume, then exits 130.
Outside a run (discovery, start-up) the first SIGINT raises ``KeyboardInterrupt`` as usual; the command's ``with``
blocks still stop what was started. Later SIGINTs are ignored while that clean-up runs. Once the work has every
result (:meth:`Interrupts.work_finished`), and after the command has decided how it ends, a SIGINT changes nothing.

Whether Ctrl-C was pressed is decided by :meth:`Interrupts.pressed`, never by where a ``KeyboardInterrupt`` went
(any ``except BaseException`` on the way may swallow one): the same Ctrl-C may kill a worker too, and its death may be
seen before this process's own handler has run (docs/semantics.md, The command line).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

# How long pressed() waits at most for another thread of this process, runnable but not yet run, that may hold a
# SIGINT the kernel gave it (its C-level handler runs first when it next runs): a bound for a thread that stays busy.
SETTLE_BOUND_S = 2.0


def interrupted_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C before the command has started anything (its modules still loading): one line, exit status 130,
    never a traceback. ``main`` puts its own handler in place once it runs."""
    os.write(2, b"leanworker: interrupted\n")
    os._exit(130)


class Interrupts:
    """SIGINT handling for one command: a context manager; :meth:`pressed` tells whether Ctrl-C was pressed."""

    def __init__(self) -> None:
        self.requested = False  # the handler has run (see pressed() for a SIGINT whose handler has not yet run)
        self._wake = threading.Event()
        self._closed = False
        self._finished = False
        self._cancel: Callable[[], None] | None = None
        self._previous: Any = None
        self._wakeup: tuple[int, int] | None = None  # the pipe the C-level handler writes each signal's number to
        self._previous_wakeup = -1
        self._watcher = threading.Thread(target=self._watch, name="leanworker-cli-interrupts", daemon=True)

    def __enter__(self) -> Interrupts:
        # A command started with SIGINT ignored (a script's background job: the shell ignores it there) leaves it
        # ignored, as Python's start-up and cli/__init__.py do: a Ctrl-C meant for the script does not stop it.
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            self._wakeup = (read, write)
            self._previous_wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._watcher.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._closed = True
        self._wake.set()
        self._watcher.join(timeout=5)
        if self._previous is not None:
            # The command has decided how it ends: a Ctrl-C from here to the process's exit (its output still being
            # flushed) changes nothing. The start-up handler would exit at once, 130, and drop that output.
            after = signal.SIG_IGN if self._previous is interrupted_while_starting else self._previous
            signal.signal(signal.SIGINT, after)
        if self._wakeup is not None:
            read, write = self._wakeup
            current = signal.set_wakeup_fd(self._previous_wakeup)
            if current != write:  # replaced since (an event loop's): leave that one in place
                signal.set_wakeup_fd(current)
            os.close(read)
            os.close(write)

    def cancel_with(self, cancel: Callable[[], None] | None) -> None:
        """While work runs, Ctrl-C calls ``cancel`` (from another thread) instead of raising; None ends that."""
        self._cancel = cancel
        if cancel is not None and self.requested:
            self._wake.set()

    def work_finished(self) -> None:
        """The command's work has every result: from now on Ctrl-C changes nothing (the command stops its workers as
        it would have, reports what it did and prints its output in full)."""
        self._finished = True

    def pressed(self) -> bool:
        """Whether Ctrl-C was pressed while the command ran: its handler has run, or the signal has reached this
        process and its handler has yet to run. CPython runs a handler only in the main thread, between bytecodes,
        after the C-level handler of whichever thread the kernel gave the signal to has run, and a thread the kernel
        gave it to may not have run again yet: an error the same Ctrl-C caused (a worker it killed) can be seen
        first. Call it before reporting an error as the command's outcome; True marks the command interrupted.
        Once the work has every result (:meth:`work_finished`), False: a Ctrl-C then changes nothing, and an error
        met after it (its output cannot be written, say) is reported as that error."""
        if self._finished:
            return False
        if not self.requested and self._sigint_on_its_way():
            self.requested = True
        return self.requested

    def _sigint_on_its_way(self) -> bool:
        deadline = time.monotonic() + SETTLE_BOUND_S
        while True:
            if self._sigint_handled_in_c() or _sigint_pending():
                return True
            if not _another_thread_runnable() or time.monotonic() > deadline:
                return self._sigint_handled_in_c()
            time.sleep(0.001)  # let that thread run: if it holds a SIGINT, its C-level handler runs first

    def _sigint_handled_in_c(self) -> bool:
        """A SIGINT's C-level handler has run (in any thread) since the last look: it wrote the wakeup pipe."""
        seen = False
        while self._wakeup is not None:
            try:
                numbers = os.read(self._wakeup[0], 4096)
            except BlockingIOError:
                break
            seen = seen or signal.SIGINT in numbers
        return seen

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.requested or self._finished:
            return  # already stopping (let the clean-up finish), or the work is done
        self.requested = True
        if self._cancel is None and not self._closed:
            raise KeyboardInterrupt  # (once closed, the command has ended: a raise would only print a traceback)
        self._wake.set()

    def _watch(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            cancel = self._cancel
            if cancel is not None:
                cancel()


def _sigint_pending() -> bool:
    """A SIGINT sent to this process that no thread has taken yet (blocked where it could go, say)."""
    if signal.SIGINT in signal.sigpending():
        return True
    try:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith(("ShdPnd:", "SigPnd:")) and int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)):
                    return True
    except OSError:
        pass
    return False


def _another_thread_runnable() -> bool:
    """Another thread of this process is runnable (state R): it may be waiting for a CPU with a signal to handle
    first. False where /proc cannot tell."""
    me = threading.get_native_id()
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return False
    for thread in threads:
        if int(thread) == me:
            continue
        try:
            with open(f"/proc/self/task/{thread}/stat") as stat:
                state = stat.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # ended meanwhile
        if state == "R":
            return True
    return False
