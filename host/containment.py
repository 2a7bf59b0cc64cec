"""The worker side of "no survivors": die with the parent, and take every descendant along.

- The parent-death signal is SIGKILL, delivered by the kernel: it needs no Python code, so a worker whose main
  thread is inside a long C call holding the GIL dies all the same.
- A *guardian*, a ``/bin/sh`` forked at start-up (before any thread exists) with its own parent-death signal
  (SIGHUP) set to fire when the worker dies, then kills the worker's cgroup (if any) and process group: the
  grandchildren go too, however the worker died. It holds no pipe of the worker and costs about 1 MiB.
- With ``LEANWORKER_CGROUP`` set (actors/core/containment.py), the worker joins that cgroup first, so descendants that
  leave the process group (``setsid``) are still killed, by ``cgroup.kill``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from leanworker.actors.core.env import CGROUP_ENV, PARENT_PID_ENV, SANDBOX_ENV
from leanworker.actors.core.process_tree import kill_tree

PR_SET_PDEATHSIG = 1
SH = "/bin/sh"
# $1: the worker's pid when it leads its session (else empty). On SIGHUP: the cgroup, then every other process group
# of the worker's session (the Lean processes a worker starts lead groups of their own there), then our own group.
GUARDIAN_SCRIPT = (
    'W=$1; '
    'sweep() { for s in /proc/[0-9]*/stat; do read -r l < "$s" || continue; set -- ${l##*") "}; '
    'if [ "$4" = "$W" ] && [ "$3" != "$W" ]; then kill -KILL -"$3"; fi; done; }; '
    f'trap \'if [ -n "${CGROUP_ENV}" ]; then echo 1 > "${CGROUP_ENV}/cgroup.kill"; fi; '
    'if [ -n "$W" ]; then sweep; fi; kill -KILL 0\' HUP; '
    "while :; do sleep 3600 & wait $!; done"
)

_guardian_pid: int | None = None
_libc: Any = None


def _load_libc() -> Any:
    """The C library through ctypes (None off Linux, or where it cannot be loaded), loaded once per process."""
    global _libc
    if _libc is None and sys.platform == "linux":
        import ctypes

        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return None
    return _libc


def _prctl_pdeathsig(sig: int) -> bool:
    libc = _load_libc()
    if libc is None:
        return False
    try:
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except AttributeError:
        return False


def cgroup() -> str | None:
    return os.environ.get(CGROUP_ENV) or None


def join_cgroup() -> bool:
    """Move this process into the cgroup the parent made for it (before anything is started)."""
    path = cgroup()
    if path is None:
        return False
    if _in_cgroup(path):
        return True  # the parent moved us already; a second move would cost a cgroup migration (~10 ms) for nothing
    try:
        with open(os.path.join(path, "cgroup.procs"), "w", encoding="ascii") as procs:
            procs.write("0\n")
    except OSError:
        return False
    return True


def _in_cgroup(path: str) -> bool:
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as cgroups:
            for line in cgroups:
                if line.startswith("0::"):
                    own = line[3:].strip()
                    return own not in ("", "/") and path.rstrip("/").endswith(own)
    except OSError:
        pass
    return False


def start_guardian() -> int | None:
    """Fork the guardian shell; call before any thread is started. Returns its pid, or None where unsupported."""
    global _guardian_pid
    if sys.platform != "linux" or not os.path.exists(SH):
        return None
    worker = os.getpid()
    session = str(worker) if os.getsid(0) == worker else ""
    _load_libc()  # before the fork: the guardian and the worker (set_parent_death_signal) share one ctypes load
    pid = os.fork()
    if pid == 0:  # the guardian: no Python past this block
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.closerange(3, 1 << 16)
            if not _prctl_pdeathsig(signal.SIGHUP) or os.getppid() != worker:
                os.killpg(0, signal.SIGKILL)  # the worker is already gone (or we cannot watch it): end the group
            os.execv(SH, ["leanworker-guardian", "-c", GUARDIAN_SCRIPT, "leanworker-guardian", session])
        finally:
            os._exit(127)
    _guardian_pid = pid
    return pid


def guardian_pid() -> int | None:
    """The guardian's pid in this worker process (None where none was started)."""
    return _guardian_pid


def set_parent_death_signal() -> bool:
    """Ask the kernel to SIGKILL this process when its parent (thread) dies. True where it is set."""
    if not _prctl_pdeathsig(signal.SIGKILL):
        return False
    expected = os.environ.get(PARENT_PID_ENV)
    parent = os.getppid()
    # In a sandbox (its own PID namespace) the parent's pid is not ours to compare: getppid() is the namespace's
    # init (or 0 when the parent is outside the namespace); bwrap's --die-with-parent carries the parent's death.
    if expected is not None and parent != 0 and not os.environ.get(SANDBOX_ENV) and parent != int(expected):
        end_process_group(0)  # the parent died before prctl took effect
    return True


def end_process_group(code: int) -> None:
    """Kill our cgroup and our process group (grandchildren too, the guardian included), else just exit."""
    sys.stderr.flush()
    path = cgroup()
    if path is not None:
        try:
            with open(os.path.join(path, "cgroup.kill"), "w", encoding="ascii") as kill:
                kill.write("1\n")
        except OSError:
            pass
    if os.getpgrp() == os.getpid():
        kill_tree(os.getpid(), signal.SIGKILL)  # our group last; first the Lean groups of our session, if any
    os._exit(code)


def doctor_checks() -> list[dict[str, str]]:
    """What is contained here, as doctor checks."""
    linux = sys.platform == "linux"
    checks = [
        {"name": "parent_death_signal", "status": "pass" if linux else "warning",
         "message": "SIGKILL from the kernel when the parent dies (no Python code needed)" if linux
         else "no parent-death signal on this platform; the worker relies on stdin EOF"},
        {"name": "guardian", "status": "pass" if _guardian_pid is not None else "warning",
         "message": f"guardian process {_guardian_pid} kills the group when the worker dies"
         if _guardian_pid is not None else "no guardian: grandchildren outlive a SIGKILLed worker"},
    ]
    path = cgroup()
    if path is not None:
        checks.append({"name": "containment", "status": "pass",
                       "message": f"cgroup v2 {path}: descendants that leave the process group die with the worker"})
    else:
        checks.append({"name": "containment", "status": "warning",
                       "message": "process group only: a descendant that calls setsid() escapes a kill (no "
                                  "writable cgroup v2 with cgroup.kill here, or containment='group')"})
    return checks
