"""A process and everything it started, as one thing to spawn, measure and kill (Linux).

The runtime uses it for worker processes and ``lean/`` for the Lean processes a worker starts, so both mean the
same by "the whole tree":

- **spawn** (:func:`spawn_group`): the process leads a new process group (``setpgid``, no ``preexec_fn``), so a
  single ``killpg`` reaches it and every descendant that stays in the group.
- **measure** (:func:`sample_tree_mib`): RSS or PSS summed over the process and its descendants (by parent pid,
  read from ``/proc/PID/task/*/children``).
- **kill** (:func:`kill_tree`): the leader's group; every descendant found by parent pid, even one that left the
  group (``lean --server`` starts each ``lean --worker`` in a session of its own); every other group of the
  leader's session when the leader leads one (a worker's Lean processes lead their own groups in the worker's
  session, and stay findable there after the worker died and they were re-parented); and, for SIGKILL, a cgroup's
  ``cgroup.kill``. For SIGKILL the tree is first frozen (SIGSTOP) and re-read until nothing new appears, so a
  process that forks while it is being killed leaves no child behind (a tree of zombies only, its leader included,
  has nothing that can fork and is not frozen).
- **reap** (:func:`reap`): wait for the leader, bounded.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

MIB = 1024 * 1024
_FREEZE_ROUNDS = 4


# The call form, not a class body: under ``from __future__ import annotations`` a class body's field types are
# strings that typing compiles one by one (1.1 ms at import, against 0.1 ms), and every worker host imports this
# module at start.
ProcStat = NamedTuple("ProcStat", [("pid", int), ("ppid", int), ("pgid", int), ("sid", int), ("zombie", bool)])
ProcStat.__doc__ = ("Who a process is related to (its parent, process group and session), and whether it is a zombie "
                    "(dead, no thread left that could fork).")


def spawn_group(argv: Sequence[str], *, stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
                stderr: int | IO[Any] | None = None, cwd: str | None = None,
                env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new process group in our session. Raises ``OSError`` if it cannot start."""
    import subprocess  # here, not at the top: a worker host loads this module for kill_tree alone, at every start

    return subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd,
                            env=dict(env) if env is not None else None, close_fds=True, process_group=0, bufsize=0)


def proc_table() -> list[ProcStat]:
    """Every process of the machine with its parent, group, session and zombie state (from ``/proc/*/stat``)."""
    table = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:  # os.open/os.read, not open(): no file object per process (a third less time on a busy machine)
            fd = os.open(f"/proc/{name}/stat", os.O_RDONLY)
        except OSError:
            continue  # it just ended
        try:
            line = os.read(fd, 4096)
        except OSError:
            continue
        finally:
            os.close(fd)
        fields = line[line.rfind(b")") + 2:].split()  # the name may hold spaces and parentheses
        if len(fields) >= 4:
            table.append(ProcStat(int(name), int(fields[1]), int(fields[2]), int(fields[3]), _zombie(fields)))
    return table


def _zombie(fields: list[bytes]) -> bool:
    """Dead and unable to fork: state Z with no thread left. A process whose main thread ended while another thread
    runs is also shown Z, and that thread can still fork; its thread count (the 20th field, its own included) says
    so."""
    return len(fields) > 17 and fields[0] == b"Z" and fields[17] == b"1"


def descendants_in(table: Iterable[ProcStat], pid: int) -> list[ProcStat]:
    """The descendants of ``pid`` in ``table`` (by parent pid), nearest first."""
    children: dict[int, list[ProcStat]] = {}
    for entry in table:
        children.setdefault(entry.ppid, []).append(entry)
    found: list[ProcStat] = []
    frontier = [pid]
    seen = {pid}
    while frontier:
        parent = frontier.pop(0)
        for child in children.get(parent, ()):
            if child.pid not in seen:
                seen.add(child.pid)
                found.append(child)
                frontier.append(child.pid)
    return found


def tree_members(pid: int, table: Sequence[ProcStat] | None = None) -> tuple[set[int], set[int]]:
    """``(groups, pids)`` to signal for the tree of ``pid``: its own group and, when it leads a session, every group
    of that session; and each descendant (by parent pid) that is in none of those groups."""
    if table is None:
        table = proc_table()
    groups = {pid}
    if _session_of(pid) == pid:
        groups.update(entry.pgid for entry in table if entry.sid == pid and entry.pgid > 1)
    pids = {entry.pid for entry in descendants_in(table, pid) if entry.pgid not in groups}
    return groups, pids


def nothing_but_zombies(pid: int, groups: set[int], pids: set[int], table: Sequence[ProcStat]) -> bool:
    """Whether every member of the tree of ``pid``, ``pid`` included, is a zombie (or gone): nothing that could
    fork, so nothing to freeze. (A worker's tree at its reap is all zombies: its cgroup was killed a moment before.
    A live leader can fork while it is being killed, even when all else is dead.)"""
    return not any(not entry.zombie and (entry.pid == pid or entry.pgid in groups or entry.pid in pids)
                   for entry in table)


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _signal_all(groups: Iterable[int], pids: Iterable[int], sig: int, last_group: int | None = None) -> None:
    """Signal ``groups`` then ``pids``; ``last_group`` (our own, when we kill our own tree) goes last of all."""
    for group in sorted(groups, key=lambda g: g == last_group):
        if group == last_group:
            continue
        signal_group(group, sig)
    for pid in pids:
        _send(os.kill, pid, sig)
    if last_group is not None and last_group in groups:
        signal_group(last_group, sig)


def _send(how: Any, target: int, sig: int) -> None:
    try:
        how(target, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pgid`` alone. False when the group is gone or not ours to signal."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_tree(pid: int, sig: int = signal.SIGKILL, *, cgroup: Path | None = None) -> None:
    """Send ``sig`` to the whole tree of ``pid`` (see the module's docstring). ``pid`` must lead its process group.

    Safe on a leader that already exited (its group, session and cgroup are still reached; descendants that were
    re-parented are found through the session). Calling it on our own pid kills our tree, us last."""
    own = os.getpgrp() if pid == os.getpid() else None
    if sig == signal.SIGKILL:
        if cgroup is not None:
            from leanworker.actors.core.containment import kill_cgroup  # the parent's: it has loaded it already

            kill_cgroup(cgroup)
        table = proc_table()
        groups, pids = tree_members(pid, table)
        if own is None and not nothing_but_zombies(pid, groups, pids, table):  # freeze, then read the tree again until it stops growing: no fork escapes the kill
            for _ in range(_FREEZE_ROUNDS):
                _signal_all(groups, pids, signal.SIGSTOP)
                more_groups, more_pids = tree_members(pid)
                if more_groups <= groups and more_pids <= pids:
                    break
                groups |= more_groups
                pids |= more_pids
        _signal_all(groups, pids, signal.SIGKILL, last_group=own)
        return
    groups, pids = tree_members(pid)
    _signal_all(groups, pids, sig, last_group=own)


def child_pids(pid: int) -> list[int] | None:
    """The children of ``pid`` (``/proc/PID/task/*/children``: microseconds, not a walk of every process); None
    when ``pid`` is gone. Falls back to the process table where the kernel lacks those files."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    children: list[int] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as listed:
                children.extend(int(child) for child in listed.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{task}/stat"):
                continue  # that thread just ended
            return [entry.pid for entry in proc_table() if entry.ppid == pid]  # no CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return children


def tree_pids(pid: int) -> list[int] | None:
    """``pid`` and its descendants (nearest first), or None when ``pid`` is gone."""
    found, seen = [pid], {pid}
    index = 0
    while index < len(found):
        children = child_pids(found[index])
        if children is None and index == 0:
            return None
        for child in children or ():
            if child not in seen:
                seen.add(child)
                found.append(child)
        index += 1
    return found


def sample_tree_mib(pid: int, metric: str = "rss") -> float | None:
    """Memory of ``pid`` and its descendants in MiB (``"rss"``, or ``"pss"``: shared pages counted once), or None
    when it cannot be read."""
    pids = tree_pids(pid)
    if pids is None:
        return None
    total = 0
    for member in pids:
        try:
            total += _pss(member) if metric == "pss" else _rss(member)
        except (FileNotFoundError, ProcessLookupError):
            if member == pid:
                return None
            continue  # a descendant that just ended
        except (OSError, ValueError):
            return None
    return total / MIB


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


def _pss(pid: int) -> int:
    import psutil  # here, not at the top: only PSS needs it (it reads smaps_rollup, ~2.7 ms a process)

    try:
        return int(psutil.Process(pid).memory_full_info().pss)
    except psutil.NoSuchProcess:
        raise ProcessLookupError(pid) from None
    except psutil.Error as exc:
        raise OSError(str(exc)) from None


def reap(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Wait at most ``timeout`` seconds for ``process`` to end; its return code (minus the signal), else None."""
    import subprocess

    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
