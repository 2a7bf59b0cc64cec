"""Task functions the peer pools run (importable by their worker processes)."""

from __future__ import annotations

import os
import signal
import time


def noop(x: int) -> int:
    return x


def rows(count: int, size: int) -> list[dict[str, object]]:
    payload = b"x" * size
    return [{"i": i, "data": payload} for i in range(count)]


def suicide() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def hang(seconds: float) -> None:
    time.sleep(seconds)


def pid(delay: float) -> int:
    time.sleep(delay)
    return os.getpid()
