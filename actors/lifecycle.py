"""Interpreter exit: every live ``Worker`` and ``WorkerPool`` is shut down (so every worker is reaped)."""

from __future__ import annotations

import atexit
import threading
from typing import Protocol


class _Closable(Protocol):
    def shutdown(self, timeout: float | None = None) -> object: ...


_live: dict[int, _Closable] = {}
_lock = threading.Lock()


def register(owner: _Closable) -> None:
    with _lock:
        _live[id(owner)] = owner


def unregister(owner: _Closable) -> None:
    with _lock:
        _live.pop(id(owner), None)


@atexit.register
def _shutdown_all() -> None:
    with _lock:
        owners = list(_live.values())
    for owner in owners:
        try:
            owner.shutdown()
        except Exception:  # exiting anyway; the workers' parent-death signal is the last resort
            pass
