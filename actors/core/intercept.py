"""Interceptors: an advanced extension point for a layer that must act at a worker's session open and at the
admission of each of its requests, in the parent. ``leanworker.testing`` injects faults this way.

An interceptor is consulted once per generation, just before its session opens (its process is running, so its pid
is known). It may decline (None), or return an :class:`Intercepted`: session options added to the ``open`` frame,
and a request hook that the slot's admission gate calls for every request admitted on that generation, in admission
order, under the gate's lock and after the request is admitted for sure (so a hook that counts requests counts each
once). The hook returns the request to send; the caller's own value is not changed.

Interceptors are process-wide: :func:`install` puts one first in line, :func:`uninstall` takes it out. The first
that does not decline wins. A generation keeps the hook it was given, whatever is installed later. With none
installed (the normal case) a generation has no hook and admission costs nothing more.

Rules for a hook: it is fast and plain (no I/O, no waiting, no call into leanworker: it runs under the admission
lock; a leaf lock of its own is fine), it returns plain data, and it does not raise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from leanworker.actors.core import locks
from leanworker.actors.core.config import SessionKey
from leanworker.errors import LeanWorkerError

RequestHook = Callable[[str, Any], Any]  # (command, request) -> the request to send


@dataclass(frozen=True)
class Intercepted:
    """What an interceptor does to one generation: session options added to its ``open``, and a request hook."""

    options: Mapping[str, Any] = field(default_factory=dict)
    requests: RequestHook | None = None


class Interceptor(Protocol):
    """Consulted before a generation's session opens (see the module docstring)."""

    def intercept(self, key: SessionKey, pid: int | None) -> Intercepted | None:
        """None to leave the generation alone; else what to add to its open and the hook for its requests."""


_lock = locks.lock("interceptors")
_installed: tuple[Interceptor, ...] = ()


def install(interceptor: Interceptor) -> None:
    """Put ``interceptor`` first in line (installing it again moves it to the front)."""
    global _installed
    with _lock:
        _installed = (interceptor, *(i for i in _installed if i is not interceptor))


def uninstall(interceptor: Interceptor) -> None:
    """Take ``interceptor`` out (nothing happens if it is not installed). Generations it intercepted keep their
    hooks until they end."""
    global _installed
    with _lock:
        _installed = tuple(i for i in _installed if i is not interceptor)


def installed() -> tuple[Interceptor, ...]:
    """The interceptors in line, first first."""
    return _installed


def intercept(key: SessionKey, pid: int | None) -> Intercepted | None:
    """What the first interceptor that does not decline does to a generation of ``key`` (None: nothing)."""
    for interceptor in _installed:
        intercepted = interceptor.intercept(key, pid)
        if intercepted is not None:
            return intercepted
    return None


def session_open(key: SessionKey, pid: int | None) -> tuple[dict[str, Any], RequestHook | None]:
    """The session options a generation of ``key`` opens with (the key's, and an interceptor's on top) and its
    request hook (None: none). An interceptor that raises fails that start-up with a ``LeanWorkerError`` saying so."""
    options = key.options_dict()
    try:
        intercepted = intercept(key, pid)
    except Exception as exc:  # an interceptor's bug fails this start-up, typed, instead of the supervisor
        raise LeanWorkerError(f"an interceptor failed: {type(exc).__name__}: {exc}") from None
    if intercepted is None:
        return options, None
    options.update(intercepted.options)
    return options, intercepted.requests
