"""A worker's stderr, drained continuously into a bounded tail (a pipe nobody drains blocks its writer).

Used by the runtime for worker processes and by ``lean/`` for the processes a worker starts.
"""

from __future__ import annotations

import os
from collections import deque

from leanworker.actors.core import locks

STDERR_TAIL_BYTES = 64 * 1024


def drain_into(fd: int, tail: StderrTail) -> None:
    """Read ``fd`` until end of file into ``tail`` (a pipe nobody drains would block its writer)."""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        tail.append(data)


class StderrTail:
    """The last ``limit`` bytes a worker wrote to stderr."""

    def __init__(self, limit: int = STDERR_TAIL_BYTES) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self._lock = locks.lock("stderr_tail")

    def append(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            while self._size - len(self._chunks[0]) >= self._limit:
                self._size -= len(self._chunks.popleft())

    def text(self) -> str:
        with self._lock:
            data = b"".join(self._chunks)[-self._limit:]
        return data.decode("utf-8", "replace")
