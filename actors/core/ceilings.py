"""Ceilings on a sandboxed worker's process count and memory, by cgroup, where one is writable.

With cgroup v2, the worker's own cgroup (``containment.new_cgroup``) gets ``pids.max`` and ``memory.max`` when its
parent enables those controllers. Else, on a machine that mounts the cgroup v1 ``pids`` and ``memory`` hierarchies
writable, the worker gets a group of its own in each (``pids.max``, ``memory.limit_in_bytes``). The ceiling counts
every task (threads too) of the worker and of what it starts. Where neither is possible, the sandbox falls back to
``RLIMIT_NPROC`` for the count (docs/semantics.md, Sandbox) and to the pool's memory sampling for memory.

The groups are made before the worker starts, and the worker's first process moves itself into them before it
runs the worker (:func:`joining`), so nothing it starts (a capability, a REPL, a Lean ``#eval``) is ever outside
them.
"""

from __future__ import annotations

import itertools
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from leanworker.actors.core.containment import PREFIX, remove_cgroup, sweep_stale

_names = itertools.count(1)


_swept: set[Path] = set()
_left: set[Path] = set()  # groups this process could not remove yet (their last tasks were still exiting)


def _v1_base(controller: str) -> Path | None:
    """Our own group in the cgroup v1 hierarchy of ``controller``, if it is mounted (the first time, with the groups
    of parents that died removed)."""
    base = _find_v1_base(controller)
    if base is not None and base not in _swept:
        _swept.add(base)
        sweep_stale(base)
    return base


def _find_v1_base(controller: str) -> Path | None:
    mount = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
            for line in mountinfo:
                fields = line.split()
                if " - cgroup " in line and controller in fields[-1].split(","):
                    mount = Path(fields[4])
                    break
        if mount is None:
            return None
        with open("/proc/self/cgroup", encoding="utf-8") as cgroups:
            for line in cgroups:
                number, controllers, path = line.rstrip("\n").split(":", 2)
                if controller in controllers.split(","):
                    return mount / path.lstrip("/")
    except (OSError, ValueError):
        return None
    return None


@dataclass
class Ceilings:
    """What bounds one worker: ``processes`` and ``memory`` name the mechanism (or None); :meth:`remove` after the
    worker is reaped."""

    processes: str | None = None
    memory: str | None = None
    groups: list[Path] = field(default_factory=list)  # cgroup v1 groups made for this worker (removed after it)

    def remove(self, wait: float | None = None) -> None:
        """Remove the groups once the worker's processes have left them (its PID namespace ends a moment after the
        worker is reaped; what is still in a group is killed), waiting at most ``wait`` seconds (default 10) for each.
        A group still busy then is removed when the next worker's ceilings are prepared; a group left by a parent
        that died, by the next parent (:func:`_v1_base`)."""
        for group in self.groups:
            _kill_members(group)  # what the namespace's end has not yet taken down (slow on a loaded machine)
            if not remove_cgroup(group, wait=_REMOVE_WAIT if wait is None else wait):
                _left.add(group)
        self.groups.clear()


_REMOVE_WAIT = 10.0  # returns as soon as the group is empty; killed tasks of a loaded machine can take seconds


def _kill_members(group: Path) -> None:
    """SIGKILL every process still in a cgroup v1 group (v1 has no ``cgroup.kill``)."""
    try:
        pids = [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value + "\n")
    except OSError:
        return False
    return True


def _v2(cgroup: Path, controller: str) -> bool:
    try:
        return controller in (cgroup / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def _v1_group(controller: str, settings: dict[str, str]) -> Path | None:
    base = _v1_base(controller)
    if base is None:
        return None
    group = base / f"{PREFIX}{os.getpid()}-{next(_names)}"
    try:
        group.mkdir()
    except OSError:
        return None
    if all(_write(group / name, value) for name, value in settings.items()):
        return group
    try:
        group.rmdir()
    except OSError:
        pass
    return None


JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 126; shift; done; shift; exec "$@"'


def joining(groups: list[Path], argv: list[str]) -> list[str]:
    """``argv`` run by a shell that first moves itself into ``groups`` (so every process it starts is in them)."""
    if not groups:
        return argv
    return ["/bin/sh", "-c", JOIN_SCRIPT, "leanworker-join", *(str(g) for g in groups), "--", *argv]


def prepare_ceilings(cgroup: Path | None, max_processes: int | None, memory_mib: int | None) -> Ceilings:
    """Make the groups that bound a worker about to start (and its descendants); it joins them with
    :func:`joining`. ``cgroup`` is the worker's own cgroup v2, if it has one (it joins that one too)."""
    for busy in list(_left):  # what an earlier worker left behind, its tasks gone by now
        if remove_cgroup(busy, wait=0.0):
            _left.discard(busy)
    ceilings = Ceilings()
    if max_processes is not None:
        if cgroup is not None and _v2(cgroup, "pids") and _write(cgroup / "pids.max", str(max_processes)):
            ceilings.processes = "cgroup v2 pids.max"
        else:
            group = _v1_group("pids", {"pids.max": str(max_processes)})
            if group is not None:
                ceilings.groups.append(group)
                ceilings.processes = "cgroup v1 pids.max"
    if memory_mib is not None:
        limit = str(memory_mib * 2**20)
        if cgroup is not None and _v2(cgroup, "memory") and _write(cgroup / "memory.max", limit):
            ceilings.memory = "cgroup v2 memory.max"
        else:
            group = _v1_group("memory", {"memory.limit_in_bytes": limit})
            if group is not None:
                ceilings.groups.append(group)
                ceilings.memory = "cgroup v1 memory.limit_in_bytes"
    return ceilings
