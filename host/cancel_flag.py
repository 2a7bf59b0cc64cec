"""``CancelFlag``: one request's cancel flag in the worker host, set by the host and seen by the command's ctx."""

from __future__ import annotations

import threading


class CancelFlag:
    """``threading.Event``'s ``set``, ``is_set`` and ``wait``, made cheaply: the host makes one per request, and an
    Event builds its condition over a plain ``Lock``, which costs about 2 us to make (three caught
    ``AttributeError``); this one's condition is over an ``RLock``, whose wait helpers are in C."""

    __slots__ = ("_flag", "_cond")

    def __init__(self) -> None:
        self._flag = False
        self._cond = threading.Condition(threading.RLock())

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set, at most ``timeout`` seconds; return whether it is set."""
        with self._cond:
            if not self._flag:
                self._cond.wait(timeout)
            return self._flag
