"""What a REPL started and left behind when it died: found and killed, even outside its process group.

The REPL leads a process group of its own, and :func:`~leanworker.actors.core.process_tree.kill_tree` ends that
group and every descendant of the REPL. A process that both leaves the group (``setsid``) and loses its parent (the
REPL exits first) is out of both reaches: init adopts it. Inside a worker the session therefore makes the worker a
*child subreaper* (``PR_SET_CHILD_SUBREAPER``): such orphans are adopted by the worker instead, so they stay its
children. :class:`OrphanSweeper` kills those children (every child of the worker but the guardian and the REPLs it
runs on purpose), their descendants, and reaps them (a subreaper must, or zombies pile up).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable

from leanworker.actors.core.process_tree import child_pids, tree_pids

PR_SET_CHILD_SUBREAPER = 36
_KILL_ROUNDS = 5
_REAP_WAIT = 2.0


def become_subreaper() -> bool:
    """Make this process adopt its descendants' orphans (Linux); True where that is set."""
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class OrphanSweeper:
    """Kills and reaps the orphans this process adopted. Inactive (does nothing) unless ``adopting``: outside a
    worker that made itself a subreaper, a child of this process is not a REPL's orphan."""

    def __init__(self, adopting: bool, spared: Iterable[int] = ()) -> None:
        self.adopting = adopting
        self.spared = frozenset(spared)

    def sweep(self, keep: Iterable[int] = ()) -> int:
        """SIGKILL every adopted orphan (every child but ``spared`` and ``keep``) with its descendants, repeating
        until none is left (one that forks meanwhile is caught too), then reap them. Returns how many were killed."""
        if not self.adopting:
            return 0
        kept = self.spared | frozenset(keep)
        killed: set[int] = set()
        for _ in range(_KILL_ROUNDS):
            targets = self._orphans(kept) - killed
            if not targets:
                break
            for pid in targets:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            killed |= targets
        # wait for what is dying even if another kill sent it (a tree kill at a deadline): once we return, nothing
        # reaps it until the next sweep
        self.reap(kept, wait=_REAP_WAIT)
        return len(killed)

    def reap(self, keep: Iterable[int] = (), wait: float = 0.0) -> None:
        """Collect the exit status of adopted children that ended (``keep``: children someone else reaps)."""
        if not self.adopting:
            return
        kept = self.spared | frozenset(keep)
        deadline = time.monotonic() + wait
        while True:
            waiting = reaped = False
            for child in _children(os.getpid(), recursive=False):
                if child in kept:
                    continue
                try:
                    pid, _ = os.waitpid(child, os.WNOHANG)
                except ChildProcessError:
                    continue
                waiting = waiting or pid == 0
                reaped = reaped or pid != 0
            if reaped:
                continue  # a child that ended handed its own children to us (a server's worker): list them too
            if not waiting or time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def _orphans(self, kept: frozenset[int]) -> set[int]:
        pids: set[int] = set()
        for orphan in _children(os.getpid(), recursive=False):
            if orphan in kept:
                continue
            pids.add(orphan)
            pids.update(_children(orphan, recursive=True))
        return {pid for pid in pids if _alive(pid)}


def worker_orphans() -> OrphanSweeper:
    """Inside a worker: adopt the orphans of what it starts (so none escapes a kill), sparing the worker's
    guardian."""
    from leanworker.host.containment import guardian_pid

    guardian = guardian_pid()
    return OrphanSweeper(adopting=become_subreaper(), spared=() if guardian is None else (guardian,))


def _children(pid: int, recursive: bool) -> list[int]:
    """The children of ``pid`` (or all its descendants), read from ``/proc/PID/task/*/children``: microseconds, not
    a walk of every process of the machine (this runs after every item of the file capability)."""
    if recursive:
        return (tree_pids(pid) or [pid])[1:]
    return child_pids(pid) or []


def _alive(pid: int) -> bool:
    import psutil  # here, not at the top: ~14 ms at a worker's start, and most workers never call this

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
