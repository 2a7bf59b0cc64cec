"""Ctrl-C during work: stop cleanly, once.

While a run is being read, the first SIGINT does not raise anywhere: it asks the run to cancel (from a thread of
its own, never inside the signal handler), so the loop that reads results ends normally, the ``with`` blocks stop
every worker (and Ray), and the command prints one line saying what was committed and how to resume, then exits 130.
Outside a run (discovery, start-up) the first SIGINT raises ``KeyboardInterrupt`` as usual; the command's ``with``
blocks still stop what was started. Later SIGINTs are ignored while that clean-up runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any


class Interrupts:
    """SIGINT handling for one command: a context manager; ``requested`` tells whether Ctrl-C was pressed."""

    def __init__(self) -> None:
        self.requested = False
        self._wake = threading.Event()
        self._closed = False
        self._cancel: Callable[[], None] | None = None
        self._previous: Any = None
        self._watcher = threading.Thread(target=self._watch, name="leanworker-cli-interrupts", daemon=True)

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
        self._watcher.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._closed = True
        self._wake.set()
        self._watcher.join(timeout=5)
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def cancel_with(self, cancel: Callable[[], None] | None) -> None:
        """While work runs, Ctrl-C calls ``cancel`` (from another thread) instead of raising; None ends that."""
        self._cancel = cancel
        if cancel is not None and self.requested:
            self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            return  # already stopping: let the clean-up finish
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
