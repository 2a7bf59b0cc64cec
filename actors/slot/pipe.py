"""The parent's write end of a worker's stdin: a frame writer that never blocks (stderr: core/stderr.py).

A worker that stops reading its stdin (stopped, wedged, or just slow) must never freeze the parent: a blocking
write would hold whatever lock its caller holds, and the deadline, the cancel ladder and shutdown need those. So
the write end is non-blocking. :meth:`PipeWriter.write_frame` writes what the pipe takes at once and leaves the rest
to a drainer thread (started on first need), which writes it as the worker reads. Frames are never interleaved.
The backlog is small by construction: one request is in flight per worker, plus a few control frames.
"""

from __future__ import annotations

import os
import select
import threading
from collections import deque
from typing import Any

from leanworker.actors.core import locks
from leanworker.protocol.frames import encode_frame

_DRAIN_POLL = 0.1


class PipeWriter:
    """Writes whole frames to a worker's stdin without ever blocking the caller; safe to share between threads."""

    __slots__ = ("_fd", "_lock", "_backlog", "_closed", "_drainer", "_wake", "max_frame_bytes")

    def __init__(self, fd: int, max_frame_bytes: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._lock = locks.lock("pipe")
        self._backlog: deque[memoryview] = deque()
        self._closed = False
        self._drainer: threading.Thread | None = None
        self._wake = locks.condition("pipe", self._lock)
        self.max_frame_bytes = max_frame_bytes

    def send(self, message: dict[str, Any]) -> bool:
        """Encode and queue one frame; False when the worker's stdin is closed (the exit report follows)."""
        return self.write_frame(encode_frame(message, self.max_frame_bytes))

    def write_frame(self, frame: bytes) -> bool:
        """Queue an encoded frame: written now as far as the pipe takes it, the rest by the drainer thread."""
        with self._lock:
            if self._closed:
                return False
            if self._backlog:
                self._backlog.append(memoryview(frame))
                return True
            try:
                written = os.write(self._fd, frame)
            except BlockingIOError:
                written = 0
            except OSError:  # the worker closed its stdin or exited
                self._closed = True
                return False
            if written < len(frame):
                self._backlog.append(memoryview(frame)[written:])
                self._start_drainer_locked()
        return True

    @property
    def backlog_bytes(self) -> int:
        with self._lock:
            return sum(len(view) for view in self._backlog)

    def close(self) -> None:
        """Stop writing (before the fd is closed, so a drainer never writes to a reused descriptor)."""
        with self._lock:
            self._closed = True
            self._backlog.clear()
            self._wake.notify_all()

    def _start_drainer_locked(self) -> None:
        if self._drainer is None:
            self._drainer = threading.Thread(target=self._drain, name="leanworker-pipe-drainer", daemon=True)
            self._drainer.start()
        else:
            self._wake.notify_all()

    def _drain(self) -> None:
        while True:
            with self._lock:
                while not self._backlog and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
            try:
                select.select([], [self._fd], [], _DRAIN_POLL)
            except (OSError, ValueError):
                pass  # closed under us: the flag says so at the next look
            with self._lock:
                while self._backlog and not self._closed:
                    view = self._backlog[0]
                    try:
                        written = os.write(self._fd, view)
                    except BlockingIOError:
                        break
                    except OSError:
                        self._closed = True
                        self._backlog.clear()
                        return
                    if written < len(view):
                        self._backlog[0] = view[written:]
                        break
                    self._backlog.popleft()
