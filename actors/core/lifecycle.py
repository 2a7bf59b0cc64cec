"""Interpreter exit and ``os.fork()``: live pools and workers are shut down at exit, and refuse use after a fork.

At exit every live ``Worker`` and ``WorkerPool`` is shut down (so every worker is reaped). In the child of an
``os.fork()``, none of their threads exist and their pipes belong to the parent: the child forgets them (its exit
does not wait on them), points the inherited pipe descriptors at /dev/null (so it can never write into a parent's
worker), and every use of an inherited pool, worker or lease raises :class:`UsedAfterFork`.
"""

from __future__ import annotations

import atexit
import os
from typing import Protocol

from leanworker.actors.core import locks
from leanworker.errors import UsedAfterFork


class _Closable(Protocol):
    def shutdown(self, timeout: float | None = None) -> object: ...


_live: dict[int, _Closable] = {}
_lock = locks.lock("lifecycle")
_pipe_fds: set[int] = set()
_pid = os.getpid()  # this process's pid, renewed after a fork (a cheap check on every warm lease)


def current_pid() -> int:
    """``os.getpid()`` without the system call: kept current by the fork handler below."""
    return _pid


def register(owner: _Closable) -> None:
    with _lock:
        _live[id(owner)] = owner


def unregister(owner: _Closable) -> None:
    with _lock:
        _live.pop(id(owner), None)


def register_pipe_fds(*fds: int) -> None:
    """Descriptors of a worker's pipes, to be made harmless in a forked child."""
    with _lock:
        _pipe_fds.update(fds)


def unregister_pipe_fds(*fds: int) -> None:
    with _lock:
        _pipe_fds.difference_update(fds)


def check_owner(pid: int, what: str) -> None:
    """Raise :class:`UsedAfterFork` unless this is the process that created ``what`` (whose pid was ``pid``)."""
    if _pid != pid:
        raise UsedAfterFork(f"this {what} was created in process {pid}, before os.fork(); its workers belong to "
                            f"that process. Create a new one in process {os.getpid()}.")


def _after_fork_in_child() -> None:
    global _lock, _pid
    _pid = os.getpid()
    _lock = locks.lock("lifecycle")  # another thread may have held the old one at the fork
    _live.clear()
    if _pipe_fds:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in _pipe_fds:
            try:
                os.dup2(devnull, fd)  # the number stays valid (later closes are harmless); the pipe is released
            except OSError:
                pass
        os.close(devnull)
        _pipe_fds.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _shutdown_all() -> None:
    with _lock:
        owners = list(_live.values())
    for owner in owners:
        try:
            owner.shutdown()
        except Exception:  # exiting anyway; the workers' parent-death signal is the last resort
            pass
