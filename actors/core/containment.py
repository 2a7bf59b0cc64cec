"""Containment of a worker's descendants beyond its process group: a cgroup v2 of its own, where the machine allows.

A worker and its descendants share a process group, which the parent kills. A descendant that calls ``setsid()``
(or ``setpgid``) leaves the group and would survive. Where cgroup v2 is mounted, our own cgroup is writable and the
kernel has ``cgroup.kill`` (Linux 5.14+), each worker process gets a cgroup of its own below ours; killing the
worker then also writes ``cgroup.kill``, which ends every process in it, whatever its group or session. The worker
host joins its cgroup itself at start-up (``LEANWORKER_CGROUP``), before it can start anything, and the parent moves
it there too (for worker programs that do not). docs/semantics.md, Containment, says what is and is not contained.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from leanworker.actors.core import locks

PREFIX = "leanworker-"

_lock = locks.lock("containment")
_base: Path | None = None
_probed = False
_names = itertools.count(1)


def _cgroup2_mount() -> Path | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
            for line in mountinfo:
                fields = line.split()
                if " - cgroup2 " in line and len(fields) > 4:
                    return Path(fields[4])
    except OSError:
        return None
    return None


def _own_cgroup() -> str | None:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as cgroups:
            for line in cgroups:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        return None
    return None


def cgroup_base() -> Path | None:
    """The directory below which worker cgroups are made, or None when cgroup containment is unavailable here."""
    global _base, _probed
    with _lock:
        if _probed:
            return _base
        _probed = True
        mount, own = _cgroup2_mount(), _own_cgroup()
        if mount is None or own is None:
            return None
        base = mount / own.lstrip("/")
        probe = base / f"{PREFIX}probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            return None
        try:
            if (probe / "cgroup.kill").exists() and os.access(probe / "cgroup.procs", os.W_OK):
                _base = base
        finally:
            try:
                probe.rmdir()
            except OSError:
                pass
        if _base is not None:
            sweep_stale(_base)
        return _base


def sweep_stale(base: Path) -> None:
    """Remove cgroups left by parents that died (SIGKILL leaves an empty one behind)."""
    for path in base.glob(f"{PREFIX}*"):
        owner = path.name[len(PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            kill_cgroup(path)
            remove_cgroup(path, wait=0.0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_cgroup() -> Path | None:
    """Make a cgroup for one worker process; None when containment is unavailable or the cgroup cannot be made."""
    base = cgroup_base()
    if base is None:
        return None
    path = base / f"{PREFIX}{os.getpid()}-{next(_names)}"
    try:
        path.mkdir()
    except OSError:
        return None
    return path


def add_to_cgroup(path: Path, pid: int) -> bool:
    try:
        (path / "cgroup.procs").write_text(f"{pid}\n")
    except OSError:  # the process already exited, or the cgroup is gone
        return False
    return True


def kill_cgroup(path: Path) -> None:
    """SIGKILL every process in the cgroup (the kernel does it; no process needs to cooperate)."""
    try:
        (path / "cgroup.kill").write_text("1\n")
    except OSError:
        pass


def remove_cgroup(path: Path, wait: float = 2.0) -> bool:
    """Remove the cgroup once its processes are gone (waiting at most ``wait`` seconds). True if removed."""
    deadline = time.monotonic() + wait
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
